//! Strict JSON for JOSE headers, claims and JWKs: objects only at the top, duplicate member
//! names rejected (RFC 7515 §5.2 allows parsers to reject them; accepting them lets two parsers
//! disagree about what was signed), nesting depth capped by serde_json (128), at most
//! [`MAX_MEMBERS`] members per object and [`MAX_ELEMENTS`] elements per array (the duplicate
//! check sorts the names once per object: O(n log n), bounded).

use serde::de::{self, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use std::fmt;

/// Most members one object may have. Proof headers and claims carry fewer than ten, access
/// tokens a few dozen; a 55 KB header of 5 000 members cost 60 ms with a quadratic check.
pub const MAX_MEMBERS: usize = 256;
/// Most elements one array may have (`aud`, `scope` lists, JWKS `keys`).
pub const MAX_ELEMENTS: usize = 1024;
/// Most values one document given to [`parse_object`] may hold, all levels together. The
/// per-object and per-array caps alone let 60 KB of nested small arrays cost 13× a normal
/// proof (`make bench`, worst case 1a); real proofs hold about ten values, tokens a few dozen.
pub const MAX_VALUES: usize = 2048;

std::thread_local! {
    /// Values [`parse_object`] may still read; `None` outside it (the configuration parser
    /// reads operator input without this cap).
    static BUDGET: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Counts one value against the document's budget.
fn spend<E: de::Error>() -> Result<(), E> {
    BUDGET.with(|b| match b.get() {
        None => Ok(()),
        Some(0) => Err(E::custom("too many values")),
        Some(n) => {
            b.set(Some(n - 1));
            Ok(())
        }
    })
}

/// A JSON value with member order preserved and duplicates already rejected.
#[derive(Debug, Clone, PartialEq)]
pub enum Json {
    Null,
    Bool(bool),
    Number(f64),
    /// Integer that fits i64 exactly (kept apart from floats so `iat` stays exact).
    Int(i64),
    Str(String),
    Array(Vec<Json>),
    Object(Object),
}

/// A member is present but has the wrong JSON type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WrongType;

/// A JSON object: members in document order, names unique.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Object(pub Vec<(String, Json)>);

impl Object {
    pub fn get(&self, name: &str) -> Option<&Json> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }
    /// `Ok(None)` when absent, `Err(WrongType)` when present but not a string.
    pub fn str(&self, name: &str) -> Result<Option<&str>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Str(s)) => Ok(Some(s)),
            Some(_) => Err(WrongType),
        }
    }
    pub fn object(&self, name: &str) -> Result<Option<&Object>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Object(o)) => Ok(Some(o)),
            Some(_) => Err(WrongType),
        }
    }
    /// A NumericDate (RFC 7519 §2): integer, or a finite float truncated to whole seconds.
    pub fn numeric_date(&self, name: &str) -> Result<Option<i64>, WrongType> {
        match self.get(name) {
            None => Ok(None),
            Some(Json::Int(i)) => Ok(Some(*i)),
            Some(Json::Number(f)) if f.is_finite() && f.abs() < 1e15 => Ok(Some(f.floor() as i64)),
            Some(_) => Err(WrongType),
        }
    }
}

struct JsonVisitor;

impl<'de> Visitor<'de> for JsonVisitor {
    type Value = Json;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON value")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
        spend::<E>()?;
        Ok(Json::Null)
    }
    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Json, E> {
        spend::<E>()?;
        Ok(Json::Bool(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json, E> {
        spend::<E>()?;
        Ok(Json::Int(v))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json, E> {
        spend::<E>()?;
        Ok(i64::try_from(v)
            .map(Json::Int)
            .unwrap_or(Json::Number(v as f64)))
    }
    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Json, E> {
        spend::<E>()?;
        Ok(Json::Number(v))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Json, E> {
        spend::<E>()?;
        Ok(Json::Str(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Json, E> {
        spend::<E>()?;
        Ok(Json::Str(v))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json, A::Error> {
        spend::<A::Error>()?;
        let mut out = Vec::new();
        while let Some(v) = seq.next_element::<Json>()? {
            if out.len() >= MAX_ELEMENTS {
                return Err(de::Error::custom("too many array elements"));
            }
            out.push(v);
        }
        Ok(Json::Array(out))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json, A::Error> {
        spend::<A::Error>()?;
        let mut out: Vec<(String, Json)> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if out.len() >= MAX_MEMBERS {
                return Err(de::Error::custom("too many object members"));
            }
            let value = map.next_value::<Json>()?;
            out.push((key, value));
        }
        // Duplicates: sort the names once and compare neighbours.
        let mut names: Vec<&str> = out.iter().map(|(k, _)| k.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w.first() == w.get(1)) {
            return Err(de::Error::custom("duplicate member name"));
        }
        Ok(Json::Object(Object(out)))
    }
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Json, D::Error> {
        d.deserialize_any(JsonVisitor)
    }
}

/// Parses bytes that must hold exactly one JSON object (trailing data rejected).
/// At most [`MAX_VALUES`] values in all.
pub fn parse_object(bytes: &[u8]) -> Option<Object> {
    let previous = BUDGET.with(|b| b.replace(Some(MAX_VALUES)));
    let parsed = serde_json::from_slice::<Json>(bytes);
    BUDGET.with(|b| b.set(previous));
    match parsed {
        Ok(Json::Object(o)) => Some(o),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_objects() {
        assert!(parse_object(br#"{"a":1,"b":"x"}"#).is_some());
        assert!(parse_object(br#"{"a":1,"a":2}"#).is_none());
        assert!(parse_object(br#"{"o":{"a":1,"a":2}}"#).is_none());
        assert!(parse_object(br#"[1]"#).is_none());
        assert!(parse_object(br#"{"a":1} x"#).is_none());
        assert!(parse_object(br#"{"a":1,}"#).is_none());
        let deep = "[".repeat(10_000);
        assert!(parse_object(deep.as_bytes()).is_none());
        // duplicates far apart, and in nested objects
        assert!(parse_object(br#"{"a":1,"b":2,"c":3,"d":4,"a":5}"#).is_none());
    }

    #[test]
    fn member_and_element_caps() {
        let obj = |n: usize| {
            let members: Vec<String> = (0..n).map(|i| format!("\"m{i}\":{i}")).collect();
            format!("{{{}}}", members.join(","))
        };
        assert!(parse_object(obj(MAX_MEMBERS).as_bytes()).is_some());
        assert!(parse_object(obj(MAX_MEMBERS + 1).as_bytes()).is_none());
        let arr = |n: usize| format!("{{\"a\":[{}]}}", vec!["1"; n].join(","));
        // the whole document: many small arrays, each under the per-array cap
        let many = |arrays: usize| {
            let one = format!("[{}]", vec!["1"; 15].join(","));
            format!("{{\"a\":[{}]}}", vec![one; arrays].join(","))
        };
        // values: the object, the outer array, and 16 per small array
        assert!(parse_object(many((MAX_VALUES - 2) / 16).as_bytes()).is_some());
        assert!(parse_object(many((MAX_VALUES - 2) / 16 + 1).as_bytes()).is_none());
        // the configuration parser is not capped (operator input, parsed once)
        let big = many(200);
        assert!(serde_json::from_slice::<Json>(big.as_bytes()).is_ok());
        assert!(parse_object(arr(MAX_ELEMENTS).as_bytes()).is_some());
        assert!(parse_object(arr(MAX_ELEMENTS + 1).as_bytes()).is_none());
    }

    #[test]
    fn numeric_dates() {
        let o = parse_object(br#"{"a":1700000000,"b":1.5e9,"c":"1","d":1e300}"#).unwrap();
        assert_eq!(o.numeric_date("a"), Ok(Some(1_700_000_000)));
        assert_eq!(o.numeric_date("b"), Ok(Some(1_500_000_000)));
        assert_eq!(o.numeric_date("c"), Err(WrongType));
        assert_eq!(o.numeric_date("d"), Err(WrongType));
        assert_eq!(o.numeric_date("z"), Ok(None));
    }
}
