//! Loading the module, the VM lifecycle in Envoy's order, and one HTTP request at a time.

use crate::abi::{self, action, Pairs};
use crate::host::{
    dispatch, import_spec, CallRecord, HostState, ImportSpec, LocalResponse, Stream,
};
use std::fmt;
use std::path::{Path, PathBuf};
use wasmi::{Engine, ExternType, Instance, Linker, Module, Store, Val};

/// Environment variable naming the wasm to load (default: the workspace's release build).
pub const WASM_ENV: &str = "DPOP_GUARD_WASM";

/// Fuel (≈ wasm instructions) one call into the guest may burn before it counts as a hang
/// (the most dpop_guard needs is ~1.1e8, in `proxy_on_configure`).
pub const DEFAULT_FUEL_PER_CALL: u64 = 2_000_000_000;

/// A compiled module with the host's imports linked; cheap to instantiate many times.
pub struct Wasm {
    engine: Engine,
    module: Module,
    linker: Linker<HostState>,
    imports: Vec<ImportSpec>,
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
            .map(|s| (s.full_name.to_string(), s.known))
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

/// The guest trapped (a Rust panic is `unreachable` after the SDK's panic hook logged it), ran
/// out of fuel, or called `proc_exit`. In Envoy the VM is dead from then on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trap {
    /// The export being called, with its arguments.
    pub call: String,
    pub message: String,
    /// The panic message the SDK's hook logged (`proxy_log` at Critical), if any.
    pub panic: Option<String>,
    /// Logs and stderr written during the failing call.
    pub transcript: String,
}

impl fmt::Display for Trap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "guest trapped in {}: {}", self.call, self.message)?;
        if let Some(p) = &self.panic {
            write!(f, "\n  panic: {p}")?;
        }
        if !self.transcript.is_empty() {
            write!(f, "\n  during the call:\n{}", self.transcript)?;
        }
        Ok(())
    }
}

impl std::error::Error for Trap {}

/// Why [`Vm::start`] did not give a configured VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartError {
    Trap(Trap),
    /// `proxy_on_vm_start` returned false.
    VmStartRefused(String),
    /// `proxy_on_configure` returned false (Envoy refuses the configuration).
    ConfigureRefused(String),
}

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StartError::Trap(t) => t.fmt(f),
            StartError::VmStartRefused(log) => write!(f, "proxy_on_vm_start returned false\n{log}"),
            StartError::ConfigureRefused(log) => {
                write!(f, "proxy_on_configure returned false\n{log}")
            }
        }
    }
}

impl std::error::Error for StartError {}

impl From<Trap> for StartError {
    fn from(t: Trap) -> Self {
        StartError::Trap(t)
    }
}

/// One request as the host hands it over.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub headers: Pairs,
    /// When set, `proxy_get_header_map_pairs` returns these bytes verbatim (malformed maps).
    pub raw_headers: Option<Vec<u8>>,
    /// `end_of_stream` of `proxy_on_request_headers` (true: no body).
    pub end_of_stream: bool,
}

impl Request {
    pub fn new<K: AsRef<[u8]>, V: AsRef<[u8]>>(headers: &[(K, V)]) -> Request {
        Request {
            headers: headers
                .iter()
                .map(|(k, v)| (k.as_ref().to_vec(), v.as_ref().to_vec()))
                .collect(),
            raw_headers: None,
            end_of_stream: true,
        }
    }
}

/// What the host does with the request after a guest callback.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The request goes upstream with these headers.
    Upstream(Pairs),
    /// The guest answered itself.
    LocalReply(LocalResponse),
    /// Paused until these callouts answer.
    Pending(Vec<u32>),
    /// The guest reset the stream (`proxy_close_stream`) without a reply.
    Closed,
    /// Paused with nothing outstanding and no reply: in Envoy the request hangs until the
    /// client or a timeout gives up.
    Stalled,
}

/// The result of one guest callback on a stream.
#[derive(Debug, Clone)]
pub struct Exchange {
    pub context_id: u32,
    /// The callback's return (`proxy_on_request_headers`: 0 continue, 1 pause).
    pub action: Option<i64>,
    pub outcome: Outcome,
    /// Host calls the guest made during the callback.
    pub calls: Vec<CallRecord>,
}

impl Exchange {
    pub fn local_reply(&self) -> Option<&LocalResponse> {
        match &self.outcome {
            Outcome::LocalReply(r) => Some(r),
            _ => None,
        }
    }
    pub fn upstream_headers(&self) -> Option<&Pairs> {
        match &self.outcome {
            Outcome::Upstream(h) => Some(h),
            _ => None,
        }
    }
}

/// One VM instance (one Envoy worker's copy of the plugin).
pub struct Vm {
    store: Store<HostState>,
    instance: Instance,
    root: u32,
    next_context: u32,
    /// The root context each open stream was created under.
    stream_root: std::collections::BTreeMap<u32, u32>,
    dead: Option<Trap>,
    pub fuel_per_call: u64,
    /// Fuel the last call into the guest burned, and the most any call did.
    pub fuel_used: u64,
    pub max_fuel_used: u64,
}

impl Vm {
    /// Instantiate and run `_initialize` (or `_start`).
    pub fn new(wasm: &Wasm, host: HostState) -> Result<Vm, Trap> {
        let mut store = Store::new(&wasm.engine, host);
        let _ = store.set_fuel(DEFAULT_FUEL_PER_CALL);
        let instance = wasm
            .linker
            .instantiate_and_start(&mut store, &wasm.module)
            .map_err(|e| Trap {
                call: "instantiate".into(),
                message: e.to_string(),
                panic: None,
                transcript: store.data().transcript(),
            })?;
        let memory = instance.get_memory(&store, "memory");
        let alloc = instance
            .get_func(&store, "proxy_on_memory_allocate")
            .or_else(|| instance.get_func(&store, "malloc"));
        let root = 1;
        {
            let st = store.data_mut();
            st.memory = memory;
            st.alloc = alloc;
            st.root_contexts.push(root);
        }
        let mut vm = Vm {
            store,
            instance,
            root,
            next_context: root + 1,
            stream_root: std::collections::BTreeMap::new(),
            dead: None,
            fuel_per_call: DEFAULT_FUEL_PER_CALL,
            fuel_used: 0,
            max_fuel_used: 0,
        };
        if vm.has_export("_initialize") {
            vm.call("_initialize", &[])?;
        } else if vm.has_export("_start") {
            vm.call("_start", &[])?;
        }
        Ok(vm)
    }

    /// A VM as Envoy starts one: `proxy_on_context_create(root, 0)`, `proxy_on_vm_start`,
    /// `proxy_on_configure` with `plugin_configuration` (proxy-wasm-cpp-host's order).
    pub fn start(wasm: &Wasm, plugin_configuration: &[u8]) -> Result<Vm, StartError> {
        Self::start_with(wasm, HostState::new(plugin_configuration))
    }

    pub fn start_with(wasm: &Wasm, host: HostState) -> Result<Vm, StartError> {
        let mut vm = Vm::new(wasm, host)?;
        let root = vm.root;
        vm.configure_root(root)?;
        Ok(vm)
    }

    /// The first root context (the plugin [`Vm::start`] configured).
    pub fn root_context(&self) -> u32 {
        self.root
    }

    /// Another plugin in the same VM (Envoy: several filters sharing a `vm_id`): a new root
    /// context, configured with `plugin_configuration`. Returns its id, for
    /// [`Vm::request_headers_on`]. The VM-wide warm-up is not repeated: much cheaper than a
    /// new VM.
    pub fn add_root(&mut self, plugin_configuration: &[u8]) -> Result<u32, StartError> {
        let id = self.next_context;
        self.next_context += 1;
        let saved = std::mem::replace(
            &mut self.host_mut().plugin_configuration,
            plugin_configuration.to_vec(),
        );
        self.host_mut().root_contexts.push(id);
        let r = self.configure_root(id);
        self.host_mut().plugin_configuration = saved;
        r.map(|()| id)
    }

    fn configure_root(&mut self, id: u32) -> Result<(), StartError> {
        // a callback the module does not export counts as success, as in Envoy
        self.call_in(id, "proxy_on_context_create", &[id as i32, 0])?;
        let size = self.host().vm_configuration.len();
        if self.call_in(id, "proxy_on_vm_start", &[id as i32, size as i32])? == Some(0) {
            return Err(StartError::VmStartRefused(self.host().transcript()));
        }
        let size = self.host().plugin_configuration.len();
        if self.call_in(id, "proxy_on_configure", &[id as i32, size as i32])? == Some(0) {
            return Err(StartError::ConfigureRefused(self.host().transcript()));
        }
        Ok(())
    }

    pub fn host(&self) -> &HostState {
        self.store.data()
    }

    pub fn host_mut(&mut self) -> &mut HostState {
        self.store.data_mut()
    }

    /// The trap that killed this VM, if any.
    pub fn dead(&self) -> Option<&Trap> {
        self.dead.as_ref()
    }

    pub fn has_export(&self, name: &str) -> bool {
        self.instance.get_func(&self.store, name).is_some()
    }

    pub fn create_root(&mut self) -> Result<(), Trap> {
        let root = self.root;
        self.call_in(root, "proxy_on_context_create", &[root as i32, 0])?;
        Ok(())
    }

    pub fn on_vm_start(&mut self) -> Result<bool, Trap> {
        let (root, size) = (self.root, self.host().vm_configuration.len());
        Ok(self.call_in(root, "proxy_on_vm_start", &[root as i32, size as i32])? != Some(0))
    }

    pub fn on_configure(&mut self) -> Result<bool, Trap> {
        let (root, size) = (self.root, self.host().plugin_configuration.len());
        Ok(self.call_in(root, "proxy_on_configure", &[root as i32, size as i32])? != Some(0))
    }

    /// Call an export of the guest with i32 arguments (i64 parameters get the value widened).
    /// `Ok(None)`: not exported, or returns nothing.
    pub fn call(&mut self, name: &str, args: &[i32]) -> Result<Option<i64>, Trap> {
        let ctx = self.host().current_context;
        self.call_in(ctx, name, args)
    }

    fn call_in(&mut self, context: u32, name: &str, args: &[i32]) -> Result<Option<i64>, Trap> {
        if let Some(t) = &self.dead {
            return Err(t.clone());
        }
        let Some(func) = self.instance.get_func(&self.store, name) else {
            return Ok(None);
        };
        let ty = func.ty(&self.store);
        let params: Vec<Val> = ty
            .params()
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let v = args.get(i).copied().unwrap_or(0);
                match t {
                    wasmi::ValType::I64 => Val::I64(i64::from(v)),
                    _ => Val::I32(v),
                }
            })
            .collect();
        let mut results: Vec<Val> = ty
            .results()
            .iter()
            .map(|t| Val::default_for_ty(*t))
            .collect();
        let (log_mark, err_mark, out_mark) = {
            let st = self.store.data_mut();
            st.current_context = context;
            st.effective_context = 0;
            (st.logs.len(), st.stderr.len(), st.stdout.len())
        };
        let _ = self.store.set_fuel(self.fuel_per_call);
        let r = func.call(&mut self.store, &params, &mut results);
        let left = self.store.get_fuel().unwrap_or(0);
        self.fuel_used = self.fuel_per_call.saturating_sub(left);
        self.max_fuel_used = self.max_fuel_used.max(self.fuel_used);
        self.store.data_mut().effective_context = 0;
        match r {
            Ok(()) => Ok(results.first().and_then(|v| match v {
                Val::I32(x) => Some(i64::from(*x)),
                Val::I64(x) => Some(*x),
                _ => None,
            })),
            Err(e) => {
                let st = self.store.data();
                let logs = st.logs.get(log_mark..).unwrap_or_default();
                let panic = logs
                    .iter()
                    .rev()
                    .find(|l| l.level == abi::log_level::CRITICAL)
                    .map(|l| l.message.clone());
                let mut transcript = String::new();
                for l in logs {
                    transcript.push_str(&format!("    [log {}] {}\n", l.level, l.message));
                }
                for (tag, buf, mark) in [
                    ("stderr", &st.stderr, err_mark),
                    ("stdout", &st.stdout, out_mark),
                ] {
                    if let Some(b) = buf.get(mark..).filter(|b| !b.is_empty()) {
                        transcript
                            .push_str(&format!("    [{tag}] {}\n", String::from_utf8_lossy(b)));
                    }
                }
                let trap = Trap {
                    call: format!("{name}{args:?}"),
                    message: e.to_string(),
                    panic,
                    transcript,
                };
                self.dead = Some(trap.clone());
                Err(trap)
            }
        }
    }

    fn new_stream(&mut self, req: &Request) -> u32 {
        let ctx = self.next_context;
        self.next_context += 1;
        let stream = Stream {
            request_headers: crate::host::HeaderMap {
                pairs: req.headers.clone(),
                raw: req.raw_headers.clone(),
            },
            ..Stream::default()
        };
        self.host_mut().streams.insert(ctx, stream);
        ctx
    }

    fn outcome(&self, ctx: u32, action: Option<i64>) -> Outcome {
        let Some(s) = self.host().streams.get(&ctx) else {
            return Outcome::Stalled;
        };
        if let Some(r) = &s.local_response {
            Outcome::LocalReply(r.clone())
        } else if action == Some(i64::from(action::CONTINUE))
            || s.continued.contains(&abi::stream_type::HTTP_REQUEST)
        {
            Outcome::Upstream(s.request_headers.pairs.clone())
        } else if !s.closed.is_empty() {
            Outcome::Closed
        } else if !s.pending_calls.is_empty() {
            Outcome::Pending(s.pending_calls.clone())
        } else {
            Outcome::Stalled
        }
    }

    /// A new HTTP context and `proxy_on_request_headers`. The stream stays open: answer its
    /// callouts with [`Vm::http_call_response`], end it with [`Vm::finish`].
    pub fn request_headers(&mut self, req: &Request) -> Result<Exchange, Trap> {
        let root = self.root;
        self.request_headers_on(root, req)
    }

    /// [`Vm::request_headers`] for the plugin of root context `root` ([`Vm::add_root`]).
    pub fn request_headers_on(&mut self, root: u32, req: &Request) -> Result<Exchange, Trap> {
        let ctx = self.new_stream(req);
        self.stream_root.insert(ctx, root);
        let calls_mark = self.host().calls.len();
        self.call_in(ctx, "proxy_on_context_create", &[ctx as i32, root as i32])?;
        let n = req.headers.len() as i32;
        let action = self.call_in(
            ctx,
            "proxy_on_request_headers",
            &[ctx as i32, n, i32::from(req.end_of_stream)],
        )?;
        Ok(Exchange {
            context_id: ctx,
            action,
            outcome: self.outcome(ctx, action),
            calls: self
                .host()
                .calls
                .get(calls_mark..)
                .unwrap_or_default()
                .to_vec(),
        })
    }

    /// The response to callout `token` of stream `ctx`, delivered as Envoy does: to the root
    /// context id (the call was made on the root context), the SDK switching with
    /// `proxy_set_effective_context`.
    pub fn http_call_response(
        &mut self,
        ctx: u32,
        token: u32,
        headers: Pairs,
        body: Vec<u8>,
    ) -> Result<Exchange, Trap> {
        let calls_mark = self.host().calls.len();
        let (nh, nb) = (headers.len() as i32, body.len() as i32);
        {
            let st = self.host_mut();
            if let Some(s) = st.streams.get_mut(&ctx) {
                s.pending_calls.retain(|t| *t != token);
            }
            st.callout_response = Some(crate::host::CalloutResponse {
                headers,
                body,
                trailers: Vec::new(),
            });
        }
        let root = self.stream_root.get(&ctx).copied().unwrap_or(self.root);
        let r = self.call_in(
            root,
            "proxy_on_http_call_response",
            &[root as i32, token as i32, nh, nb, 0],
        );
        self.host_mut().callout_response = None;
        r?;
        Ok(Exchange {
            context_id: ctx,
            action: None,
            outcome: self.outcome(ctx, None),
            calls: self
                .host()
                .calls
                .get(calls_mark..)
                .unwrap_or_default()
                .to_vec(),
        })
    }

    /// End of stream: `proxy_on_done`, `proxy_on_log`, `proxy_on_delete`.
    pub fn finish(&mut self, ctx: u32) -> Result<(), Trap> {
        self.call_in(ctx, "proxy_on_done", &[ctx as i32])?;
        self.call_in(ctx, "proxy_on_log", &[ctx as i32])?;
        self.call_in(ctx, "proxy_on_delete", &[ctx as i32])?;
        self.host_mut().streams.remove(&ctx);
        self.stream_root.remove(&ctx);
        Ok(())
    }

    /// One request start to end: headers, then (unless it waits on a callout) done/log/delete.
    pub fn run(&mut self, req: &Request) -> Result<Exchange, Trap> {
        let root = self.root;
        self.run_on(root, req)
    }

    /// [`Vm::run`] for the plugin of root context `root`.
    pub fn run_on(&mut self, root: u32, req: &Request) -> Result<Exchange, Trap> {
        let ex = self.request_headers_on(root, req)?;
        if !matches!(ex.outcome, Outcome::Pending(_)) {
            self.finish(ex.context_id)?;
        }
        Ok(ex)
    }
}
