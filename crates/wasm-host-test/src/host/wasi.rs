//! The WASI calls a Rust module makes: stdout/stderr (`fd_write`), clocks, deterministic
//! `random_get`, empty args/environ, and `proc_exit` ([`HostAbort`]: the VM fails).

use super::memory::{arg, arg32, reply, wasi_mem, write, write_u32, write_u64, HostResult};
use super::state::HostState;
use crate::abi::{errno, status::UNIMPLEMENTED};
use wasmi::Caller;

/// A host call failed in a way Envoy would turn into a VM failure (proc_exit) — surfaced as a
/// trap of the guest call.
#[derive(Debug)]
pub struct HostAbort(pub String);

impl std::fmt::Display for HostAbort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl wasmi::errors::HostError for HostAbort {}

impl HostState {
    fn next_random(&mut self) -> u64 {
        // splitmix64: deterministic "random" bytes for random_get
        self.rng = self.rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

/// The WASI calls.
pub(super) fn call(caller: &mut Caller<'_, HostState>, name: &str, a: &[u64]) -> HostResult {
    match name {
        "fd_write" => {
            let fd = arg32(a, 0);
            if fd != 1 && fd != 2 {
                return reply(errno::BADF);
            }
            let mut out = Vec::new();
            for i in 0..arg(a, 2) {
                let iov = wasi_mem!(caller, arg(a, 1) + i * 8, 8);
                let word = |o: usize| {
                    iov.get(o..o + 4)
                        .and_then(|b| <[u8; 4]>::try_from(b).ok())
                        .map_or(0, u32::from_le_bytes)
                };
                let (ptr, len) = (word(0), word(4));
                if len != 0 {
                    out.extend(wasi_mem!(caller, u64::from(ptr), u64::from(len)));
                }
            }
            let n = out.len() as u32;
            let st = caller.data_mut();
            if fd == 1 {
                st.stdout.extend(out);
            } else {
                st.stderr.extend(out);
            }
            reply(if write_u32(caller, arg(a, 3), n) {
                errno::SUCCESS
            } else {
                errno::FAULT
            })
        }
        "fd_read" | "poll_oneoff" | "fd_prestat_dir_name" => reply(errno::NOSYS),
        "fd_close" | "fd_seek" | "sched_yield" => reply(errno::SUCCESS),
        "fd_prestat_get" => reply(errno::BADF),
        "fd_fdstat_get" => {
            let fd = arg32(a, 0);
            if fd != 1 && fd != 2 {
                return reply(errno::BADF);
            }
            let mut stat = [0u8; 24];
            if let Some(b) = stat.get_mut(8..16) {
                b.copy_from_slice(&64u64.to_le_bytes());
            }
            write(caller, arg(a, 1), &stat);
            reply(errno::SUCCESS)
        }
        "environ_get" | "args_get" => reply(errno::SUCCESS),
        "environ_sizes_get" | "args_sizes_get" => reply(
            if write_u32(caller, arg(a, 0), 0) && write_u32(caller, arg(a, 1), 0) {
                errno::SUCCESS
            } else {
                errno::FAULT
            },
        ),
        "clock_time_get" => {
            let t = match arg32(a, 0) {
                0 => caller.data().now_nanos,
                1 => caller.data().monotonic_nanos,
                _ => return reply(errno::NOTSUP),
            };
            reply(if write_u64(caller, arg(a, 2), t) {
                errno::SUCCESS
            } else {
                errno::FAULT
            })
        }
        "clock_res_get" => reply(if write_u64(caller, arg(a, 1), 1) {
            errno::SUCCESS
        } else {
            errno::FAULT
        }),
        "random_get" => {
            let len = arg(a, 1);
            if len > 64 * 1024 {
                return reply(errno::INVAL);
            }
            let mut buf = Vec::with_capacity(len as usize);
            while (buf.len() as u64) < len {
                let r = caller.data_mut().next_random();
                buf.extend_from_slice(&r.to_le_bytes());
            }
            buf.truncate(len as usize);
            reply(if write(caller, arg(a, 0), &buf) {
                errno::SUCCESS
            } else {
                errno::FAULT
            })
        }
        "proc_exit" => Err(wasmi::Error::host(HostAbort(format!(
            "wasi proc_exit({}) (Envoy: the VM fails)",
            arg32(a, 0) as i32
        )))),
        // not reached: `KNOWN` routes only this group's names here
        _ => reply(UNIMPLEMENTED),
    }
}
