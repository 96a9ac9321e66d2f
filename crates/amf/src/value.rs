//! The decoded AMF value tree, shared by AMF0 and AMF3.

/// One AMF value. AMF3 values are decoded into the same tree (integers become
/// [`Value::Number`], byte arrays become lossy [`Value::String`]s).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// IEEE-754 double (AMF0 0x00, AMF3 integer and double).
    Number(f64),
    /// Boolean (AMF0 0x01, AMF3 false/true).
    Boolean(bool),
    /// UTF-8 string up to 65535 bytes in AMF0 (0x02).
    String(String),
    /// Anonymous object: ordered key/value pairs (AMF0 0x03).
    Object(Vec<(String, Value)>),
    /// Null (AMF0 0x05).
    Null,
    /// Undefined (AMF0 0x06; also AMF0 "unsupported" 0x0D).
    Undefined,
    /// ECMA (associative) array (AMF0 0x08; AMF3 arrays with an associative part).
    EcmaArray(Vec<(String, Value)>),
    /// Strict (dense) array (AMF0 0x0A).
    StrictArray(Vec<Value>),
    /// Date: milliseconds since the Unix epoch plus a (deprecated) timezone.
    Date {
        /// Milliseconds since 1970-01-01 UTC.
        millis: f64,
        /// Timezone offset in minutes (AMF0 says it should be 0).
        timezone: i16,
    },
    /// String longer than 65535 bytes (AMF0 0x0C).
    LongString(String),
    /// XML document as text (AMF0 0x0F).
    Xml(String),
    /// Object with a class name (AMF0 0x10).
    TypedObject {
        /// The registered class name.
        class: String,
        /// Ordered key/value pairs.
        properties: Vec<(String, Value)>,
    },
}

impl Value {
    /// The text of a `String`, `LongString` or `Xml` value.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) | Value::LongString(s) | Value::Xml(s) => Some(s),
            _ => None,
        }
    }

    /// The number of a `Number` value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Number(n) => Some(*n),
            _ => None,
        }
    }

    /// The boolean of a `Boolean` value.
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Boolean(b) => Some(*b),
            _ => None,
        }
    }

    /// The key/value pairs of an `Object`, `EcmaArray` or `TypedObject`.
    pub fn properties(&self) -> Option<&[(String, Value)]> {
        match self {
            Value::Object(p) | Value::EcmaArray(p) => Some(p),
            Value::TypedObject { properties, .. } => Some(properties),
            _ => None,
        }
    }

    /// The first property named `key` of an object or ECMA array.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.properties()?
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// True for `Null` and `Undefined`.
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null | Value::Undefined)
    }

    /// Number of nodes in this tree (this value plus all nested values), used
    /// to bound reference expansion.
    pub fn node_count(&self) -> usize {
        match self {
            Value::Object(p) | Value::EcmaArray(p) | Value::TypedObject { properties: p, .. } => {
                1 + p.iter().map(|(_, v)| v.node_count()).sum::<usize>()
            }
            Value::StrictArray(v) => 1 + v.iter().map(Value::node_count).sum::<usize>(),
            _ => 1,
        }
    }
}

impl From<&str> for Value {
    fn from(s: &str) -> Self {
        Value::String(s.to_owned())
    }
}

impl From<String> for Value {
    fn from(s: String) -> Self {
        Value::String(s)
    }
}

impl From<f64> for Value {
    fn from(n: f64) -> Self {
        Value::Number(n)
    }
}

impl From<bool> for Value {
    fn from(b: bool) -> Self {
        Value::Boolean(b)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let v = Value::Object(vec![
            ("app".into(), "live".into()),
            ("n".into(), 3.0.into()),
        ]);
        assert_eq!(v.get("app").and_then(Value::as_str), Some("live"));
        assert_eq!(v.get("n").and_then(Value::as_f64), Some(3.0));
        assert!(v.get("x").is_none());
        assert_eq!(v.node_count(), 3);
        assert!(Value::Null.is_null());
        assert_eq!(Value::Boolean(true).as_bool(), Some(true));
    }
}
