//! Loading the module: [`Wasm`] (a compiled `dpop_guard.wasm` with every import linked to the
//! host's dispatcher), where the default build is found ([`WASM_ENV`]), and the warning when
//! that build is older than the filter's sources.

use crate::host::{dispatch, import_spec, HostState, ImportSpec};
use std::fmt;
use std::path::{Path, PathBuf};
use wasmi::{Engine, ExternType, Linker, Module};

/// Environment variable naming the wasm to load (default: the workspace's release build).
pub const WASM_ENV: &str = "DPOP_GUARD_WASM";

/// A compiled module with the host's imports linked; cheap to instantiate many times.
pub struct Wasm {
    pub(super) engine: Engine,
    pub(super) module: Module,
    pub(super) linker: Linker<HostState>,
    pub(super) imports: Vec<ImportSpec>,
    pub path: Option<PathBuf>,
}

impl fmt::Debug for Wasm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wasm").field("path", &self.path).finish()
    }
}

impl Wasm {
    /// `$DPOP_GUARD_WASM`, else `$CARGO_TARGET_DIR` or the workspace `target/`, then
    /// `wasm32-wasip1/release/dpop_guard.wasm` (what `make wasm` builds).
    pub fn default_path() -> PathBuf {
        if let Some(p) = std::env::var_os(WASM_ENV) {
            return PathBuf::from(p);
        }
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target"));
        target.join("wasm32-wasip1/release/dpop_guard.wasm")
    }

    /// [`Wasm::load`] of [`Wasm::default_path`], with a message saying how to build it.
    pub fn load_default() -> Result<Wasm, String> {
        let path = Self::default_path();
        if !path.exists() {
            return Err(format!(
                "{} not found: build it with `make wasm` (or point {WASM_ENV} at a dpop_guard.wasm)",
                path.display()
            ));
        }
        let w = Self::load(&path)?;
        if let Some(warning) = staleness_warning(&path) {
            eprintln!("{warning}");
        }
        Ok(w)
    }

    pub fn load(path: &Path) -> Result<Wasm, String> {
        let bytes =
            std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let mut w = Self::from_bytes(&bytes)?;
        w.path = Some(path.to_owned());
        Ok(w)
    }

    pub fn from_bytes(bytes: &[u8]) -> Result<Wasm, String> {
        let mut config = wasmi::Config::default();
        config.consume_fuel(true);
        let engine = Engine::new(&config);
        let module = Module::new(&engine, bytes).map_err(|e| format!("invalid module: {e}"))?;
        let mut linker = Linker::new(&engine);
        let mut imports = Vec::new();
        for import in module.imports() {
            let ExternType::Func(ty) = import.ty() else {
                return Err(format!(
                    "unsupported import {}.{} (only functions are provided)",
                    import.module(),
                    import.name()
                ));
            };
            let spec = import_spec(import.module(), import.name(), ty);
            imports.push(spec.clone());
            linker
                .func_new(
                    import.module(),
                    import.name(),
                    ty.clone(),
                    move |caller, args, results| dispatch(caller, &spec, args, results),
                )
                .map_err(|e| format!("linking {}: {e}", import.name()))?;
        }
        Ok(Wasm {
            engine,
            module,
            linker,
            imports,
            path: None,
        })
    }

    /// `(module.name, implemented by this host)` for every import.
    pub fn imports(&self) -> Vec<(String, bool)> {
        self.imports
            .iter()
            .map(|s| (s.full_name.to_string(), s.known()))
            .collect()
    }

    pub fn exports(&self) -> Vec<String> {
        self.module.exports().map(|e| e.name().to_owned()).collect()
    }
}

/// A warning when a source file of the filter is newer than the wasm (forgot `make wasm`).
fn staleness_warning(wasm: &Path) -> Option<String> {
    let built = std::fs::metadata(wasm).ok()?.modified().ok()?;
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../src");
    let mut newest = None;
    let mut stack = vec![src];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).ok()?.flatten() {
            let p = entry.path();
            if p.is_dir() {
                stack.push(p);
            } else if let Ok(m) = entry.metadata().and_then(|m| m.modified()) {
                if newest.as_ref().is_none_or(|(t, _)| m > *t) {
                    newest = Some((m, p));
                }
            }
        }
    }
    let (t, p) = newest?;
    (t > built).then(|| {
        format!(
            "warning: {} is older than {} — run `make wasm` to test the current glue",
            wasm.display(),
            p.display()
        )
    })
}
