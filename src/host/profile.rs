//! Stage timing of `on_http_request_headers` in the real proxy (feature `profile`, off in
//! the shipped wasm): the host clock is read at each mark, the time between marks is
//! summed per stage, and every 20 000 requests a `warn` line gives the mean µs per stage.
//! The clock hostcall itself costs about a microsecond per mark.

#[cfg(feature = "profile")]
mod imp {
    use proxy_wasm::hostcalls;
    use std::cell::RefCell;

    const STAGES: usize = 8;
    const EVERY: u64 = 20_000;

    struct Acc {
        sums: [u64; STAGES],
        names: [&'static str; STAGES],
        requests: u64,
    }

    thread_local! {
        static ACC: RefCell<Acc> = const { RefCell::new(Acc { sums: [0; STAGES], names: [""; STAGES], requests: 0 }) };
    }

    fn now_ns() -> u64 {
        hostcalls::get_current_time()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64)
    }

    pub struct Probe {
        last: u64,
        stage: usize,
    }

    impl Probe {
        pub fn start() -> Probe {
            Probe {
                last: now_ns(),
                stage: 0,
            }
        }

        /// Ends the current stage, naming it.
        pub fn mark(&mut self, name: &'static str) {
            let t = now_ns();
            let dt = t.saturating_sub(self.last);
            let stage = self.stage;
            ACC.with(|a| {
                if let Ok(mut a) = a.try_borrow_mut() {
                    let a = &mut *a;
                    if let (Some(s), Some(n)) = (a.sums.get_mut(stage), a.names.get_mut(stage)) {
                        *s += dt;
                        *n = name;
                    }
                }
            });
            self.stage += 1;
            self.last = now_ns();
        }

        pub fn finish(self) {
            ACC.with(|a| {
                let Ok(mut a) = a.try_borrow_mut() else {
                    return;
                };
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
