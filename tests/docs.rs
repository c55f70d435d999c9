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
    for key in dpop_guard::config::keys() {
        let documented = match key.strip_prefix("routes[].") {
            Some(k) => text.contains(&format!("`{key}`")) || text.contains(&format!("`{k}`")),
            None => text.contains(&format!("`{key}`")) || text.contains(&format!("`{key}.")),
        };
        assert!(documented, "README lacks config key `{key}`");
    }
    assert!(dpop_guard::config::keys().len() >= 30);
}
