//! Loading plugins (validate, compile, link once) and calling them (a fresh instance per
//! call, with a deadline, a memory cap and an output cap).

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use scimgate_limits::{FairSlots, Periodic, thread_cpu_time};
use wasmtime::{
    Caller, Config, Engine, ExternType, InstanceAllocationStrategy, InstancePre, Linker, Module,
    PoolingAllocationConfig, Store, StoreLimits, StoreLimitsBuilder, Trap, UpdateDeadline, ValType,
};

use crate::abi::{ALLOC, CallInput, Decision, HANDLE, HOST_MODULE, LOG, MARKER};
use crate::spec::PluginSpec;

/// Linear memory kept mapped in a reused pool slot and reset in place.
const KEEP_RESIDENT: usize = 2 << 20;

/// How often the deadline clock ticks: each tick, a running call checks its CPU time.
const TICK: Duration = Duration::from_millis(1);

/// Instances the pooling allocator keeps; calls in flight never exceed it, since each
/// holds a slot of [`PluginHost::instances`].
const POOL_INSTANCES: usize = 128;
/// A tenant's share of the instances unless configured: one per core. Plugin calls are
/// CPU work, so more at once would not finish sooner; they would only take the cores the
/// other tenants' requests need.
fn default_tenant_instances() -> usize {
    std::thread::available_parallelism().map_or(2, usize::from)
}
/// How long a call waits for an instance before the write is answered 503.
const INSTANCE_WAIT: Duration = Duration::from_secs(5);
/// A call that runs this many times its deadline in wall time is stopped whatever CPU
/// time it was given: a bound for a machine too starved to measure by.
const WALL_FACTOR: u32 = 20;

#[derive(Debug, thiserror::Error)]
pub enum PluginLoadError {
    #[error("plugin '{name}': cannot read {file}: {reason}")]
    Read {
        name: String,
        file: String,
        reason: String,
    },
    #[error("plugin '{name}' ({file}): {reason}")]
    Invalid {
        name: String,
        file: String,
        reason: String,
    },
    #[error("plugin engine: {0}")]
    Engine(String),
}

/// Why a call produced no decision. The write fails closed unless the plugin is
/// configured to fail open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallFailure {
    #[error("ran past its {0} ms deadline")]
    Deadline(u64),
    #[error("needed more than its {0} bytes of memory")]
    Memory(usize),
    #[error("trapped: {0}")]
    Trap(String),
    #[error("returned {0} bytes, more than its limit of {1}")]
    OutputTooLarge(usize, usize),
    #[error("returned an invalid decision: {0}")]
    BadOutput(String),
    /// The host had no instance free for this tenant in time: overload, not the plugin's
    /// failure, so `on_failure = "open"` never lets the write through on it.
    #[error("not run: {0}")]
    Busy(#[from] scimgate_limits::Busy),
    /// The call got too little CPU to finish within twenty times its deadline of wall
    /// time: the machine, not the plugin, was too busy.
    #[error("not finished: the host was too busy to run it within {0} ms")]
    Starved(u64),
}

impl CallFailure {
    /// What a client is told of the failure: its class, never the engine's text (a trap
    /// carries a wasm backtrace). The whole text is for the server's log.
    pub fn class(&self) -> String {
        match self {
            CallFailure::Trap(_) => "trapped".into(),
            other => other.to_string(),
        }
    }

    /// Whether the host, not the plugin, failed (the write is answered 503).
    pub fn is_overload(&self) -> bool {
        matches!(self, CallFailure::Busy(_) | CallFailure::Starved(_))
    }
}

struct Loaded {
    spec: PluginSpec,
    pre: InstancePre<CallState>,
}

struct CallState {
    limits: StoreLimits,
    name: Arc<str>,
    /// The calling thread's CPU time when the call started, and the wall time.
    cpu_start: Option<Duration>,
    wall_start: Instant,
    deadline: Duration,
    /// Set when the wall-time bound, not the CPU deadline, stopped the call.
    starved: bool,
    /// Log lines written so far in this call.
    log_lines: u32,
}

/// The loaded plugin set: one engine, each module compiled and linked once.
pub struct PluginHost {
    engine: Engine,
    plugins: Vec<Loaded>,
    /// Advances the engine's epoch every tick, which is how call deadlines are enforced;
    /// it stops when the host is dropped (a reload replaces the host).
    _ticker: Option<Periodic>,
    /// Instances in use, by tenant: one tenant's slow plugins cannot take them all.
    instances: Arc<FairSlots>,
}

impl PluginHost {
    /// Validates and compiles every plugin; the first bad one stops the load, named.
    pub fn load(specs: Vec<PluginSpec>) -> Result<PluginHost, PluginLoadError> {
        Self::load_cached(specs, None)
    }

    /// Like [`load`](Self::load), keeping compiled code in `cache_dir` (keyed by the
    /// module's hash and the engine's build), so that a restart does not recompile.
    pub fn load_cached(
        specs: Vec<PluginSpec>,
        cache_dir: Option<&Path>,
    ) -> Result<PluginHost, PluginLoadError> {
        let max_memory = specs
            .iter()
            .map(|s| s.limits.memory_bytes)
            .max()
            .unwrap_or(16 << 20);
        let engine = engine(max_memory)?;
        let mut linker: Linker<CallState> = Linker::new(&engine);
        linker
            .func_wrap(HOST_MODULE, LOG, log)
            .map_err(|e| PluginLoadError::Engine(e.to_string()))?;
        let mut plugins = Vec::with_capacity(specs.len());
        for spec in specs {
            let file = spec.file.display().to_string();
            let bytes = std::fs::read(&spec.file).map_err(|e| PluginLoadError::Read {
                name: spec.name.clone(),
                file: file.clone(),
                reason: e.to_string(),
            })?;
            let invalid = |reason: String| PluginLoadError::Invalid {
                name: spec.name.clone(),
                file: file.clone(),
                reason,
            };
            let module = match cache_dir {
                Some(dir) => crate::cache::module(&engine, dir, &bytes),
                None => Module::new(&engine, &bytes),
            }
            .map_err(|e| invalid(format!("not a valid module: {e:#}")))?;
            check_abi(&module).map_err(invalid)?;
            let pre = linker
                .instantiate_pre(&module)
                .map_err(|e| invalid(format!("cannot link: {e:#}")))?;
            plugins.push(Loaded { spec, pre });
        }
        let ticker = if plugins.is_empty() {
            None
        } else {
            start_ticker(engine.clone())
        };
        Ok(PluginHost {
            engine,
            plugins,
            _ticker: ticker,
            instances: FairSlots::new(
                "plugin instance",
                POOL_INSTANCES,
                default_tenant_instances(),
                INSTANCE_WAIT,
            ),
        })
    }

    /// Sets how many instances one tenant may run at once (unset: one per core) and how
    /// long a call waits for one before it is refused as overload.
    pub fn with_instance_share(mut self, per_tenant: Option<usize>, wait: Duration) -> Self {
        self.instances = FairSlots::new(
            "plugin instance",
            POOL_INSTANCES,
            per_tenant.unwrap_or_else(default_tenant_instances),
            wait,
        );
        self
    }

    pub fn specs(&self) -> impl Iterator<Item = &PluginSpec> {
        self.plugins.iter().map(|p| &p.spec)
    }

    pub fn is_empty(&self) -> bool {
        self.plugins.is_empty()
    }

    /// Runs plugin number `index` on `input` in a fresh instance.
    pub fn call(&self, index: usize, input: &CallInput<'_>) -> Result<Decision, CallFailure> {
        let plugin = &self.plugins[index];
        let limits = plugin.spec.limits;
        let payload =
            serde_json::to_vec(input).map_err(|e| CallFailure::BadOutput(e.to_string()))?;
        // Taken before the store, so released after it: the pool slot is free by then.
        let _instance = self.instances.acquire(input.tenant)?;
        let deadline = Duration::from_millis(limits.deadline_ms.max(1));
        let state = CallState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.memory_bytes)
                .instances(1)
                .trap_on_grow_failure(true)
                .build(),
            name: Arc::from(plugin.spec.name.as_str()),
            cpu_start: thread_cpu_time(),
            wall_start: Instant::now(),
            deadline,
            starved: false,
            log_lines: 0,
        };
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| &mut s.limits);
        // The deadline is the plugin's own CPU time: waiting for a core while other
        // requests (password hashing, another tenant's plugins) run does not count.
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            let used = match (state.cpu_start, thread_cpu_time()) {
                (Some(start), Some(now)) => now.saturating_sub(start),
                _ => state.wall_start.elapsed(),
            };
            if used >= state.deadline || state.wall_start.elapsed() >= state.deadline * WALL_FACTOR
            {
                return Err(Trap::Interrupt.into());
            }
            Ok(UpdateDeadline::Continue(1))
        });
        let result = run(plugin, &mut store, &payload);
        match result {
            Err(CallFailure::Deadline(ms)) if store.data().starved => {
                Err(CallFailure::Starved(ms * u64::from(WALL_FACTOR)))
            }
            Ok(decision) => decision.checked(input).map_err(CallFailure::BadOutput),
            other => other,
        }
    }
}

/// One call in a fresh instance: input in, decision out.
fn run(
    plugin: &Loaded,
    store: &mut Store<CallState>,
    payload: &[u8],
) -> Result<Decision, CallFailure> {
    let limits = plugin.spec.limits;
    let failure = |e: wasmtime::Error| classify(e, limits.deadline_ms, limits.memory_bytes);
    let instance = plugin.pre.instantiate(&mut *store).map_err(failure)?;
    let memory = instance
        .get_memory(&mut *store, "memory")
        .ok_or_else(|| CallFailure::Trap("no exported memory".into()))?;
    let alloc = instance
        .get_typed_func::<i32, i32>(&mut *store, ALLOC)
        .map_err(failure)?;
    let handle = instance
        .get_typed_func::<(i32, i32), i64>(&mut *store, HANDLE)
        .map_err(failure)?;
    let len = i32::try_from(payload.len())
        .map_err(|_| CallFailure::BadOutput("input too large".into()))?;
    let ptr = alloc.call(&mut *store, len).map_err(failure)?;
    memory
        .write(&mut *store, ptr as u32 as usize, payload)
        .map_err(|_| CallFailure::Trap("scim_alloc returned memory out of bounds".into()))?;
    let packed = handle.call(&mut *store, (ptr, len)).map_err(failure)? as u64;
    let (out_ptr, out_len) = ((packed >> 32) as usize, (packed & 0xffff_ffff) as usize);
    if out_len > limits.output_bytes {
        return Err(CallFailure::OutputTooLarge(out_len, limits.output_bytes));
    }
    // Parsed where it lies in the instance's memory, not copied out first.
    let out = out_ptr
        .checked_add(out_len)
        .and_then(|end| memory.data(&*store).get(out_ptr..end))
        .ok_or_else(|| CallFailure::BadOutput("output lies outside memory".into()))?;
    serde_json::from_slice(out).map_err(|e| CallFailure::BadOutput(e.to_string()))
}

fn engine(max_memory: usize) -> Result<Engine, PluginLoadError> {
    let mut config = Config::new();
    config.epoch_interruption(true);
    let mut pooling = PoolingAllocationConfig::default();
    pooling
        .total_core_instances(POOL_INSTANCES as u32)
        .total_memories(POOL_INSTANCES as u32)
        .total_tables(POOL_INSTANCES as u32)
        .max_memory_size(max_memory)
        // Reset used slots by rewriting their dirty pages rather than unmapping them:
        // unmapping flushes every core's TLB (an IPI per call) and the next call
        // page-faults the memory back in. Measured: see docs/performance.md.
        .linear_memory_keep_resident(KEEP_RESIDENT.min(max_memory))
        .table_keep_resident(64 << 10)
        .pagemap_scan(wasmtime::Enabled::Auto)
        .decommit_batch_size(16);
    config.allocation_strategy(InstanceAllocationStrategy::Pooling(pooling));
    match Engine::new(&config) {
        Ok(engine) => Ok(engine),
        // The pool reserves virtual memory up front; where that is limited, allocate per call.
        Err(e) => {
            tracing::warn!(error = %e, "pooling allocator unavailable; plugins instantiate on demand");
            config.allocation_strategy(InstanceAllocationStrategy::OnDemand);
            Engine::new(&config).map_err(|e| PluginLoadError::Engine(e.to_string()))
        }
    }
}

/// The thread that advances the engine's epoch every tick.
fn start_ticker(engine: Engine) -> Option<Periodic> {
    match Periodic::start("scimgate-plugin-clock", TICK, move || {
        engine.increment_epoch()
    }) {
        Ok(ticker) => Some(ticker),
        Err(e) => {
            tracing::error!(error = %e, "cannot start the plugin deadline clock");
            None
        }
    }
}

/// Checks the ABI without running anything: exports and their types, and imports.
fn check_abi(module: &Module) -> Result<(), String> {
    for import in module.imports() {
        if (import.module(), import.name()) != (HOST_MODULE, LOG) {
            return Err(format!(
                "imports '{}.{}', but plugins may import only '{HOST_MODULE}.{LOG}' (no WASI)",
                import.module(),
                import.name()
            ));
        }
    }
    let export = |name: &str| module.exports().find(|e| e.name() == name).map(|e| e.ty());
    if export(MARKER).is_none() {
        return Err(format!(
            "does not export '{MARKER}': not built for ABI version 1"
        ));
    }
    match export("memory") {
        Some(ExternType::Memory(_)) => {}
        _ => return Err("does not export its 'memory'".into()),
    }
    let func = |name: &str, params: &[ValType], results: &[ValType]| -> Result<(), String> {
        let Some(ExternType::Func(f)) = export(name) else {
            return Err(format!("does not export the function '{name}'"));
        };
        let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
            a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
        };
        if same(&mut f.params(), params) && same(&mut f.results(), results) {
            Ok(())
        } else {
            Err(format!("'{name}' has the wrong signature: {f}"))
        }
    };
    func(ALLOC, &[ValType::I32], &[ValType::I32])?;
    func(HANDLE, &[ValType::I32, ValType::I32], &[ValType::I64])
}

fn classify(e: wasmtime::Error, deadline_ms: u64, memory: usize) -> CallFailure {
    match e.downcast_ref::<Trap>() {
        Some(Trap::Interrupt) => CallFailure::Deadline(deadline_ms),
        Some(Trap::HeapMisaligned | Trap::MemoryOutOfBounds) => CallFailure::Trap(format!("{e:#}")),
        _ if format!("{e:#}").contains("memory") && format!("{e:#}").contains("limit") => {
            CallFailure::Memory(memory)
        }
        _ if format!("{e:#}").contains("forcing trap when growing memory") => {
            CallFailure::Memory(memory)
        }
        _ => CallFailure::Trap(format!("{e:#}")),
    }
}

/// Longest plugin log line kept, in bytes; longer ones are cut (and say so).
const LOG_LINE_BYTES: usize = 512;
/// Most log lines one call may write; the rest are dropped, the first dropped one noted.
const LOG_LINES_PER_CALL: u32 = 16;

/// `scimgate.log(ptr, len)`: a plugin's own log line, at debug, tagged with its name. A
/// plugin's log is bounded per line and per call, so that no plugin can flood the log
/// (and whatever a plugin is given can only leak there in small pieces: the cleartext
/// password is not given to plugins unless configured).
fn log(mut caller: Caller<'_, CallState>, ptr: i32, len: i32) {
    let Some(memory) = caller.get_export("memory").and_then(|e| e.into_memory()) else {
        return;
    };
    let lines = caller.data().log_lines;
    caller.data_mut().log_lines = lines.saturating_add(1);
    let name = Arc::clone(&caller.data().name);
    if lines == LOG_LINES_PER_CALL {
        tracing::debug!(plugin = %name, "plugin log: further lines of this call dropped");
    }
    if lines >= LOG_LINES_PER_CALL {
        return;
    }
    let len = len.max(0) as usize;
    let mut buf = vec![0u8; len.min(LOG_LINE_BYTES + 4)];
    if memory.read(&caller, ptr as u32 as usize, &mut buf).is_ok() {
        let text = String::from_utf8_lossy(&buf);
        let message = scimgate_model::excerpt(&text, LOG_LINE_BYTES);
        tracing::debug!(plugin = %name, message = %message, bytes = len, "plugin log");
    }
}
