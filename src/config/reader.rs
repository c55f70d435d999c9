//! The configuration's JSON reader: one [`Section`] per JSON object, typed getters whose errors
//! name the dotted key (`replay.timeout_ms: must be between 1 and 60000, got 0`). Each feature
//! reads and validates its own section with these (`replay::ReplayConfig::read`, ...).

use crate::json::{Json, Object};
use std::fmt;

/// A configuration error: the dotted key and what is wrong with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub key: String,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

// Config parsing runs once per VM: keep it small rather than fast (wasm size).
#[cold]
#[inline(never)]
pub fn err<T>(key: &str, message: impl Into<String>) -> Result<T, ConfigError> {
    Err(ConfigError {
        key: key.to_owned(),
        message: message.into(),
    })
}

/// One JSON object of the configuration, with the dotted path used in error messages.
pub struct Section<'a> {
    pub obj: &'a Object,
    pub path: String,
}

impl<'a> Section<'a> {
    #[inline(never)]
    pub fn key(&self, name: &str) -> String {
        // A client-chosen key name goes into a log line: quote and escape anything that is not
        // a plain identifier (empty names, dots, control characters).
        let plain = !name.is_empty()
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        let name = if plain {
            name.to_owned()
        } else {
            format!("{name:?}")
        };
        if self.path.is_empty() {
            name
        } else {
            format!("{}.{name}", self.path)
        }
    }

    /// Refuses members outside `allowed` (the first one found is named).
    #[inline(never)]
    pub fn only(&self, allowed: &[&str]) -> Result<(), ConfigError> {
        match self
            .obj
            .0
            .iter()
            .find(|(k, _)| !allowed.contains(&k.as_str()))
        {
            None => Ok(()),
            Some((k, _)) => err(
                &self.key(k),
                format!("unknown key (expected one of: {})", allowed.join(", ")),
            ),
        }
    }

    #[inline(never)]
    pub fn bool(&self, name: &str) -> Result<Option<bool>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Bool(b)) => Ok(Some(*b)),
            Some(_) => err(&self.key(name), "must be true or false"),
        }
    }

    #[inline(never)]
    pub fn int(&self, name: &str) -> Result<Option<i64>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Int(i)) => Ok(Some(*i)),
            Some(_) => err(&self.key(name), "must be an integer"),
        }
    }

    #[inline(never)]
    pub fn uint(&self, name: &str) -> Result<Option<u64>, ConfigError> {
        match self.int(name)? {
            None => Ok(None),
            Some(i) => u64::try_from(i)
                .map(Some)
                .or_else(|_| err(&self.key(name), "must not be negative")),
        }
    }

    #[inline(never)]
    pub fn string(&self, name: &str) -> Result<Option<String>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Str(v)) => Ok(Some(v.clone())),
            Some(_) => err(&self.key(name), "must be a string"),
        }
    }

    #[inline(never)]
    pub fn strings(&self, name: &str) -> Result<Option<Vec<String>>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Array(items)) => items
                .iter()
                .enumerate()
                .map(|(i, v)| match v {
                    Json::Str(v) => Ok(v.clone()),
                    _ => err(&format!("{}[{i}]", self.key(name)), "must be a string"),
                })
                .collect::<Result<Vec<_>, _>>()
                .map(Some),
            Some(_) => err(&self.key(name), "must be an array of strings"),
        }
    }

    #[inline(never)]
    pub fn section(&self, name: &str) -> Result<Option<Section<'a>>, ConfigError> {
        match self.obj.get(name) {
            None => Ok(None),
            Some(Json::Object(o)) => Ok(Some(Section {
                obj: o,
                path: self.key(name),
            })),
            Some(_) => err(&self.key(name), "must be an object"),
        }
    }

    /// A string that must be one of `choices`.
    #[inline(never)]
    pub fn choice<T: Copy>(
        &self,
        name: &str,
        choices: &[(&str, T)],
    ) -> Result<Option<T>, ConfigError> {
        let Some(v) = self.string(name)? else {
            return Ok(None);
        };
        match choices.iter().find(|(n, _)| *n == v) {
            Some((_, t)) => Ok(Some(*t)),
            None => {
                let names: Vec<&str> = choices.iter().map(|(n, _)| *n).collect();
                err(
                    &self.key(name),
                    format!(
                        "unknown value {v:?} (expected one of: {})",
                        names.join(", ")
                    ),
                )
            }
        }
    }
}

pub fn ranged(
    key: &str,
    v: Option<i64>,
    default: i64,
    lo: i64,
    hi: i64,
) -> Result<i64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return err(key, format!("must be between {lo} and {hi}, got {v}"));
    }
    Ok(v)
}

pub fn ranged_u(
    key: &str,
    v: Option<u64>,
    default: u64,
    lo: u64,
    hi: u64,
) -> Result<u64, ConfigError> {
    let v = v.unwrap_or(default);
    if v < lo || v > hi {
        return err(key, format!("must be between {lo} and {hi}, got {v}"));
    }
    Ok(v)
}

/// What an absent section reads as: no members, so every setting takes its default.
pub static EMPTY: Object = Object(Vec::new());

impl<'a> Section<'a> {
    /// The top-level object.
    pub fn root(obj: &'a Object) -> Section<'a> {
        Section {
            obj,
            path: String::new(),
        }
    }

    /// A sub-object, or an empty one (all defaults) when absent.
    pub fn section_or_empty(&self, name: &str) -> Result<Section<'a>, ConfigError> {
        Ok(self.section(name)?.unwrap_or(Section {
            obj: &EMPTY,
            path: self.key(name),
        }))
    }

    pub fn has(&self, name: &str) -> bool {
        self.obj.contains(name)
    }

    pub fn required_string(&self, name: &str) -> Result<String, ConfigError> {
        match self.string(name)? {
            Some(s) => Ok(s),
            None => err(&self.key(name), "is required"),
        }
    }

    /// An integer in `lo..=hi`, `default` when absent.
    pub fn int_in(&self, name: &str, default: i64, lo: i64, hi: i64) -> Result<i64, ConfigError> {
        ranged(&self.key(name), self.int(name)?, default, lo, hi)
    }

    /// A non-negative integer in `lo..=hi`, `default` when absent.
    pub fn uint_in(&self, name: &str, default: u64, lo: u64, hi: u64) -> Result<u64, ConfigError> {
        ranged_u(&self.key(name), self.uint(name)?, default, lo, hi)
    }
}
