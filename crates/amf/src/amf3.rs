//! AMF3 decoding (Adobe "AMF 3 Specification"), into the shared [`Value`] tree.
//!
//! Only decoding is provided: RTMP clients occasionally send AMF3 (inside an
//! AMF0 avmplus switch), servers answer in AMF0.

use crate::reader as r;
use crate::refs::RefTable;
use crate::{AmfError, MAX_DEPTH, MAX_ELEMENTS, MAX_REFERENCES, Value};

/// AMF3 type markers.
pub mod marker {
    /// Undefined.
    pub const UNDEFINED: u8 = 0x00;
    /// Null.
    pub const NULL: u8 = 0x01;
    /// False.
    pub const FALSE: u8 = 0x02;
    /// True.
    pub const TRUE: u8 = 0x03;
    /// 29-bit signed integer.
    pub const INTEGER: u8 = 0x04;
    /// Double.
    pub const DOUBLE: u8 = 0x05;
    /// String.
    pub const STRING: u8 = 0x06;
    /// Legacy XML document.
    pub const XML_DOC: u8 = 0x07;
    /// Date.
    pub const DATE: u8 = 0x08;
    /// Array.
    pub const ARRAY: u8 = 0x09;
    /// Object.
    pub const OBJECT: u8 = 0x0A;
    /// E4X XML.
    pub const XML: u8 = 0x0B;
    /// Byte array.
    pub const BYTE_ARRAY: u8 = 0x0C;
}

/// Decodes one AMF3 value from the front of `buf`, advancing it.
pub fn decode(buf: &mut &[u8]) -> Result<Value, AmfError> {
    Decoder::default().value(buf, 0)
}

/// Decodes one AMF3 value after an AMF0 avmplus marker, with fresh tables.
pub(crate) fn decode_nested(buf: &mut &[u8], depth: usize) -> Result<Value, AmfError> {
    Decoder::default().value(buf, depth)
}

#[derive(Debug, Clone)]
struct Traits {
    class: String,
    sealed: Vec<String>,
    dynamic: bool,
}

/// AMF3 decoder state: string, object and trait reference tables.
#[derive(Debug, Default)]
struct Decoder {
    strings: Vec<String>,
    objects: RefTable,
    traits: Vec<Traits>,
}

/// Reads a U29 variable-length integer.
fn u29(buf: &mut &[u8]) -> Result<u32, AmfError> {
    let mut v: u32 = 0;
    for i in 0..4 {
        let b = r::u8(buf)?;
        if i == 3 {
            return Ok((v << 8) | u32::from(b));
        }
        v = (v << 7) | u32::from(b & 0x7F);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Ok(v)
}

impl Decoder {
    fn value(&mut self, buf: &mut &[u8], depth: usize) -> Result<Value, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep { max: MAX_DEPTH });
        }
        let m = r::u8(buf)?;
        Ok(match m {
            marker::UNDEFINED => Value::Undefined,
            marker::NULL => Value::Null,
            marker::FALSE => Value::Boolean(false),
            marker::TRUE => Value::Boolean(true),
            marker::INTEGER => {
                let u = u29(buf)?;
                // Sign-extend 29 bits.
                let i = ((u << 3) as i32) >> 3;
                Value::Number(f64::from(i))
            }
            marker::DOUBLE => Value::Number(r::f64(buf)?),
            marker::STRING => Value::String(self.string(buf)?),
            marker::XML_DOC | marker::XML => match self.inline_or_ref(buf)? {
                Err(v) => v,
                Ok(len) => {
                    let idx = self.objects.reserve()?;
                    let v = Value::Xml(r::string(buf, len)?);
                    self.objects.fill(idx, &v);
                    v
                }
            },
            marker::DATE => match self.inline_or_ref(buf)? {
                Err(v) => v,
                Ok(_) => {
                    let idx = self.objects.reserve()?;
                    let v = Value::Date {
                        millis: r::f64(buf)?,
                        timezone: 0,
                    };
                    self.objects.fill(idx, &v);
                    v
                }
            },
            marker::BYTE_ARRAY => match self.inline_or_ref(buf)? {
                Err(v) => v,
                Ok(len) => {
                    let idx = self.objects.reserve()?;
                    let v = Value::String(r::string(buf, len)?);
                    self.objects.fill(idx, &v);
                    v
                }
            },
            marker::ARRAY => match self.inline_or_ref(buf)? {
                Err(v) => v,
                Ok(dense) => self.array(buf, dense, depth)?,
            },
            marker::OBJECT => self.object(buf, depth)?,
            other => {
                return Err(AmfError::UnsupportedMarker {
                    version: 3,
                    marker: other,
                });
            }
        })
    }

    /// Reads a U29 header: `Ok(len)` for an inline value (header >> 1),
    /// `Err(value)` with the referenced object otherwise.
    fn inline_or_ref(&mut self, buf: &mut &[u8]) -> Result<Result<usize, Value>, AmfError> {
        let h = u29(buf)?;
        if h & 1 == 0 {
            return Ok(Err(self.objects.get(h >> 1)?));
        }
        Ok(Ok((h >> 1) as usize))
    }

    fn string(&mut self, buf: &mut &[u8]) -> Result<String, AmfError> {
        let h = u29(buf)?;
        let index = h >> 1;
        if h & 1 == 0 {
            return self
                .strings
                .get(index as usize)
                .cloned()
                .ok_or(AmfError::BadReference {
                    index,
                    len: self.strings.len(),
                });
        }
        let s = r::string(buf, index as usize)?;
        if !s.is_empty() {
            if self.strings.len() >= MAX_REFERENCES {
                return Err(AmfError::TooManyElements {
                    count: self.strings.len() as u64 + 1,
                    max: MAX_REFERENCES,
                });
            }
            self.strings.push(s.clone());
        }
        Ok(s)
    }

    fn array(&mut self, buf: &mut &[u8], dense: usize, depth: usize) -> Result<Value, AmfError> {
        let idx = self.objects.reserve()?;
        if dense > MAX_ELEMENTS || dense > buf.len() {
            return Err(AmfError::TooManyElements {
                count: dense as u64,
                max: MAX_ELEMENTS.min(buf.len()),
            });
        }
        let mut assoc = Vec::new();
        loop {
            let key = self.string(buf)?;
            if key.is_empty() {
                break;
            }
            if assoc.len() >= MAX_ELEMENTS {
                return Err(AmfError::TooManyElements {
                    count: assoc.len() as u64 + 1,
                    max: MAX_ELEMENTS,
                });
            }
            let v = self.value(buf, depth + 1)?;
            assoc.push((key, v));
        }
        let mut items = Vec::with_capacity(dense.min(buf.len()));
        for _ in 0..dense {
            items.push(self.value(buf, depth + 1)?);
        }
        let v = if assoc.is_empty() {
            Value::StrictArray(items)
        } else {
            assoc.extend(
                items
                    .into_iter()
                    .enumerate()
                    .map(|(i, v)| (i.to_string(), v)),
            );
            Value::EcmaArray(assoc)
        };
        self.objects.fill(idx, &v);
        Ok(v)
    }

    fn object(&mut self, buf: &mut &[u8], depth: usize) -> Result<Value, AmfError> {
        let h = u29(buf)?;
        if h & 1 == 0 {
            return self.objects.get(h >> 1);
        }
        let traits = if h & 2 == 0 {
            let index = h >> 2;
            self.traits
                .get(index as usize)
                .cloned()
                .ok_or(AmfError::BadReference {
                    index,
                    len: self.traits.len(),
                })?
        } else {
            let class = self.string(buf)?;
            if h & 4 != 0 {
                return Err(AmfError::Externalizable { class });
            }
            let dynamic = h & 8 != 0;
            let count = (h >> 4) as usize;
            // Each sealed name takes at least one byte.
            if count > MAX_ELEMENTS || count > buf.len() {
                return Err(AmfError::TooManyElements {
                    count: count as u64,
                    max: MAX_ELEMENTS.min(buf.len()),
                });
            }
            let mut sealed = Vec::with_capacity(count);
            for _ in 0..count {
                sealed.push(self.string(buf)?);
            }
            if self.traits.len() >= MAX_REFERENCES {
                return Err(AmfError::TooManyElements {
                    count: self.traits.len() as u64 + 1,
                    max: MAX_REFERENCES,
                });
            }
            let t = Traits {
                class,
                sealed,
                dynamic,
            };
            self.traits.push(t.clone());
            t
        };
        let idx = self.objects.reserve()?;
        let mut props = Vec::with_capacity(traits.sealed.len());
        for name in &traits.sealed {
            let v = self.value(buf, depth + 1)?;
            props.push((name.clone(), v));
        }
        if traits.dynamic {
            loop {
                let key = self.string(buf)?;
                if key.is_empty() {
                    break;
                }
                if props.len() >= MAX_ELEMENTS {
                    return Err(AmfError::TooManyElements {
                        count: props.len() as u64 + 1,
                        max: MAX_ELEMENTS,
                    });
                }
                let v = self.value(buf, depth + 1)?;
                props.push((key, v));
            }
        }
        let v = if traits.class.is_empty() {
            Value::Object(props)
        } else {
            Value::TypedObject {
                class: traits.class,
                properties: props,
            }
        };
        self.objects.fill(idx, &v);
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(b: &[u8]) -> Result<Value, AmfError> {
        let mut s = b;
        let v = decode(&mut s)?;
        assert!(s.is_empty(), "trailing bytes");
        Ok(v)
    }

    #[test]
    fn scalars() {
        assert_eq!(d(&[0x00]).unwrap(), Value::Undefined);
        assert_eq!(d(&[0x01]).unwrap(), Value::Null);
        assert_eq!(d(&[0x02]).unwrap(), Value::Boolean(false));
        assert_eq!(d(&[0x03]).unwrap(), Value::Boolean(true));
        assert_eq!(d(&[0x04, 0x7F]).unwrap(), Value::Number(127.0));
        assert_eq!(d(&[0x04, 0x81, 0x00]).unwrap(), Value::Number(128.0));
        // Largest positive 29-bit integer: 0x0FFFFFFF.
        assert_eq!(
            d(&[0x04, 0xBF, 0xFF, 0xFF, 0xFF]).unwrap(),
            Value::Number(268_435_455.0)
        );
        // -1 is all 29 bits set.
        assert_eq!(
            d(&[0x04, 0xFF, 0xFF, 0xFF, 0xFF]).unwrap(),
            Value::Number(-1.0)
        );
        assert_eq!(
            d(&[0x05, 0x40, 0x09, 0x21, 0xFB, 0x54, 0x44, 0x2D, 0x18]).unwrap(),
            Value::Number(std::f64::consts::PI)
        );
        assert_eq!(
            d(&[0x08, 0x01, 0, 0, 0, 0, 0, 0, 0, 0]).unwrap(),
            Value::Date {
                millis: 0.0,
                timezone: 0
            }
        );
        assert_eq!(
            d(&[0x0B, 0x09, b'<', b'a', b'/', b'>']).unwrap(),
            Value::Xml("<a/>".into())
        );
        assert_eq!(
            d(&[0x0C, 0x05, b'h', b'i']).unwrap(),
            Value::String("hi".into())
        );
    }

    #[test]
    fn string_references() {
        // Dense array of 3: "ab", ref 0, "" (empty strings are never referenced).
        let wire = [
            0x09, 0x07, 0x01, 0x06, 0x05, b'a', b'b', 0x06, 0x00, 0x06, 0x01,
        ];
        assert_eq!(
            d(&wire).unwrap(),
            Value::StrictArray(vec!["ab".into(), "ab".into(), "".into()])
        );
        assert!(matches!(
            d(&[0x06, 0x02]),
            Err(AmfError::BadReference { index: 1, len: 0 })
        ));
    }

    #[test]
    fn mixed_array() {
        // 1 dense element, associative "k" => true.
        let wire = [0x09, 0x03, 0x03, b'k', 0x03, 0x01, 0x04, 0x02];
        assert_eq!(
            d(&wire).unwrap(),
            Value::EcmaArray(vec![
                ("k".into(), Value::Boolean(true)),
                ("0".into(), Value::Number(2.0))
            ])
        );
    }

    #[test]
    fn objects_traits_and_references() {
        // Array of 3 objects: first declares traits (class "", sealed ["a"], dynamic),
        // second uses a trait reference, third is an object reference to the first.
        let wire = [
            0x09, 0x07, 0x01, // dense array, 3 elements, no assoc part
            0x0A, 0x1B, 0x01, 0x03, b'a', // traits: 1 sealed, dynamic, class ""
            0x04, 0x01, // a = 1
            0x03, b'd', 0x02, // dynamic d = false
            0x01, // end of dynamic members
            0x0A, 0x01, // traits reference 0
            0x04, 0x02, // a = 2
            0x01, // end
            0x0A, 0x02, // object reference 1 (0 is the array)
        ];
        let first = Value::Object(vec![
            ("a".into(), Value::Number(1.0)),
            ("d".into(), Value::Boolean(false)),
        ]);
        assert_eq!(
            d(&wire).unwrap(),
            Value::StrictArray(vec![
                first.clone(),
                Value::Object(vec![("a".into(), Value::Number(2.0))]),
                first
            ])
        );
    }

    #[test]
    fn typed_and_externalizable() {
        let wire = [0x0A, 0x13, 0x03, b'C', 0x03, b'x', 0x01];
        assert_eq!(
            d(&wire).unwrap(),
            Value::TypedObject {
                class: "C".into(),
                properties: vec![("x".into(), Value::Null)]
            }
        );
        assert!(matches!(
            d(&[0x0A, 0x07, 0x03, b'E']),
            Err(AmfError::Externalizable { .. })
        ));
    }

    #[test]
    fn hostile() {
        assert!(d(&[0x09, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(d(&[0x06, 0xFF, 0xFF, 0xFF, 0xFF]).is_err());
        assert!(d(&[0x0A, 0x00]).is_err());
        assert!(d(&[0x0A, 0x01]).is_err());
        assert!(matches!(
            d(&[0x0D]),
            Err(AmfError::UnsupportedMarker {
                version: 3,
                marker: 0x0D
            })
        ));
        let deep: Vec<u8> = std::iter::repeat_n([0x09, 0x03, 0x01], 100)
            .flatten()
            .collect();
        assert!(matches!(d(&deep), Err(AmfError::TooDeep { .. })));
    }
}
