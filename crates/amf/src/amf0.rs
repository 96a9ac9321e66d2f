//! AMF0 decoding and encoding (Adobe "Action Message Format -- AMF 0").

use bytes::{BufMut, BytesMut};

use crate::reader as r;
use crate::refs::RefTable;
use crate::{AmfError, MAX_DEPTH, MAX_ELEMENTS, Value, amf3};

/// AMF0 type markers.
pub mod marker {
    /// Number (f64).
    pub const NUMBER: u8 = 0x00;
    /// Boolean.
    pub const BOOLEAN: u8 = 0x01;
    /// Short string.
    pub const STRING: u8 = 0x02;
    /// Anonymous object.
    pub const OBJECT: u8 = 0x03;
    /// Movie clip (reserved, unsupported).
    pub const MOVIECLIP: u8 = 0x04;
    /// Null.
    pub const NULL: u8 = 0x05;
    /// Undefined.
    pub const UNDEFINED: u8 = 0x06;
    /// Reference to an earlier complex value.
    pub const REFERENCE: u8 = 0x07;
    /// ECMA array.
    pub const ECMA_ARRAY: u8 = 0x08;
    /// Object end (after an empty key).
    pub const OBJECT_END: u8 = 0x09;
    /// Strict array.
    pub const STRICT_ARRAY: u8 = 0x0A;
    /// Date.
    pub const DATE: u8 = 0x0B;
    /// Long string.
    pub const LONG_STRING: u8 = 0x0C;
    /// Unsupported (decoded as Undefined).
    pub const UNSUPPORTED: u8 = 0x0D;
    /// Record set (reserved, unsupported).
    pub const RECORDSET: u8 = 0x0E;
    /// XML document.
    pub const XML_DOCUMENT: u8 = 0x0F;
    /// Typed object.
    pub const TYPED_OBJECT: u8 = 0x10;
    /// Switch to AMF3 for one value.
    pub const AVMPLUS: u8 = 0x11;
}

/// Decodes one AMF0 value from the front of `buf` and advances `buf` past it.
///
/// On error `buf` is left at an unspecified position.
pub fn decode(buf: &mut &[u8]) -> Result<Value, AmfError> {
    Decoder::default().value(buf, 0)
}

/// Decodes every AMF0 value in `buf` (one reference table for the whole buffer,
/// as for the values of one RTMP command message).
pub fn decode_all(buf: &[u8]) -> Result<Vec<Value>, AmfError> {
    let mut buf = buf;
    let mut dec = Decoder::default();
    let mut out = Vec::new();
    while !buf.is_empty() {
        if out.len() >= MAX_ELEMENTS {
            return Err(AmfError::TooManyElements {
                count: out.len() as u64 + 1,
                max: MAX_ELEMENTS,
            });
        }
        out.push(dec.value(&mut buf, 0)?);
    }
    Ok(out)
}

/// A stateful AMF0 decoder: keeps the reference table across values.
#[derive(Debug, Default)]
pub struct Decoder {
    refs: RefTable,
}

impl Decoder {
    /// A decoder with an empty reference table.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes one value from the front of `buf`, advancing it.
    pub fn decode(&mut self, buf: &mut &[u8]) -> Result<Value, AmfError> {
        self.value(buf, 0)
    }

    fn value(&mut self, buf: &mut &[u8], depth: usize) -> Result<Value, AmfError> {
        if depth > MAX_DEPTH {
            return Err(AmfError::TooDeep { max: MAX_DEPTH });
        }
        let m = r::u8(buf)?;
        Ok(match m {
            marker::NUMBER => Value::Number(r::f64(buf)?),
            marker::BOOLEAN => Value::Boolean(r::u8(buf)? != 0),
            marker::STRING => {
                let len = r::u16(buf)? as usize;
                Value::String(r::string(buf, len)?)
            }
            marker::OBJECT => {
                let idx = self.refs.reserve()?;
                let v = Value::Object(self.properties(buf, depth, None)?);
                self.refs.fill(idx, &v);
                v
            }
            marker::NULL => Value::Null,
            marker::UNDEFINED | marker::UNSUPPORTED => Value::Undefined,
            marker::REFERENCE => {
                let index = r::u16(buf)?;
                self.refs.get(u32::from(index))?
            }
            marker::ECMA_ARRAY => {
                let idx = self.refs.reserve()?;
                let count = r::u32(buf)?;
                if count as usize > MAX_ELEMENTS {
                    return Err(AmfError::TooManyElements {
                        count: u64::from(count),
                        max: MAX_ELEMENTS,
                    });
                }
                let v = Value::EcmaArray(self.properties(buf, depth, Some(count as usize))?);
                self.refs.fill(idx, &v);
                v
            }
            marker::OBJECT_END => return Err(AmfError::UnexpectedObjectEnd),
            marker::STRICT_ARRAY => {
                let idx = self.refs.reserve()?;
                let count = r::u32(buf)? as usize;
                // Every element takes at least one byte (its marker).
                if count > MAX_ELEMENTS || count > buf.len() {
                    return Err(AmfError::TooManyElements {
                        count: count as u64,
                        max: MAX_ELEMENTS.min(buf.len()),
                    });
                }
                let mut items = Vec::with_capacity(count);
                for _ in 0..count {
                    items.push(self.value(buf, depth + 1)?);
                }
                let v = Value::StrictArray(items);
                self.refs.fill(idx, &v);
                v
            }
            marker::DATE => {
                let millis = r::f64(buf)?;
                let timezone = r::u16(buf)? as i16;
                Value::Date { millis, timezone }
            }
            marker::LONG_STRING => {
                let len = r::u32(buf)? as usize;
                Value::LongString(r::string(buf, len)?)
            }
            marker::XML_DOCUMENT => {
                let len = r::u32(buf)? as usize;
                Value::Xml(r::string(buf, len)?)
            }
            marker::TYPED_OBJECT => {
                let idx = self.refs.reserve()?;
                let len = r::u16(buf)? as usize;
                let class = r::string(buf, len)?;
                let properties = self.properties(buf, depth, None)?;
                let v = Value::TypedObject { class, properties };
                self.refs.fill(idx, &v);
                v
            }
            marker::AVMPLUS => amf3::decode_nested(buf, depth + 1)?,
            other => {
                return Err(AmfError::UnsupportedMarker {
                    version: 0,
                    marker: other,
                });
            }
        })
    }

    /// Reads key/value pairs up to the `00 00 09` end marker. For ECMA arrays
    /// (`declared` is Some) a missing end marker at the end of input is
    /// tolerated once the declared count has been read, as some encoders omit it.
    fn properties(
        &mut self,
        buf: &mut &[u8],
        depth: usize,
        declared: Option<usize>,
    ) -> Result<Vec<(String, Value)>, AmfError> {
        // Each property takes at least 3 bytes (key length + marker).
        let cap = declared.unwrap_or(0).min(buf.len() / 3);
        let mut props = Vec::with_capacity(cap);
        loop {
            if buf.is_empty()
                && let Some(n) = declared
                && props.len() >= n
            {
                return Ok(props);
            }
            let len = r::u16(buf)? as usize;
            if len == 0 && buf.first() == Some(&marker::OBJECT_END) {
                *buf = &buf[1..];
                return Ok(props);
            }
            if props.len() >= MAX_ELEMENTS {
                return Err(AmfError::TooManyElements {
                    count: props.len() as u64 + 1,
                    max: MAX_ELEMENTS,
                });
            }
            let key = r::string(buf, len)?;
            let v = self.value(buf, depth + 1)?;
            props.push((key, v));
        }
    }
}

/// Encodes `value` as AMF0 onto `out`.
///
/// Strings longer than 65535 bytes are written as long strings; object keys
/// longer than 65535 bytes are truncated (at a character boundary).
pub fn encode(value: &Value, out: &mut BytesMut) {
    match value {
        Value::Number(n) => {
            out.put_u8(marker::NUMBER);
            out.put_f64(*n);
        }
        Value::Boolean(b) => {
            out.put_u8(marker::BOOLEAN);
            out.put_u8(u8::from(*b));
        }
        Value::String(s) if s.len() <= usize::from(u16::MAX) => {
            out.put_u8(marker::STRING);
            put_short_str(out, s);
        }
        Value::String(s) | Value::LongString(s) => {
            out.put_u8(marker::LONG_STRING);
            put_long_str(out, s);
        }
        Value::Object(p) => {
            out.put_u8(marker::OBJECT);
            put_properties(out, p);
        }
        Value::Null => out.put_u8(marker::NULL),
        Value::Undefined => out.put_u8(marker::UNDEFINED),
        Value::EcmaArray(p) => {
            out.put_u8(marker::ECMA_ARRAY);
            out.put_u32(u32::try_from(p.len()).unwrap_or(u32::MAX));
            put_properties(out, p);
        }
        Value::StrictArray(items) => {
            out.put_u8(marker::STRICT_ARRAY);
            // A Vec longer than u32::MAX cannot be encoded faithfully; cap it.
            let n = items.len().min(u32::MAX as usize);
            out.put_u32(n as u32);
            for v in items.iter().take(n) {
                encode(v, out);
            }
        }
        Value::Date { millis, timezone } => {
            out.put_u8(marker::DATE);
            out.put_f64(*millis);
            out.put_i16(*timezone);
        }
        Value::Xml(s) => {
            out.put_u8(marker::XML_DOCUMENT);
            put_long_str(out, s);
        }
        Value::TypedObject { class, properties } => {
            out.put_u8(marker::TYPED_OBJECT);
            put_short_str(out, class);
            put_properties(out, properties);
        }
    }
}

/// Encodes each value in turn.
pub fn encode_all(values: &[Value], out: &mut BytesMut) {
    for v in values {
        encode(v, out);
    }
}

fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn put_short_str(out: &mut BytesMut, s: &str) {
    let s = truncate(s, usize::from(u16::MAX));
    out.put_u16(s.len() as u16);
    out.put_slice(s.as_bytes());
}

fn put_long_str(out: &mut BytesMut, s: &str) {
    let s = truncate(s, u32::MAX as usize);
    out.put_u32(s.len() as u32);
    out.put_slice(s.as_bytes());
}

fn put_properties(out: &mut BytesMut, props: &[(String, Value)]) {
    for (k, v) in props {
        if k.is_empty() {
            // An empty key would read back as the end marker; skip it.
            continue;
        }
        put_short_str(out, k);
        encode(v, out);
    }
    out.put_slice(&[0, 0, marker::OBJECT_END]);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(v: &Value) -> Vec<u8> {
        let mut b = BytesMut::new();
        encode(v, &mut b);
        b.to_vec()
    }

    #[test]
    fn connect_command_fixture() {
        // "connect", 1.0, {app: "live"}
        let wire: &[u8] = &[
            0x02, 0x00, 0x07, b'c', b'o', b'n', b'n', b'e', b'c', b't', //
            0x00, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0, //
            0x03, 0x00, 0x03, b'a', b'p', b'p', 0x02, 0x00, 0x04, b'l', b'i', b'v', b'e', //
            0x00, 0x00, 0x09,
        ];
        let vals = decode_all(wire).unwrap();
        assert_eq!(
            vals,
            vec![
                Value::from("connect"),
                Value::Number(1.0),
                Value::Object(vec![("app".into(), "live".into())]),
            ]
        );
        let mut out = BytesMut::new();
        encode_all(&vals, &mut out);
        assert_eq!(&out[..], wire);
    }

    #[test]
    fn scalars_fixture() {
        assert_eq!(enc(&Value::Boolean(true)), [0x01, 0x01]);
        assert_eq!(enc(&Value::Null), [0x05]);
        assert_eq!(enc(&Value::Undefined), [0x06]);
        assert_eq!(
            enc(&Value::Date {
                millis: 0.0,
                timezone: -60
            }),
            [0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xC4]
        );
        let mut b: &[u8] = &[0x0D, 0x05];
        assert_eq!(decode(&mut b).unwrap(), Value::Undefined);
        assert_eq!(b, [0x05]);
    }

    #[test]
    fn round_trip_all_types() {
        let v = Value::StrictArray(vec![
            Value::Number(-2.5),
            Value::LongString("x".repeat(70_000)),
            Value::EcmaArray(vec![("duration".into(), Value::Number(0.0))]),
            Value::Xml("<a/>".into()),
            Value::TypedObject {
                class: "C".into(),
                properties: vec![("k".into(), Value::Boolean(false))],
            },
            Value::Date {
                millis: 1.5e12,
                timezone: 0,
            },
        ]);
        let bytes = enc(&v);
        let mut b = &bytes[..];
        assert_eq!(decode(&mut b).unwrap(), v);
        assert!(b.is_empty());
        // A long Value::String becomes a LongString on the wire.
        let long = Value::String("y".repeat(70_000));
        let bytes = enc(&long);
        assert_eq!(bytes[0], marker::LONG_STRING);
    }

    #[test]
    fn ecma_array_without_end_marker() {
        let wire: &[u8] = &[0x08, 0, 0, 0, 1, 0, 1, b'a', 0x05];
        let mut b = wire;
        assert_eq!(
            decode(&mut b).unwrap(),
            Value::EcmaArray(vec![("a".into(), Value::Null)])
        );
    }

    #[test]
    fn references() {
        // [ {a: null}, ref 1 ]  -- index 0 is the strict array itself.
        let wire: &[u8] = &[
            0x0A, 0, 0, 0, 2, 0x03, 0, 1, b'a', 0x05, 0, 0, 9, 0x07, 0, 1,
        ];
        let v = decode(&mut &wire[..]).unwrap();
        let obj = Value::Object(vec![("a".into(), Value::Null)]);
        assert_eq!(v, Value::StrictArray(vec![obj.clone(), obj]));
        // A reference to the array being decoded (a cycle) is rejected.
        let wire: &[u8] = &[0x0A, 0, 0, 0, 1, 0x07, 0, 0];
        assert!(matches!(
            decode(&mut &wire[..]),
            Err(AmfError::BadReference { index: 0, .. })
        ));
        // A reference to nothing.
        assert!(matches!(
            decode(&mut &[0x07, 0, 5][..]),
            Err(AmfError::BadReference { index: 5, len: 0 })
        ));
    }

    #[test]
    fn hostile_inputs() {
        // Huge strict array count with no data.
        assert!(matches!(
            decode(&mut &[0x0A, 0xFF, 0xFF, 0xFF, 0xFF][..]),
            Err(AmfError::TooManyElements { .. })
        ));
        // Truncated string.
        assert!(matches!(
            decode(&mut &[0x02, 0x00, 0x05, b'a'][..]),
            Err(AmfError::Truncated { needed: 4 })
        ));
        // Deep nesting.
        let deep: Vec<u8> = std::iter::repeat_n([0x0A, 0, 0, 0, 1], 100)
            .flatten()
            .collect();
        assert!(matches!(
            decode(&mut &deep[..]),
            Err(AmfError::TooDeep { .. })
        ));
        assert!(matches!(
            decode(&mut &[0x04][..]),
            Err(AmfError::UnsupportedMarker {
                version: 0,
                marker: 4
            })
        ));
        assert!(matches!(
            decode(&mut &[0x09][..]),
            Err(AmfError::UnexpectedObjectEnd)
        ));
        assert!(decode(&mut &[][..]).is_err());
    }

    #[test]
    fn reference_bomb_is_bounded() {
        // a0 = [x*1000], a1 = [ref a0, ref a0, ...]; each level doubles.
        let mut wire = vec![0x0A, 0, 0, 0, 20];
        wire.extend([0x0A, 0, 0, 3, 0xE8]);
        wire.extend(std::iter::repeat_n(0x05, 1000));
        for _ in 0..19 {
            wire.extend([0x07, 0, 1]);
        }
        // 20 copies of 1001 nodes fits; now nest further so it does not.
        let r = decode(&mut &wire[..]);
        assert!(r.is_ok());
        let mut wire2 = vec![0x0A, 0, 0, 1, 0];
        wire2.extend([0x0A, 0, 0, 3, 0xE8]);
        wire2.extend(std::iter::repeat_n(0x05, 1000));
        for _ in 0..255 {
            wire2.extend([0x07, 0, 1]);
        }
        assert!(matches!(
            decode(&mut &wire2[..]),
            Err(AmfError::ReferenceBudgetExceeded { .. })
        ));
    }

    #[test]
    fn avmplus_switch() {
        // AMF0 avmplus marker, then AMF3 integer 5.
        let mut b: &[u8] = &[0x11, 0x04, 0x05];
        assert_eq!(decode(&mut b).unwrap(), Value::Number(5.0));
    }
}
