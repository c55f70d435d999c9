//! One error type: a message for a one-line `dpop: error: ...` on stderr (exit 2).

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CliError(pub String);

impl CliError {
    pub fn new(msg: impl Into<String>) -> Self {
        CliError(msg.into())
    }

    pub fn json(e: serde_json::Error) -> Self {
        CliError(format!("JSON encoding failed: {e}"))
    }
}

impl fmt::Display for CliError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Keep it on one line whatever the source said.
        f.write_str(&self.0.replace(['\n', '\r'], " "))
    }
}

impl std::error::Error for CliError {}

/// `Err(CliError)` from a format string.
#[macro_export]
macro_rules! bail {
    ($($arg:tt)*) => {
        return Err($crate::error::CliError(format!($($arg)*)))
    };
}

impl From<dpop_client::ClientError> for CliError {
    fn from(e: dpop_client::ClientError) -> Self {
        CliError(e.0)
    }
}
