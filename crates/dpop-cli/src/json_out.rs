//! Ordered JSON objects for output: members come out in the order they were set (serde_json's
//! own map sorts them, and we do not want to switch on `preserve_order` for the whole workspace).

use crate::error::CliError;
use serde_json::Value;

/// A JSON object whose members keep insertion order; setting an existing name replaces it in place.
#[derive(Debug, Clone, Default)]
pub struct OrderedObject(Vec<(String, Value)>);

impl OrderedObject {
    pub fn new() -> Self {
        OrderedObject(Vec::new())
    }

    pub fn set(&mut self, name: &str, value: impl Into<Value>) -> &mut Self {
        let value = value.into();
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
        self
    }

    /// Compact JSON text (no whitespace).
    pub fn to_json(&self) -> Result<String, CliError> {
        let mut out = String::from("{");
        for (i, (k, v)) in self.0.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(&serde_json::to_string(k).map_err(CliError::json)?);
            out.push(':');
            out.push_str(&serde_json::to_string(v).map_err(CliError::json)?);
        }
        out.push('}');
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_order_and_replaces() {
        let mut o = OrderedObject::new();
        o.set("b", 1)
            .set("a", "x")
            .set("b", serde_json::json!([1, 2]));
        assert_eq!(o.to_json().unwrap(), r#"{"b":[1,2],"a":"x"}"#);
    }
}
