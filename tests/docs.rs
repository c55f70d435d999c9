//! Docs are part of the feature: the README must list every stat and problem type the filter
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
//! can emit, and every key the config parser accepts.

use dpop_guard::reason::DenyReason;

fn readme() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn readme_lists_every_deny_reason_and_problem() {
    let text = readme();
    for r in DenyReason::ALL {
        let row = format!(
            "| `denied.{}` | `{}` | {} |",
            r.stat_name(),
            r.problem().slug(),
            r.detail()
        );
        assert!(
            text.contains(&row),
            "README metrics table lacks or misstates: {row}"
        );
        let p = r.problem();
        let prow = format!("| `{}` | {} | {} |", p.slug(), p.status(), p.title());
        assert!(text.contains(&prow), "README problem table lacks: {prow}");
    }
}

#[test]
fn readme_lists_every_config_key() {
    let text = readme();
    let src =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/src/config.rs")).unwrap();
    // every `Option<...>` field of the Raw* serde structs is a key
    // None outside the Raw* structs; Some(prefix) inside one
    let mut section: Option<&str> = None;
    let mut checked = 0;
    for line in src.lines() {
        let t = line.trim();
        if line == "}" {
            section = None;
            continue;
        }
        if let Some(name) = t.strip_prefix("struct Raw") {
            section = Some(match name.trim_end_matches(" {") {
                "AccessToken" => "access_token.",
                "Replay" => "replay.",
                "Nonce" => "nonce.",
                "Route" => "-",
                _ => "",
            });
            continue;
        }
        let Some(section) = section else { continue };
        if section == "-" || t.starts_with("//") {
            continue;
        }
        if let Some((field, ty)) = t.split_once(": ") {
            let nested = ty.starts_with("Option<Raw");
            if nested
                || !(ty.starts_with("Option<") || ty.starts_with("String"))
                || field.contains(' ')
            {
                continue;
            }
            let key = format!("`{section}{field}`");
            let key_alt = format!("`{field}`");
            assert!(
                text.contains(&key) || (section.is_empty() && text.contains(&key_alt)),
                "README lacks config key {key}"
            );
            checked += 1;
        }
    }
    assert!(
        checked >= 25,
        "parsed only {checked} config keys from src/config.rs"
    );
}
