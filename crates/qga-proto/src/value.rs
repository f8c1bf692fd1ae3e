//! The JSON value model of QEMU's QObject layer: integers, unsigned integers and doubles are
//! distinct, strings are Unicode, and objects keep their members in insertion order.

use std::io::Read;
use std::sync::{Arc, Mutex};

/// A JSON value as QEMU's parser builds it.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` or `false`.
    Bool(bool),
    /// An integer that fits in `i64`.
    Int(i64),
    /// A non-negative integer above `i64::MAX` that fits in `u64`.
    UInt(u64),
    /// Any other number.
    Double(f64),
    /// A string (may contain U+0000, which QEMU stores as modified UTF-8).
    Str(String),
    /// An array.
    List(Vec<Value>),
    /// An object.
    Dict(Dict),
    /// A string whose text is the canonical base64 of these bytes, held as the bytes. Replies
    /// carry it (guest-file-read builds its `buf-b64` member from the data it read, and the
    /// writer encodes it on the way out); the parser makes one for a long string that is
    /// canonical base64 (decoded while it arrived), and [`crate::envelope::parse_request`]
    /// turns every one back into text except guest-file-write's data.
    Bytes(Vec<u8>),
    /// A string whose text is the canonical base64 of bytes read from a source as the writer
    /// encodes them (guest-file-read's data spliced into a pipe: never a copy in the agent's
    /// memory). Only replies carry it; it is written once.
    Stream(ByteStream),
}

/// Binary data of a known length that is read once, when it is written out.
#[derive(Clone)]
pub struct ByteStream {
    len: usize,
    source: Arc<Mutex<Option<Box<dyn Read + Send>>>>,
}

impl ByteStream {
    /// `len` bytes that `source` will give.
    pub fn new(len: usize, source: Box<dyn Read + Send>) -> ByteStream {
        ByteStream {
            len,
            source: Arc::new(Mutex::new(Some(source))),
        }
    }

    /// The number of bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether there are no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Feeds exactly `len` bytes to `sink` in pieces of `piece` bytes (the last may be
    /// shorter), reading the source once; later calls see no source. Bytes the source
    /// failed to give (it cannot: the agent's sources hold all the data before the reply is
    /// built) are zeros, so the text always has the length the reply announced.
    pub fn drain(&self, piece: usize, sink: &mut dyn FnMut(&[u8])) {
        let mut source = self.source.lock().unwrap_or_else(|p| p.into_inner()).take();
        let mut buf = vec![0u8; piece.clamp(1, self.len.max(1))];
        let mut left = self.len;
        while left > 0 {
            let want = buf.len().min(left);
            let mut got = 0;
            while got < want {
                let n = match source.as_mut().map(|s| s.read(&mut buf[got..want])) {
                    Some(Ok(n)) if n > 0 => n,
                    Some(Err(e)) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                    _ => {
                        source = None;
                        buf[got..want].fill(0);
                        want - got
                    }
                };
                got += n;
            }
            sink(&buf[..want]);
            left -= want;
        }
    }

    /// All the bytes (reads the source).
    pub fn read_all(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.len);
        self.drain(64 * 1024, &mut |b| out.extend_from_slice(b));
        out
    }
}

impl std::fmt::Debug for ByteStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ByteStream({} bytes)", self.len)
    }
}

impl PartialEq for ByteStream {
    fn eq(&self, other: &ByteStream) -> bool {
        Arc::ptr_eq(&self.source, &other.source)
    }
}

impl Value {
    /// The QAPI name of this value's type, as used in "expected: …" error texts.
    pub fn kind_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Int(_) | Value::UInt(_) | Value::Double(_) => "number",
            Value::Str(_) | Value::Bytes(_) | Value::Stream(_) => "string",
            Value::List(_) => "array",
            Value::Dict(_) => "object",
        }
    }

    /// A rough upper bound of the value's JSON text length, to size output buffers.
    pub fn size_hint(&self) -> usize {
        match self {
            Value::Str(s) => s.len() + 2,
            Value::Bytes(b) => crate::b64::encoded_len(b.len()) + 2,
            Value::Stream(s) => crate::b64::encoded_len(s.len()) + 2,
            Value::List(l) => 2 + l.iter().map(|v| v.size_hint() + 2).sum::<usize>(),
            Value::Dict(d) => {
                2 + d
                    .entries
                    .iter()
                    .map(|(k, v)| k.len() + 6 + v.size_hint())
                    .sum::<usize>()
            }
            _ => 24,
        }
    }

    /// Builds a value from a `serde_json` value (numbers keep their integer/double nature).
    pub fn from_json(v: serde_json::Value) -> Value {
        match v {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(b) => Value::Bool(b),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Value::Int(i)
                } else if let Some(u) = n.as_u64() {
                    Value::UInt(u)
                } else {
                    Value::Double(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            serde_json::Value::String(s) => Value::Str(s),
            serde_json::Value::Array(a) => {
                Value::List(a.into_iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(o) => Value::Dict(Dict {
                entries: o
                    .into_iter()
                    .map(|(k, v)| (k, Value::from_json(v)))
                    .collect(),
            }),
        }
    }

    /// Converts into a `serde_json` value (a double that JSON cannot carry becomes `null`).
    pub fn into_json(self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(b) => serde_json::Value::Bool(b),
            Value::Int(i) => i.into(),
            Value::UInt(u) => u.into(),
            Value::Double(d) => serde_json::Number::from_f64(d)
                .map(serde_json::Value::Number)
                .unwrap_or(serde_json::Value::Null),
            Value::Str(s) => serde_json::Value::String(s),
            Value::Bytes(b) => serde_json::Value::String(crate::b64::encode(&b)),
            Value::Stream(s) => serde_json::Value::String(crate::b64::encode(&s.read_all())),
            Value::List(l) => {
                serde_json::Value::Array(l.into_iter().map(Value::into_json).collect())
            }
            Value::Dict(d) => serde_json::Value::Object(
                d.entries
                    .into_iter()
                    .map(|(k, v)| (k, v.into_json()))
                    .collect(),
            ),
        }
    }
}

/// A JSON object: members in insertion order, keys unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dict {
    /// The members, in the order they were inserted.
    pub entries: Vec<(String, Value)>,
}

impl Dict {
    /// An empty object.
    pub fn new() -> Dict {
        Dict::default()
    }

    /// The value of member `key`, if present.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.entries.iter().find(|(k, _)| k == key).map(|(_, v)| v)
    }

    /// The value of member `key`, to change in place.
    pub fn get_mut(&mut self, key: &str) -> Option<&mut Value> {
        self.entries
            .iter_mut()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v)
    }

    /// Whether member `key` is present.
    pub fn contains(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Inserts or replaces member `key` (a replaced member keeps its position, as in QDict).
    pub fn insert(&mut self, key: impl Into<String>, value: Value) {
        let key = key.into();
        match self.entries.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = value,
            None => self.entries.push((key, value)),
        }
    }

    /// Removes and returns member `key`.
    pub fn remove(&mut self, key: &str) -> Option<Value> {
        let pos = self.entries.iter().position(|(k, _)| k == key)?;
        Some(self.entries.remove(pos).1)
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the object has no member.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The members in the order QEMU's QDict iterates them (hash bucket order, and within a
    /// bucket the most recently inserted first). QEMU writes objects and checks request
    /// members in this order, so following it gives byte-identical replies and the same
    /// error when a request has several faults.
    pub fn qdict_order(&self) -> Vec<&(String, Value)> {
        let mut items: Vec<(u32, usize, &(String, Value))> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, e)| (qdict_bucket(&e.0), i, e))
            .collect();
        items.sort_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        items.into_iter().map(|(_, _, e)| e).collect()
    }
}

/// Number of hash buckets of a QDict.
const QDICT_BUCKETS: u32 = 512;

/// The QDict bucket of `key` (the classic TDB string hash, reduced modulo the bucket count).
fn qdict_bucket(key: &str) -> u32 {
    let bytes = key.as_bytes();
    // The length factor is a 32-bit unsigned product in C.
    let mut value: u32 =
        0x238F_13AFu32.wrapping_mul(u32::try_from(bytes.len()).unwrap_or(u32::MAX));
    for (i, &b) in bytes.iter().enumerate() {
        let shift = (i.wrapping_mul(5) % 24) as u32;
        value = value.wrapping_add(u32::from(b) << shift);
    }
    1_103_515_243u32.wrapping_mul(value).wrapping_add(12345) % QDICT_BUCKETS
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dict(keys: &[&str]) -> Dict {
        let mut d = Dict::new();
        for k in keys {
            d.insert(*k, Value::Null);
        }
        d
    }

    #[test]
    fn test_qdict_order_error_reply_class_before_desc() {
        let d = dict(&["class", "desc"]);
        let order: Vec<&str> = d.qdict_order().iter().map(|e| e.0.as_str()).collect();
        assert_eq!(order, ["class", "desc"]);
    }

    #[test]
    fn test_qdict_order_matches_observed_exec_status() {
        // Observed from qemu-ga: {"exitcode": 3, "err-data": …, "out-data": …,
        // "err-truncated": false, "out-truncated": false, "exited": true}
        let d = dict(&[
            "exited",
            "exitcode",
            "out-data",
            "err-data",
            "out-truncated",
            "err-truncated",
        ]);
        let order: Vec<&str> = d.qdict_order().iter().map(|e| e.0.as_str()).collect();
        assert_eq!(
            order,
            [
                "exitcode",
                "err-data",
                "out-data",
                "err-truncated",
                "out-truncated",
                "exited"
            ]
        );
    }

    #[test]
    fn test_insert_existing_key_keeps_position() {
        let mut d = dict(&["a", "b"]);
        d.insert("a", Value::Int(1));
        assert_eq!(d.entries[0], ("a".to_string(), Value::Int(1)));
        assert_eq!(d.len(), 2);
    }
}
