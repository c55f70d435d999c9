//! [`Vm`], one instance of the module, and its lifecycle in proxy-wasm-cpp-host's order:
//! instantiation, root contexts (`proxy_on_context_create`, `proxy_on_vm_start`,
//! `proxy_on_configure`), and `call_in`, every call into the guest (fuel, the context,
//! the [`Trap`] that kills the VM). Driving HTTP streams is in `request.rs`.

use super::{StartError, Trap, Wasm};
use crate::abi;
use crate::host::HostState;
use std::collections::BTreeMap;
use wasmi::{Instance, Store, Val};

/// Fuel (≈ wasm instructions) one call into the guest may burn before it counts as a hang
/// (the most dpop_guard needs is ~1.1e8, in `proxy_on_configure`).
pub const DEFAULT_FUEL_PER_CALL: u64 = 2_000_000_000;

/// One VM instance (one Envoy worker's copy of the plugin).
pub struct Vm {
    store: Store<HostState>,
    instance: Instance,
    pub(super) root: u32,
    pub(super) next_context: u32,
    /// The root context each open stream was created under.
    pub(super) stream_root: BTreeMap<u32, u32>,
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
            stream_root: BTreeMap::new(),
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
    /// Delivers every pending `proxy_on_queue_ready` (one per enqueue, to the queue's
    /// registrant), as Envoy's event loop would after the current callback; returns how many.
    pub fn deliver_queue_ready(&mut self) -> Result<usize, Trap> {
        let mut n = 0;
        while !self.host().queue_ready.is_empty() {
            let token = self.host_mut().queue_ready.remove(0);
            let owner = self
                .host()
                .queue_owners
                .get(&token)
                .copied()
                .unwrap_or(self.root);
            self.call_in(owner, "proxy_on_queue_ready", &[owner as i32, token as i32])?;
            n += 1;
        }
        Ok(n)
    }

    /// `proxy_on_tick` on the root context, as Envoy delivers the timer.
    pub fn tick(&mut self) -> Result<(), Trap> {
        let root = self.root;
        self.call_in(root, "proxy_on_tick", &[root as i32])
            .map(|_| ())
    }

    /// Call export `name` in context `ctx` (a stream's callback, e.g. `proxy_on_request_body`).
    pub fn call_on(&mut self, ctx: u32, name: &str, args: &[i32]) -> Result<Option<i64>, Trap> {
        self.call_in(ctx, name, args)
    }

    pub fn call(&mut self, name: &str, args: &[i32]) -> Result<Option<i64>, Trap> {
        let ctx = self.host().current_context;
        self.call_in(ctx, name, args)
    }

    /// Call export `name` with `context` as the current context; a trap kills the VM (every
    /// later call returns it).
    pub(super) fn call_in(
        &mut self,
        context: u32,
        name: &str,
        args: &[i32],
    ) -> Result<Option<i64>, Trap> {
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
}
