//! Table cases: the claims JSON, then `jti`, `htm` and `htu` (with the URI normalization the
//! comparison applies).

use crate::common::make_proof;
use crate::negative::*;
use dpop_guard::DenyReason;
use serde_json::{json, Value};

/// Claims JSON, jti, htm, htu.
pub fn cases(t: &mut Table, fx: &Fixture) {
    use DenyReason as R;
    let Fixture {
        ed,
        good_claims,
        ed_h,
        good,
        ..
    } = fx.clone();
    // ---- claims JSON -------------------------------------------------------------------------
    let dup_claims = format!(r#"{{"jti":"a","jti":"b","htm":"GET","htu":"{URI}","iat":{NOW}}}"#);
    t.deny(
        "duplicate claim",
        make_proof(&ed_h, &dup_claims, &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims array",
        make_proof(&ed_h, "[]", &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims not JSON",
        make_proof(&ed_h, "jti=1", &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims empty payload",
        make_proof(&ed_h, "", &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims with trailing comma",
        make_proof(&ed_h, &good_claims.replacen('}', ",}", 1), &ed),
        R::ProofClaimsInvalid,
    );
    t.deny(
        "claims deeply nested",
        make_proof(
            &ed_h,
            &format!(r#"{{"x":{}{}}}"#, "[".repeat(200), "]".repeat(200)),
            &ed,
        ),
        R::ProofClaimsInvalid,
    );

    // ---- jti ---------------------------------------------------------------------------------
    let c =
        |f: &dyn Fn(&mut serde_json::Map<String, Value>)| make_proof(&ed_h, &claims_with(f), &ed);
    t.deny(
        "jti missing",
        c(&|m| drop(m.remove("jti"))),
        R::ProofJtiMissing,
    );
    t.deny(
        "jti empty",
        c(&|m| drop(m.insert("jti".into(), json!("")))),
        R::ProofJtiInvalid,
    );
    t.deny(
        "jti 257 bytes",
        c(&|m| drop(m.insert("jti".into(), json!("j".repeat(257))))),
        R::ProofJtiInvalid,
    );
    t.deny(
        "jti number",
        c(&|m| drop(m.insert("jti".into(), json!(12345)))),
        R::ProofJtiInvalid,
    );
    t.deny(
        "jti null",
        c(&|m| drop(m.insert("jti".into(), Value::Null))),
        R::ProofJtiInvalid,
    );
    t.ok(
        "jti 256 bytes",
        c(&|m| drop(m.insert("jti".into(), json!("j".repeat(256))))),
    );

    // ---- htm ---------------------------------------------------------------------------------
    t.deny(
        "htm missing",
        c(&|m| drop(m.remove("htm"))),
        R::ProofHtmMissing,
    );
    t.deny(
        "htm lowercase get",
        c(&|m| drop(m.insert("htm".into(), json!("get")))),
        R::ProofHtmMismatch,
    );
    t.deny(
        "htm other method",
        c(&|m| drop(m.insert("htm".into(), json!("POST")))),
        R::ProofHtmMismatch,
    );
    t.deny(
        "htm array",
        c(&|m| drop(m.insert("htm".into(), json!(["GET"])))),
        R::ProofHtmMismatch,
    );
    t.deny(
        "htm with space",
        c(&|m| drop(m.insert("htm".into(), json!("GET ")))),
        R::ProofHtmMismatch,
    );
    t.ok(
        "htm matches POST request",
        c(&|m| drop(m.insert("htm".into(), json!("POST")))),
    )
    .method("POST");

    // ---- htu ---------------------------------------------------------------------------------
    let htu = |u: &str| {
        let u = u.to_owned();
        c(&move |m| drop(m.insert("htu".into(), json!(u.clone()))))
    };
    t.deny(
        "htu missing",
        c(&|m| drop(m.remove("htu"))),
        R::ProofHtuMissing,
    );
    t.deny("htu relative", htu("/resource"), R::ProofHtuInvalid);
    t.deny(
        "htu ftp scheme",
        htu("ftp://api.example.com/resource"),
        R::ProofHtuInvalid,
    );
    t.deny(
        "htu with userinfo",
        htu("https://user@api.example.com/resource"),
        R::ProofHtuInvalid,
    );
    t.deny(
        "htu bad port",
        htu("https://api.example.com:99999/resource"),
        R::ProofHtuInvalid,
    );
    t.deny(
        "htu number",
        c(&|m| drop(m.insert("htu".into(), json!(443)))),
        R::ProofHtuInvalid,
    );
    t.deny("htu empty", htu(""), R::ProofHtuInvalid);
    t.deny(
        "htu http vs https request",
        htu("http://api.example.com/resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu https vs http request",
        good.clone(),
        R::ProofHtuMismatch,
    )
    .uri("http://api.example.com/resource");
    t.deny(
        "htu other path",
        htu("https://api.example.com/other"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu path prefix only",
        htu("https://api.example.com/res"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu trailing slash",
        htu("https://api.example.com/resource/"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu path case differs",
        htu("https://api.example.com/Resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu other host",
        htu("https://evil.example.com/resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "htu other port",
        htu("https://api.example.com:8443/resource"),
        R::ProofHtuMismatch,
    );
    t.deny(
        "request URI itself unparsable",
        good.clone(),
        R::ProofHtuMismatch,
    )
    .uri("not a uri");
    t.ok("query string ignored (request side)", good.clone())
        .uri("https://api.example.com/resource?a=1&b=2");
    t.ok(
        "query and fragment ignored (claim side)",
        htu("https://api.example.com/resource?x=y#frag"),
    );
    t.ok(
        "default port in htu",
        htu("https://api.example.com:443/resource"),
    );
    t.ok("default port in request", good.clone())
        .uri("https://api.example.com:443/resource");
    t.ok(
        "scheme and host case-insensitive",
        htu("HTTPS://API.Example.COM/resource"),
    );
    t.ok(
        "unreserved percent-encoding normalized",
        htu("https://api.example.com/%72esource"),
    );
    t.ok(
        "dot segments removed",
        htu("https://api.example.com/a/../resource"),
    );
}
