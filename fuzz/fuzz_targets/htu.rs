//! `htu::normalize` must be idempotent: normalize(normalize(x)) == normalize(x), and a URI
//! must match its own normal form.
#![no_main]

use dpop_guard::htu;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let input = String::from_utf8_lossy(data);
    let Some(once) = htu::normalize(&input) else {
        return;
    };
    let twice = htu::normalize(&once);
    assert_eq!(
        twice.as_deref(),
        Some(once.as_str()),
        "not idempotent for {input:?}"
    );
    assert_eq!(
        htu::matches(&input, &once),
        Some(true),
        "{input:?} does not match its normal form"
    );
});
