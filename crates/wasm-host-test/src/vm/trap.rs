//! How a call into the guest fails: [`Trap`] (the guest trapped, ran out of fuel or exited;
//! the VM is dead) and [`StartError`] (why [`Vm::start`](super::Vm::start) gave no
//! configured VM).

use std::fmt;

/// The guest trapped (a Rust panic is `unreachable` after the SDK's panic hook logged it), ran
/// out of fuel, or called `proc_exit`. In Envoy the VM is dead from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// The export being called, with its arguments.
    pub call: String,
    pub message: String,
    /// The panic message the SDK's hook logged (`proxy_log` at Critical), if any.
    pub panic: Option<String>,
    /// Logs and stderr written during the failing call.
    pub transcript: String,
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest trapped in {}: {}", self.call, self.message)?;
        if let Some(p) = &self.panic {
            write!(f, "\n  panic: {p}")?;
        }
        if !self.transcript.is_empty() {
            write!(f, "\n  during the call:\n{}", self.transcript)?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}

/// Why [`Vm::start`](super::Vm::start) did not give a configured VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    Trap(Trap),
    /// `proxy_on_vm_start` returned false.
    VmStartRefused(String),
    /// `proxy_on_configure` returned false (Envoy refuses the configuration).
    ConfigureRefused(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Trap(t) => t.fmt(f),
            StartError::VmStartRefused(log) => write!(f, "proxy_on_vm_start returned false\n{log}"),
            StartError::ConfigureRefused(log) => {
                write!(f, "proxy_on_configure returned false\n{log}")
            }
        }
    }
}

impl std::error::Error for StartError {}

impl From<Trap> for StartError {
    fn from(t: Trap) -> Self {
        StartError::Trap(t)
    }
}
