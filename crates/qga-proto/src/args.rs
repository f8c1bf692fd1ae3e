//! Decodes command arguments into typed structs with serde, reporting errors in the words
//! of QEMU's input visitor: members are checked in schema order, a missing member wins
//! over an unexpected one, and paths are written like `vcpus[0].online`.
//!
//! Conventions for argument types: optional members are `Option<T>` (an absent member is
//! `None`; a `null` is a type error, as in QEMU); enums are unit-variant enums; an
//! alternate implements `Deserialize` with `deserialize_any` and reports
//! `Error::invalid_type(_, &"TypeName")`.

use std::fmt;

use serde::de::{self, DeserializeOwned, DeserializeSeed, IntoDeserializer, Visitor};

use crate::error::QgaError;
use crate::value::{Dict, Value};

/// One step of the path to a member.
#[derive(Debug, Clone, Copy)]
enum Seg<'a> {
    Root,
    Name(&'a str),
    Index(usize),
}

/// The path to the member being decoded, as a chain of borrowed segments.
#[derive(Debug, Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    seg: Seg<'a>,
}

impl Path<'_> {
    fn render(&self, out: &mut String) {
        if let Some(p) = self.parent {
            p.render(out);
        }
        match self.seg {
            Seg::Root => {}
            Seg::Name(n) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(n);
            }
            Seg::Index(i) => {
                out.push('[');
                out.push_str(&i.to_string());
                out.push(']');
            }
        }
    }

    fn full(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }

    /// QEMU uses the bare member name (or "null" inside a list) in some texts.
    fn leaf(&self) -> String {
        match self.seg {
            Seg::Name(n) => n.to_string(),
            _ => "null".to_string(),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Kind {
    InvalidType(String),
    Missing,
    Unexpected,
    NotAccepted(String),
    Expects(String),
    Custom(String),
}

/// An argument error; its `Display` is QEMU's text.
#[derive(Debug, Clone, PartialEq)]
pub struct ArgError {
    kind: Kind,
    /// `None` until the deserializer that saw the error attaches where it happened.
    path: Option<String>,
    leaf: Option<String>,
}

impl ArgError {
    fn new(kind: Kind) -> ArgError {
        ArgError {
            kind,
            path: None,
            leaf: None,
        }
    }

    fn at(mut self, path: &Path<'_>) -> ArgError {
        if self.path.is_none() {
            self.path = Some(path.full());
            self.leaf = Some(path.leaf());
        }
        self
    }
}

impl fmt::Display for ArgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.as_deref().unwrap_or("null");
        match &self.kind {
            Kind::InvalidType(exp) => {
                write!(f, "Invalid parameter type for '{path}', expected: {exp}")
            }
            Kind::Missing => write!(f, "Parameter '{path}' is missing"),
            Kind::Unexpected => write!(f, "Parameter '{path}' is unexpected"),
            Kind::NotAccepted(v) => {
                write!(
                    f,
                    "Parameter '{}' does not accept value '{v}'",
                    self.leaf.as_deref().unwrap_or("null")
                )
            }
            Kind::Expects(what) => write!(f, "Parameter '{path}' expects {what}"),
            Kind::Custom(msg) => f.write_str(msg),
        }
    }
}

impl std::error::Error for ArgError {}

impl de::Error for ArgError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        ArgError::new(Kind::Custom(msg.to_string()))
    }

    fn invalid_type(_unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        ArgError::new(Kind::InvalidType(exp.to_string()))
    }

    fn invalid_value(_unexp: de::Unexpected<'_>, exp: &dyn de::Expected) -> Self {
        ArgError::new(Kind::InvalidType(exp.to_string()))
    }

    fn unknown_variant(variant: &str, _expected: &'static [&'static str]) -> Self {
        ArgError::new(Kind::NotAccepted(variant.to_string()))
    }

    fn unknown_field(_field: &str, _expected: &'static [&'static str]) -> Self {
        ArgError::new(Kind::Unexpected)
    }

    fn missing_field(field: &'static str) -> Self {
        ArgError {
            kind: Kind::Missing,
            path: Some(field.to_string()),
            leaf: Some(field.to_string()),
        }
    }
}

impl From<ArgError> for QgaError {
    fn from(e: ArgError) -> QgaError {
        QgaError::generic(e.to_string())
    }
}

/// Decodes a command's `arguments` object into `T`.
pub fn from_args<T: DeserializeOwned>(args: &Dict) -> Result<T, ArgError> {
    let root = Path {
        parent: None,
        seg: Seg::Root,
    };
    let dict = Value::Dict(args.clone());
    T::deserialize(De {
        value: Some(&dict),
        path: root,
    })
}

/// Decodes a command's `arguments` object into `T`, taking ownership (no copy of big
/// strings is avoided yet; this is the entry point the dispatcher uses).
pub fn from_value_dict<T: DeserializeOwned>(args: Dict) -> Result<T, ArgError> {
    let root = Path {
        parent: None,
        seg: Seg::Root,
    };
    let dict = Value::Dict(args);
    T::deserialize(De {
        value: Some(&dict),
        path: root,
    })
}

/// Deserializer over one member; `value: None` means the member is absent.
#[derive(Debug, Clone, Copy)]
struct De<'a, 'p> {
    value: Option<&'a Value>,
    path: Path<'p>,
}

impl<'a, 'p> De<'a, 'p> {
    fn get(&self) -> Result<&'a Value, ArgError> {
        self.value
            .ok_or_else(|| ArgError::new(Kind::Missing).at(&self.path))
    }

    fn type_err(&self, expected: &str) -> ArgError {
        ArgError::new(Kind::InvalidType(expected.to_string())).at(&self.path)
    }

    fn int(&self) -> Result<i64, ArgError> {
        match self.get()? {
            Value::Int(i) => Ok(*i),
            _ => Err(self.type_err("integer")),
        }
    }

    fn uint(&self, what: &str) -> Result<u64, ArgError> {
        match self.get()? {
            Value::UInt(u) => Ok(*u),
            // QEMU accepts negative numbers for unsigned members and wraps them.
            Value::Int(i) => Ok(*i as u64),
            _ => Err(ArgError::new(Kind::Expects(what.to_string())).at(&self.path)),
        }
    }

    fn ranged<T: TryFrom<i64>>(&self, what: &str) -> Result<T, ArgError> {
        let v = self.int()?;
        T::try_from(v).map_err(|_| ArgError::new(Kind::Expects(what.to_string())).at(&self.path))
    }

    fn uranged<T: TryFrom<u64>>(&self, what: &str) -> Result<T, ArgError> {
        let v = self.uint(what)?;
        T::try_from(v).map_err(|_| ArgError::new(Kind::Expects(what.to_string())).at(&self.path))
    }
}

macro_rules! forward_int {
    ($($method:ident $visit:ident $ty:ty, $conv:ident, $name:literal;)*) => {$(
        fn $method<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
            let v: $ty = self.$conv($name)?;
            visitor.$visit(v).map_err(|e: ArgError| e.at(&self.path))
        }
    )*};
}

impl<'a> de::Deserializer<'a> for De<'a, '_> {
    type Error = ArgError;

    fn deserialize_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        let r = match self.get()? {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Int(i) => visitor.visit_i64(*i),
            Value::UInt(u) => visitor.visit_u64(*u),
            Value::Double(d) => visitor.visit_f64(*d),
            Value::Str(s) => visitor.visit_borrowed_str(s),
            // A string held decoded: its text (only guest-file-write's data is handed on
            // decoded, and that command takes it before this deserializer sees it).
            Value::Bytes(b) => visitor.visit_string(crate::b64::encode(b)),
            Value::Stream(s) => visitor.visit_string(crate::b64::encode(&s.read_all())),
            Value::List(_) => return self.deserialize_seq(visitor),
            Value::Dict(_) => return self.deserialize_map(visitor),
        };
        r.map_err(|e: ArgError| e.at(&self.path))
    }

    fn deserialize_bool<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.get()? {
            Value::Bool(b) => visitor
                .visit_bool(*b)
                .map_err(|e: ArgError| e.at(&self.path)),
            _ => Err(self.type_err("boolean")),
        }
    }

    fn deserialize_i64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        let v = self.int()?;
        visitor.visit_i64(v).map_err(|e: ArgError| e.at(&self.path))
    }

    forward_int! {
        deserialize_i8 visit_i8 i8, ranged, "int8";
        deserialize_i16 visit_i16 i16, ranged, "int16";
        deserialize_i32 visit_i32 i32, ranged, "int32";
        deserialize_u8 visit_u8 u8, uranged, "uint8";
        deserialize_u16 visit_u16 u16, uranged, "uint16";
        deserialize_u32 visit_u32 u32, uranged, "uint32";
        deserialize_u64 visit_u64 u64, uint, "uint64";
    }

    fn deserialize_f32<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        let v = match self.get()? {
            Value::Int(i) => *i as f64,
            Value::UInt(u) => *u as f64,
            Value::Double(d) => *d,
            _ => return Err(self.type_err("number")),
        };
        visitor.visit_f64(v).map_err(|e: ArgError| e.at(&self.path))
    }

    fn deserialize_char<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.get()? {
            Value::Str(s) => visitor
                .visit_borrowed_str(s)
                .map_err(|e: ArgError| e.at(&self.path)),
            Value::Bytes(b) => visitor
                .visit_string(crate::b64::encode(b))
                .map_err(|e: ArgError| e.at(&self.path)),
            Value::Stream(s) => visitor
                .visit_string(crate::b64::encode(&s.read_all()))
                .map_err(|e: ArgError| e.at(&self.path)),
            _ => Err(self.type_err("string")),
        }
    }

    fn deserialize_string<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.value {
            None => visitor.visit_none(),
            Some(_) => visitor.visit_some(self),
        }
    }

    fn deserialize_unit<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.get()? {
            Value::Null => visitor.visit_unit(),
            _ => Err(self.type_err("null")),
        }
    }

    fn deserialize_unit_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        self.deserialize_unit(visitor)
    }

    fn deserialize_newtype_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.get()? {
            Value::List(items) => {
                let seq = Seq {
                    items,
                    index: 0,
                    parent: &self.path,
                };
                visitor
                    .visit_seq(seq)
                    .map_err(|e: ArgError| e.at(&self.path))
            }
            _ => Err(self.type_err("array")),
        }
    }

    fn deserialize_tuple<V: Visitor<'a>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        match self.get()? {
            Value::Dict(d) => {
                let fields: Vec<&'a str> = d.entries.iter().map(|(k, _)| k.as_str()).collect();
                let map = Members {
                    dict: d,
                    fields,
                    index: 0,
                    parent: &self.path,
                };
                visitor
                    .visit_map(map)
                    .map_err(|e: ArgError| e.at(&self.path))
            }
            _ => Err(self.type_err("object")),
        }
    }

    fn deserialize_struct<V: Visitor<'a>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        let Value::Dict(d) = self.get()? else {
            return Err(self.type_err("object"));
        };
        let map = Members {
            dict: d,
            fields: fields.to_vec(),
            index: 0,
            parent: &self.path,
        };
        let value = visitor
            .visit_map(map)
            .map_err(|e: ArgError| e.at(&self.path))?;
        if let Some((extra, _)) = d
            .entries
            .iter()
            .find(|(k, _)| !fields.contains(&k.as_str()))
        {
            let p = Path {
                parent: Some(&self.path),
                seg: Seg::Name(extra),
            };
            return Err(ArgError::new(Kind::Unexpected).at(&p));
        }
        Ok(value)
    }

    fn deserialize_enum<V: Visitor<'a>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, ArgError> {
        match self.get()? {
            Value::Str(s) => {
                if !variants.contains(&s.as_str()) {
                    return Err(ArgError::new(Kind::NotAccepted(s.clone())).at(&self.path));
                }
                let de: de::value::StrDeserializer<'_, ArgError> = s.as_str().into_deserializer();
                visitor
                    .visit_enum(de)
                    .map_err(|e: ArgError| e.at(&self.path))
            }
            _ => Err(self.type_err("string")),
        }
    }

    fn deserialize_identifier<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'a>>(self, visitor: V) -> Result<V::Value, ArgError> {
        visitor.visit_unit()
    }
}

/// Walks the members of an object in schema order (`fields`), yielding absent ones too so
/// that "missing" is reported at the member's place in the schema.
struct Members<'a, 'p> {
    dict: &'a Dict,
    fields: Vec<&'a str>,
    index: usize,
    parent: &'p Path<'p>,
}

impl<'a> de::MapAccess<'a> for Members<'a, '_> {
    type Error = ArgError;

    fn next_key_seed<K: DeserializeSeed<'a>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, ArgError> {
        let Some(name) = self.fields.get(self.index) else {
            return Ok(None);
        };
        let de: de::value::StrDeserializer<'_, ArgError> = name.into_deserializer();
        seed.deserialize(de).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'a>>(&mut self, seed: V) -> Result<V::Value, ArgError> {
        let name = self.fields.get(self.index).copied().unwrap_or("");
        self.index += 1;
        let path = Path {
            parent: Some(self.parent),
            seg: Seg::Name(name),
        };
        seed.deserialize(De {
            value: self.dict.get(name),
            path,
        })
        .map_err(|e: ArgError| e.at(&path))
    }
}

struct Seq<'a, 'p> {
    items: &'a [Value],
    index: usize,
    parent: &'p Path<'p>,
}

impl<'a> de::SeqAccess<'a> for Seq<'a, '_> {
    type Error = ArgError;

    fn next_element_seed<T: DeserializeSeed<'a>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, ArgError> {
        let Some(item) = self.items.get(self.index) else {
            return Ok(None);
        };
        let path = Path {
            parent: Some(self.parent),
            seg: Seg::Index(self.index),
        };
        self.index += 1;
        seed.deserialize(De {
            value: Some(item),
            path,
        })
        .map(Some)
        .map_err(|e: ArgError| e.at(&path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::framer::{Frame, Framer};
    use serde::Deserialize;

    fn dict(text: &str) -> Dict {
        match Framer::new().feed_collect(text.as_bytes()).pop() {
            Some(Frame::Message(Value::Dict(d))) => d,
            other => panic!("{other:?}"),
        }
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "kebab-case")]
    #[allow(dead_code)]
    struct Vcpu {
        logical_id: i64,
        online: bool,
        can_offline: Option<bool>,
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct SetVcpus {
        vcpus: Vec<Vcpu>,
    }

    #[derive(Debug, Deserialize)]
    struct Write {
        handle: i64,
        #[serde(rename = "buf-b64")]
        buf_b64: String,
        count: Option<i64>,
    }

    #[derive(Debug, Deserialize)]
    #[serde(rename_all = "lowercase")]
    enum Whence {
        Set,
        Cur,
        End,
    }

    #[derive(Debug, Deserialize)]
    struct Seek {
        whence: Whence,
    }

    #[derive(Debug, Deserialize)]
    struct Blk {
        #[serde(rename = "phys-index")]
        phys_index: u64,
    }

    fn err<T: DeserializeOwned + std::fmt::Debug>(text: &str) -> String {
        from_args::<T>(&dict(text)).unwrap_err().to_string()
    }

    #[test]
    fn test_nested_missing_member_path() {
        assert_eq!(
            err::<SetVcpus>(r#"{"vcpus":[{"logical-id":0}]}"#),
            "Parameter 'vcpus[0].online' is missing"
        );
    }

    #[test]
    fn test_nested_wrong_type_path() {
        assert_eq!(
            err::<SetVcpus>(
                r#"{"vcpus":[{"logical-id":0,"online":true},{"logical-id":"x","online":true}]}"#
            ),
            "Invalid parameter type for 'vcpus[1].logical-id', expected: integer"
        );
        assert_eq!(
            err::<SetVcpus>(r#"{"vcpus":{}}"#),
            "Invalid parameter type for 'vcpus', expected: array"
        );
        assert_eq!(
            err::<SetVcpus>(r#"{"vcpus":[1]}"#),
            "Invalid parameter type for 'vcpus[0]', expected: object"
        );
    }

    #[test]
    fn test_nested_unexpected_member_path() {
        assert_eq!(
            err::<SetVcpus>(r#"{"vcpus":[{"logical-id":0,"online":true,"x":1}]}"#),
            "Parameter 'vcpus[0].x' is unexpected"
        );
    }

    #[test]
    fn test_schema_order_and_missing_before_unexpected() {
        assert_eq!(
            err::<Write>(r#"{"handle":"x"}"#),
            "Invalid parameter type for 'handle', expected: integer"
        );
        assert_eq!(
            err::<Write>(r#"{"buf-b64":1}"#),
            "Parameter 'handle' is missing"
        );
        assert_eq!(
            err::<Write>(r#"{"handle":1,"zzz":1}"#),
            "Parameter 'buf-b64' is missing"
        );
        assert_eq!(
            err::<Write>(r#"{"handle":1,"buf-b64":"","zzz":1}"#),
            "Parameter 'zzz' is unexpected"
        );
    }

    #[test]
    fn test_null_optional_is_type_error() {
        assert_eq!(
            err::<Write>(r#"{"handle":1,"buf-b64":"","count":null}"#),
            "Invalid parameter type for 'count', expected: integer"
        );
        let ok: Write = from_args(&dict(r#"{"handle":1,"buf-b64":"QQ=="}"#)).unwrap();
        assert_eq!(
            (ok.handle, ok.buf_b64.as_str(), ok.count),
            (1, "QQ==", None)
        );
    }

    #[test]
    fn test_enum_values() {
        assert_eq!(
            err::<Seek>(r#"{"whence":"SET"}"#),
            "Parameter 'whence' does not accept value 'SET'"
        );
        assert_eq!(
            err::<Seek>(r#"{"whence":1}"#),
            "Invalid parameter type for 'whence', expected: string"
        );
        assert!(matches!(
            from_args::<Seek>(&dict(r#"{"whence":"end"}"#))
                .unwrap()
                .whence,
            Whence::End
        ));
    }

    #[test]
    fn test_int_rejects_uint_and_double() {
        assert_eq!(
            err::<Write>(r#"{"handle":9223372036854775808}"#),
            "Invalid parameter type for 'handle', expected: integer"
        );
        assert_eq!(
            err::<Write>(r#"{"handle":1.0}"#),
            "Invalid parameter type for 'handle', expected: integer"
        );
    }

    #[test]
    fn test_uint64_accepts_negative_and_rejects_string() {
        assert_eq!(
            from_args::<Blk>(&dict(r#"{"phys-index":-1}"#))
                .unwrap()
                .phys_index,
            u64::MAX
        );
        assert_eq!(
            err::<Blk>(r#"{"phys-index":"1"}"#),
            "Parameter 'phys-index' expects uint64"
        );
    }
}
