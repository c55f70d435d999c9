//! The plugin configuration parser: arbitrary bytes must give a Config or a ConfigError naming
//! a key — never a panic (a panic in on_configure would abort the VM).
#![no_main]
use dpop_guard::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match Config::parse(data) {
        Ok(cfg) => {
            // whatever parsed must be internally usable
            let _ = cfg.route_policy("/a/b");
            assert!(cfg.replay_ttl(0, 0) > 0);
            assert!(cfg.replay_ttl(i64::MIN, i64::MAX) > 0);
            assert!(cfg.replay_ttl(i64::MAX, i64::MIN) > 0);
            assert!(!cfg.proof.algorithms.is_empty());
        }
        Err(e) => assert!(!e.key.is_empty()),
    }
});
