//! Every plugin configuration this repository ships is one the filter accepts: the
//! `configuration` StringValue of each dpop_guard wasm filter in the Envoy bootstraps
//! (`envoy/*.yaml`) and the `pluginConfig` of each dpop-guard WasmPlugin in the Istio manifests
//! (`envoy/istio/*.yaml`) go through `Config::parse`, the parser `on_configure` runs.
//!
//! Guards against a vacuous pass: minimum counts (an empty glob or a renamed key fails), and
//! each configuration found is also broken on purpose and must then be refused.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use dpop_guard::config::Config;
use serde::Deserialize;
use serde_json::{Map, Value};
use std::fs;
use std::path::{Path, PathBuf};

/// envoy.yaml, envoy-jwt-authn.yaml, envoy-redis.yaml, envoy-policy.yaml and envoy-arcp.yaml
/// today; raise when adding one, never lower to pass.
const MIN_ENVOY_CONFIGS: usize = 5;
/// wasmplugin-gateway.yaml, wasmplugin-sidecar.yaml, wasmplugin-authz-jwt.yaml.
const MIN_ISTIO_CONFIGS: usize = 3;

const WASM_FILTER: &str = "envoy.filters.http.wasm";
const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
const STRING_VALUE: &str = "type.googleapis.com/google.protobuf.StringValue";
const PROBE_KEY: &str = "dpop_guard_shipped_configs_probe";

/// One plugin configuration: where it was found and the bytes the filter would receive.
struct Shipped {
    origin: String,
    text: String,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("directory entry").path())
        .filter(|p| {
            p.is_file() && matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
        })
        .collect();
    files.sort();
    files
}

/// All documents of a (multi-document) YAML file, as JSON values.
fn documents(path: &Path) -> Vec<Value> {
    let text = fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| {
            Value::deserialize(doc)
                .unwrap_or_else(|e| panic!("{}: not valid YAML: {e}", path.display()))
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn walk<'a>(v: &'a Value, out: &mut Vec<&'a Map<String, Value>>) {
    match v {
        Value::Object(m) => {
            out.push(m);
            m.values().for_each(|c| walk(c, out));
        }
        Value::Array(a) => a.iter().for_each(|c| walk(c, out)),
        _ => {}
    }
}

fn str_at<'a>(v: &'a Value, path: &[&str]) -> Option<&'a str> {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_str)
}

/// The dpop_guard filters of Envoy bootstraps: `typed_config.config.configuration.value`.
fn envoy_configs() -> Vec<Shipped> {
    let mut found = Vec::new();
    for path in yaml_files(&repo().join("envoy")) {
        for (d, doc) in documents(&path).iter().enumerate() {
            let mut nodes = Vec::new();
            walk(doc, &mut nodes);
            for (f, node) in nodes
                .into_iter()
                .filter(|n| n.get("name").and_then(Value::as_str) == Some(WASM_FILTER))
                .enumerate()
            {
                let origin = format!("{} (document {d}, wasm filter {f})", path.display());
                let tc = node
                    .get("typed_config")
                    .unwrap_or_else(|| panic!("{origin}: no typed_config"));
                assert_eq!(
                    str_at(tc, &["@type"]),
                    Some(WASM_TYPE),
                    "{origin}: typed_config @type"
                );
                let config = tc
                    .get("config")
                    .unwrap_or_else(|| panic!("{origin}: no config"));
                let module =
                    str_at(config, &["vm_config", "code", "local", "filename"]).unwrap_or_default();
                let is_ours = module.ends_with("dpop_guard.wasm")
                    || str_at(config, &["root_id"]) == Some("dpop_guard");
                assert!(is_ours, "{origin}: a wasm filter that is not dpop_guard ({module:?}); this test knows only ours");
                let text = match config.get("configuration") {
                    None => String::new(),
                    Some(c) => {
                        // A Struct would reach the filter as binary protobuf, not JSON.
                        assert_eq!(
                            str_at(c, &["@type"]),
                            Some(STRING_VALUE),
                            "{origin}: configuration must be a StringValue"
                        );
                        str_at(c, &["value"])
                            .unwrap_or_else(|| panic!("{origin}: StringValue without value"))
                            .to_owned()
                    }
                };
                found.push(Shipped { origin, text });
            }
        }
    }
    found
}

/// The dpop-guard WasmPlugins: `spec.pluginConfig`, which Istio hands to the filter as JSON.
fn istio_configs() -> Vec<Shipped> {
    let mut found = Vec::new();
    for path in yaml_files(&repo().join("envoy").join("istio")) {
        for (d, doc) in documents(&path).iter().enumerate() {
            if str_at(doc, &["kind"]) != Some("WasmPlugin") {
                continue;
            }
            let name = str_at(doc, &["metadata", "name"]).unwrap_or("?");
            let origin = format!("{} (document {d}, WasmPlugin {name})", path.display());
            assert!(
                str_at(doc, &["apiVersion"]).is_some_and(|a| a.starts_with("extensions.istio.io/")),
                "{origin}: apiVersion"
            );
            let spec = doc
                .get("spec")
                .unwrap_or_else(|| panic!("{origin}: no spec"));
            let url = str_at(spec, &["url"]).unwrap_or_default();
            let is_ours =
                url.contains("dpop-guard") || str_at(spec, &["pluginName"]) == Some("dpop_guard");
            assert!(is_ours, "{origin}: a WasmPlugin that is not dpop-guard ({url:?}); this test knows only ours");
            let text = match spec.get("pluginConfig") {
                None => String::new(),
                Some(c) => {
                    assert!(c.is_object(), "{origin}: pluginConfig must be an object");
                    serde_json::to_string(c).expect("JSON")
                }
            };
            found.push(Shipped { origin, text });
        }
    }
    found
}

fn assert_accepted(configs: &[Shipped]) {
    for c in configs {
        if let Err(e) = Config::parse(c.text.as_bytes()) {
            panic!(
                "{}: the filter refuses this configuration: {e}\n{}",
                c.origin, c.text
            );
        }
    }
}

/// A copy of `text` with an unknown key added to the top-level object and, when present, to each
/// nested object the parser reads; each copy must be refused, naming the key.
fn assert_breakable(configs: &[Shipped]) {
    for c in configs {
        let original: Value = if c.text.trim().is_empty() {
            Value::Object(Map::new())
        } else {
            serde_json::from_str(&c.text).unwrap_or_else(|e| panic!("{}: not JSON: {e}", c.origin))
        };
        let mut targets = vec![(Vec::<&str>::new(), PROBE_KEY.to_owned())];
        for section in ["access_token", "replay", "nonce"] {
            if original.get(section).is_some_and(Value::is_object) {
                targets.push((vec![section], format!("{section}.{PROBE_KEY}")));
            }
        }
        for (path, expected_key) in targets {
            let mut broken = original.clone();
            let obj = path
                .iter()
                .try_fold(&mut broken, |v, k| v.get_mut(*k))
                .and_then(Value::as_object_mut)
                .expect("object");
            obj.insert(PROBE_KEY.to_owned(), Value::Bool(true));
            let text = serde_json::to_string(&broken).expect("JSON");
            match Config::parse(text.as_bytes()) {
                Ok(_) => panic!(
                    "{}: accepted with an unknown key at {expected_key}",
                    c.origin
                ),
                Err(e) => assert_eq!(e.key, expected_key, "{}: {e}", c.origin),
            }
        }
    }
}

#[test]
fn envoy_bootstraps_carry_valid_plugin_configs() {
    let configs = envoy_configs();
    assert!(
        configs.len() >= MIN_ENVOY_CONFIGS,
        "found {} dpop_guard filters in envoy/*.yaml, expected at least {MIN_ENVOY_CONFIGS}",
        configs.len()
    );
    assert_accepted(&configs);
    assert_breakable(&configs);
}

#[test]
fn istio_wasmplugins_carry_valid_plugin_configs() {
    let configs = istio_configs();
    assert!(
        configs.len() >= MIN_ISTIO_CONFIGS,
        "found {} dpop-guard WasmPlugins in envoy/istio/*.yaml, expected at least {MIN_ISTIO_CONFIGS}",
        configs.len()
    );
    assert_accepted(&configs);
    assert_breakable(&configs);
}

#[test]
fn the_checks_can_fail() {
    // The same helpers on configurations known to be bad, so a helper that accepts everything
    // cannot hide behind the shipped files being good.
    for bad in [
        r#"{"replay": {"store": "remote"}}"#,
        r#"{"routes": [{"prefix": "/healthz", "policy": false}]}"#,
        r#"{"access_token": {"verify": "keys"}}"#,
    ] {
        let shipped = [Shipped {
            origin: "inline".into(),
            text: bad.into(),
        }];
        let refused = std::panic::catch_unwind(|| assert_accepted(&shipped)).is_err();
        assert!(refused, "accepted: {bad}");
    }
}
