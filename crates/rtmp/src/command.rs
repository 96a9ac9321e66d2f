//! AMF command messages: `name, transaction id, command object, args...`.

use amf::Value;
use bytes::{Bytes, BytesMut};

use crate::RtmpError;
use crate::message::{MSG_COMMAND_AMF3, MSG_DATA_AMF3};

/// A decoded command message.
#[derive(Debug, Clone, PartialEq)]
pub struct Command {
    /// Command name (`connect`, `publish`, `_result`, ...).
    pub name: String,
    /// Transaction id (0 when no answer is expected).
    pub transaction_id: f64,
    /// Command object (Null when absent).
    pub object: Value,
    /// Further arguments.
    pub args: Vec<Value>,
}

/// The AMF0 body of a command or data message: for the AMF3 variants
/// (types 17 and 15) the leading format byte is skipped.
pub fn amf0_body(msg_type: u8, payload: &Bytes) -> Bytes {
    if (msg_type == MSG_COMMAND_AMF3 || msg_type == MSG_DATA_AMF3) && !payload.is_empty() {
        payload.slice(1..)
    } else {
        payload.clone()
    }
}

impl Command {
    /// Parses an AMF0 command body (see [`amf0_body`]).
    pub fn parse(body: &[u8]) -> Result<Self, RtmpError> {
        let mut values = amf::decode_all(body)?.into_iter();
        let name = match values.next() {
            Some(Value::String(s)) => s,
            _ => {
                return Err(RtmpError::MalformedMessage {
                    msg_type: crate::message::MSG_COMMAND_AMF0,
                    reason: "command without a name",
                });
            }
        };
        let transaction_id = values.next().and_then(|v| v.as_f64()).unwrap_or(0.0);
        let object = values.next().unwrap_or(Value::Null);
        Ok(Self {
            name,
            transaction_id,
            object,
            args: values.collect(),
        })
    }

    /// Encodes as AMF0.
    pub fn encode(&self) -> Bytes {
        build(&self.name, self.transaction_id, &self.object, &self.args)
    }
}

/// Encodes a command: name, transaction id, command object, args.
pub fn build(name: &str, transaction_id: f64, object: &Value, args: &[Value]) -> Bytes {
    let mut b = BytesMut::new();
    amf::encode(&Value::from(name), &mut b);
    amf::encode(&Value::Number(transaction_id), &mut b);
    amf::encode(object, &mut b);
    amf::encode_all(args, &mut b);
    b.freeze()
}

/// Builds an object value from `(key, value)` pairs.
pub fn object(pairs: &[(&str, Value)]) -> Value {
    Value::Object(
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), v.clone()))
            .collect(),
    )
}

/// An onStatus-style info object `{level, code, description}`.
pub fn status_info(level: &str, code: &str, description: &str) -> Value {
    object(&[
        ("level", level.into()),
        ("code", code.into()),
        ("description", description.into()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let c = Command {
            name: "publish".into(),
            transaction_id: 5.0,
            object: Value::Null,
            args: vec!["key".into(), "live".into()],
        };
        assert_eq!(Command::parse(&c.encode()).unwrap(), c);
    }

    #[test]
    fn amf3_command_body() {
        // Type 17: format byte 0, then AMF0 "x", 0.0, an avmplus null.
        let p = Bytes::from_static(&[0, 0x02, 0, 1, b'x', 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x11, 0x01]);
        let c = Command::parse(&amf0_body(MSG_COMMAND_AMF3, &p)).unwrap();
        assert_eq!(c.name, "x");
        assert_eq!(c.object, Value::Null);
        assert!(Command::parse(&[0x05]).is_err());
    }
}
