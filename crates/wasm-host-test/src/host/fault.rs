//! Fault injection: a [`Fault`] makes chosen calls of one import return a chosen status without
//! doing anything; the dispatcher asks [`HostState::take_fault`] before every call.

use super::state::HostState;

/// Make a host call fail: the `skip` first matching calls behave normally, then `times` calls
/// (forever when `None`) return `status` without doing anything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// Import name without module (`proxy_get_header_map_pairs`, `fd_write`, …).
    pub function: String,
    pub status: u32,
    pub skip: usize,
    pub times: Option<usize>,
}

impl Fault {
    pub fn always(function: &str, status: u32) -> Fault {
        Fault {
            function: function.to_owned(),
            status,
            skip: 0,
            times: None,
        }
    }
    /// Only the `n`-th (0-based) call of `function` fails.
    pub fn nth(function: &str, n: usize, status: u32) -> Fault {
        Fault {
            function: function.to_owned(),
            status,
            skip: n,
            times: Some(1),
        }
    }
}

impl HostState {
    pub fn set_faults(&mut self, faults: Vec<Fault>) {
        self.fault_hits = vec![0; faults.len()];
        self.faults = faults;
    }

    pub fn clear_faults(&mut self) {
        self.set_faults(Vec::new());
    }

    /// The status to return instead of calling `function`, if a fault is due; counts the call.
    pub(super) fn take_fault(&mut self, function: &str) -> Option<u32> {
        if self.fault_hits.len() != self.faults.len() {
            self.fault_hits = vec![0; self.faults.len()];
        }
        for (f, hits) in self.faults.iter().zip(self.fault_hits.iter_mut()) {
            if f.function != function {
                continue;
            }
            let n = *hits;
            *hits += 1;
            let active = n >= f.skip && f.times.is_none_or(|t| n < f.skip + t);
            if active {
                return Some(f.status);
            }
        }
        None
    }
}
