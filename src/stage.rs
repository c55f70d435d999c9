//! Stage marks inside the pure core, for the `profile` build only (README-free: never in a
//! shipped wasm). The glue installs a function that reads the host clock
//! (`src/host/profile.rs`); without the feature every mark compiles to nothing.

#[cfg(feature = "profile")]
thread_local! {
    static HOOK: std::cell::Cell<Option<fn(&'static str)>> = const { std::cell::Cell::new(None) };
}

/// Ends the current profiling stage, naming it (no-op unless built with `profile`).
#[inline(always)]
pub fn mark(name: &'static str) {
    #[cfg(feature = "profile")]
    HOOK.with(|h| {
        if let Some(f) = h.get() {
            f(name)
        }
    });
    #[cfg(not(feature = "profile"))]
    let _ = name;
}

/// Installs the function [`mark`] calls.
#[cfg(feature = "profile")]
pub fn install(f: fn(&'static str)) {
    HOOK.with(|h| h.set(Some(f)));
}
