//! Stage timing of `on_http_request_headers` in the real proxy (feature `profile`, off in
//! the shipped wasm): the host clock is read at each mark (the glue's and the pure core's,
//! [`crate::stage::mark`]), the time between marks is summed per stage name, and every
//! 20 000 requests a `warn` line gives the mean µs per stage. The clock hostcall itself costs
//! 0.15–0.25 µs per mark (the calibration below measures it).

#[cfg(feature = "profile")]
mod imp {
    use proxy_wasm::hostcalls;
    use std::cell::RefCell;

    const STAGES: usize = 24;
    const EVERY: u64 = 20_000;

    struct Acc {
        sums: [u64; STAGES],
        names: [&'static str; STAGES],
        requests: u64,
        /// The clock at the last mark of the request in progress (`None`: none is).
        last: Option<u64>,
    }

    thread_local! {
        static ACC: RefCell<Acc> = const { RefCell::new(Acc { sums: [0; STAGES], names: [""; STAGES], requests: 0, last: None }) };
    }

    fn now_ns() -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    }

    /// Adds the time since the last mark to the stage called `name`.
    fn mark_global(name: &'static str) {
        let t = now_ns();
        ACC.with(|a| {
            let Ok(mut a) = a.try_borrow_mut() else {
                return;
            };
            let a = &mut *a;
            let Some(last) = a.last else {
                return;
            };
            let dt = t.saturating_sub(last);
            let slot = a
                .names
                .iter()
                .position(|n| *n == name)
                .or_else(|| a.names.iter().position(|n| n.is_empty()));
            if let Some(i) = slot {
                if let (Some(s), Some(n)) = (a.sums.get_mut(i), a.names.get_mut(i)) {
                    *s += dt;
                    *n = name;
                }
            }
        });
        let t = now_ns();
        ACC.with(|a| {
            if let Ok(mut a) = a.try_borrow_mut() {
                a.last = Some(t);
            }
        });
    }

    pub struct Probe;

    impl Probe {
        pub fn start() -> Probe {
            crate::stage::install(mark_global);
            let t = now_ns();
            ACC.with(|a| {
                if let Ok(mut a) = a.try_borrow_mut() {
                    a.last = Some(t);
                }
            });
            Probe
        }

        /// Ends the current stage, naming it.
        pub fn mark(&mut self, name: &'static str) {
            mark_global(name);
        }

        pub fn finish(self) {
            let calibrate = ACC.with(|a| a.try_borrow().is_ok_and(|a| a.requests + 1 == 5_000));
            if calibrate {
                super::calibrate();
            }
            ACC.with(|a| {
                let Ok(mut a) = a.try_borrow_mut() else {
                    return;
                };
                a.last = None;
                a.requests += 1;
                if a.requests % EVERY == 0 {
                    let n = a.requests as f64;
                    let line = a
                        .names
                        .iter()
                        .zip(a.sums.iter())
                        .filter(|(name, _)| !name.is_empty())
                        .map(|(name, s)| format!("{name}={:.1}", *s as f64 / n / 1000.0))
                        .collect::<Vec<_>>()
                        .join(" ");
                    let _ = hostcalls::log(
                        proxy_wasm::types::LogLevel::Warn,
                        &format!(
                            "dpop_guard profile after {} requests (µs/request): {line}",
                            a.requests
                        ),
                    );
                }
            });
        }
    }
}

/// Wall time of each hostcall the request path makes, 200 in a row inside the 5000th
/// request (warm caches: a lower bound of the cost under load), logged once at `warn`.
#[cfg(feature = "profile")]
fn calibrate() {
    use super::abi;
    use crate::jose::host_crypto;
    const N: u64 = 200;
    fn time(name: &str, mut f: impl FnMut()) -> String {
        let t0 = abi::now_nanos();
        for _ in 0..N {
            f();
        }
        let dt = abi::now_nanos().saturating_sub(t0);
        format!("{name}={:.2}", dt as f64 / N as f64 / 1000.0)
    }
    let bucket = [7u8; 384];
    let _ = abi::set_shared_data("dpop_guard.profile", &bucket, 0);
    let counter = abi::define_counter("dpop_guard.profile_calls");
    let spki = host_crypto::p256_spki(&host_crypto::PROBE_P256_X, &host_crypto::PROBE_P256_Y);
    let sig = host_crypto::es256_der_signature(&host_crypto::PROBE_P256_SIG).unwrap_or_default();
    let args = host_crypto::verify_arguments(&spki, &sig, host_crypto::PROBE_TEXT);
    let bad_key = host_crypto::verify_arguments(&[0x30, 0x00], &sig, host_crypto::PROBE_TEXT);
    let parts = [
        time("clock", || {
            let _ = abi::now_nanos();
        }),
        time("header_map_pairs", || {
            let _ = abi::request_header_map();
        }),
        time("shared_data_get", || {
            let _ = abi::shared_data("dpop_guard.profile");
        }),
        time("shared_data_set", || {
            let _ = abi::set_shared_data("dpop_guard.profile", &bucket, 0);
        }),
        time("set_property", || {
            let _ = abi::set_property("dpop_guard.profile", b"value");
        }),
        time("replace_header", || {
            let _ = abi::replace_request_header("x-dpop-profile", "value");
        }),
        time("counter", || abi::increment(counter)),
        time("foreign_call_bad_key", || {
            let _ = abi::call_foreign_function(host_crypto::FOREIGN_FUNCTION, &bad_key);
        }),
        time("verify_signature_es256", || {
            let _ = abi::call_foreign_function(host_crypto::FOREIGN_FUNCTION, &args);
        }),
    ];
    let _ = abi::remove_request_header("x-dpop-profile");
    log::warn!(
        "dpop_guard profile: hostcalls, µs per call (200 in a row): {}",
        parts.join(" ")
    );
}

#[cfg(not(feature = "profile"))]
mod imp {
    pub struct Probe;

    impl Probe {
        #[inline(always)]
        pub fn start() -> Probe {
            Probe
        }
        #[inline(always)]
        pub fn mark(&mut self, _: &'static str) {}
        #[inline(always)]
        pub fn finish(self) {}
    }
}

pub use imp::Probe;
