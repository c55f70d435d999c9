//! Access-token handling: the Authorization parser, payload-only inspection (`upstream`) and
//! full verification (`keys`) on arbitrary input.
#![no_main]
use dpop_guard::config::Config;
use dpop_guard::token;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn keys_config() -> &'static Config {
    static CFG: OnceLock<Config> = OnceLock::new();
    CFG.get_or_init(|| {
        Config::parse(
            br#"{"access_token": {"verify": "keys", "hs256_secret": "0123456789abcdef0123456789abcdef",
                 "jwks": {"keys": [{"kty":"OKP","crv":"Ed25519","kid":"a","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]},
                 "issuer": "iss", "audiences": ["aud"]}}"#,
        )
        .expect("fuzz config")
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    // raw bytes: Authorization values need not be UTF-8
    if let Ok(Some(c)) = token::extract(&[data]) {
        // a credential is exactly "<scheme> <token68>": never a value with a comma or a tab
        let inner = data.trim_ascii();
        assert!(!inner.contains(&b',') && !inner.contains(&b'\t'));
        assert!(!c.token.is_empty() && !c.token.contains(' '));
    }
    let _ = token::extract(&[data, b"Bearer x"]);
    let _ = token::inspect_unverified(&text);
    let _ = token::verify(&text, &keys_config().access_token, &[], 1_700_000_000, 60);
});
