//! `PluginHost`: the public face of the plugin subsystem.
//!
//! Concurrency model:
//! - **Calls** (`route`, `filter`, `transform`) are `async` and run on the caller's task:
//!   directly on its stack while the version allows it, else on a wasmtime fiber (see
//!   `instance.rs`). A warm call to a Rust plugin costs microseconds, far less than a hop to
//!   another thread. A fiber call that computes past an epoch tick yields to the executor each
//!   tick until its CPU deadline. The calls of a version that failed or computed too long go to
//!   the penalty lane instead, a thread at the lowest CPU priority (`lane.rs`). A call clones
//!   the current `Arc<LoadedPlugin>` under a read lock and runs without any lock held. Calls
//!   need a tokio runtime (timers, WASI).
//! - **Deploys, rollbacks and removals** are serialized by one mutex, which also bounds
//!   compilation to one (single-threaded) compile at a time. They run on the caller's thread:
//!   the admin API or the directory watcher, never a message path. A deploy blocks for the
//!   compile (tens of ms for Rust, seconds for Python/JS): from async code, call it through
//!   `spawn_blocking`.
//! - **Swap**: a new version is compiled, type-checked and instantiated once *before* it is
//!   published by replacing the `Arc` in the live map. That replacement is the atomic message
//!   boundary: a call sees either the old or the new version, and a call that already holds the
//!   old `Arc` finishes on it. A version that fails any step is never published; the old one keeps
//!   serving and the failure is logged and kept for `load_error` / `show`.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};
use sha2::{Digest, Sha256};
use wasmtime::Engine;

use super::bindings::{Identity, Linkers};
use super::cache::ArtifactCache;
use super::compile;
use super::engine::{build_engine, EpochTicker};
use super::instance::LoadedPlugin;
use super::lane::Lane;
use super::registry::{validate_name, Registry, VersionInfo};
use super::stats::PluginStats;
use super::types::{HostConfig, PluginKind, PluginLimits, RouteContext, RouteVerdict};
use super::PluginError;
use crate::message::Message;

/// How to deploy a version.
#[derive(Debug, Clone, Default)]
pub struct DeployOptions {
    /// The world the plugin must implement. `None`: infer from the component's export, or keep
    /// the kind of the plugin already deployed under this name.
    pub kind: Option<PluginKind>,
    /// Key/values the plugin reads through the `config` import.
    pub config: BTreeMap<String, String>,
    /// `None`: the host's defaults.
    pub limits: Option<PluginLimits>,
}

/// Runs plugins. Cheap to clone (shared state); see the module docs for the threading model.
#[derive(Clone)]
pub struct PluginHost {
    pub(crate) inner: Arc<Inner>,
}

impl std::fmt::Debug for PluginHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginHost")
            .field("root", &self.inner.root)
            .finish_non_exhaustive()
    }
}

pub(crate) struct Inner {
    pub(super) root: Option<PathBuf>,
    pub(super) engine: Engine,
    pub(super) linkers: Linkers,
    pub(super) config: HostConfig,
    pub(super) cache: Option<ArtifactCache>,
    /// Serializes deploy/rollback/remove, and so bounds compilation to one at a time.
    pub(super) admin: Mutex<()>,
    pub(super) registry: Mutex<Registry>,
    pub(super) live: RwLock<HashMap<String, Arc<LoadedPlugin>>>,
    pub(super) stats: Mutex<HashMap<String, Arc<PluginStats>>>,
    pub(super) load_errors: Mutex<HashMap<String, String>>,
    pub(super) compiles: AtomicU64,
    pub(super) cache_hits: AtomicU64,
    pub(super) failed_loads: AtomicU64,
    pub(super) lane: Option<Lane>,
    pub(super) _ticker: EpochTicker,
}

fn hash_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl PluginHost {
    /// Opens the host on `data_dir` (plugins live in `data_dir/plugins/`), loading the current
    /// version of every registered plugin, from the artifact cache when possible. A plugin that
    /// fails to load is skipped (logged, and reported by `load_error`), not fatal.
    pub fn open(data_dir: impl AsRef<Path>, config: HostConfig) -> Result<Self, PluginError> {
        Self::build(Some(data_dir.as_ref().join("plugins")), config)
    }

    /// A host that keeps nothing on disk and has no artifact cache (the offline test harness).
    pub fn in_memory(config: HostConfig) -> Result<Self, PluginError> {
        Self::build(None, config)
    }

    fn build(root: Option<PathBuf>, config: HostConfig) -> Result<Self, PluginError> {
        let setup = |e: wasmtime::Error| PluginError::Storage(format!("engine setup: {e:#}"));
        let engine = build_engine(&config).map_err(setup)?;
        let linkers = Linkers::new(&engine).map_err(setup)?;
        let registry = Registry::open(root.as_deref())?;
        let cache = match &root {
            Some(root) => Some(ArtifactCache::new(root.join("cache"), &engine)?),
            None => None,
        };
        let ticker = EpochTicker::start(engine.clone(), config.epoch_tick)?;
        let lane = if config.penalty_lane {
            Some(Lane::start()?)
        } else {
            None
        };
        let host = PluginHost {
            inner: Arc::new(Inner {
                root,
                engine,
                linkers,
                config,
                cache,
                admin: Mutex::new(()),
                registry: Mutex::new(registry),
                live: RwLock::new(HashMap::new()),
                stats: Mutex::new(HashMap::new()),
                load_errors: Mutex::new(HashMap::new()),
                compiles: AtomicU64::new(0),
                cache_hits: AtomicU64::new(0),
                failed_loads: AtomicU64::new(0),
                lane,
                _ticker: ticker,
            }),
        };
        let _admin = host.inner.admin.lock();
        let records: Vec<(String, PluginKind, VersionInfo)> = host
            .inner
            .registry
            .lock()
            .all()
            .map(|(name, r)| (name.clone(), r.kind, r.current().clone()))
            .collect();
        for (name, kind, info) in records {
            let loaded = host
                .inner
                .registry
                .lock()
                .blob(&info.version)
                .and_then(|bytes| host.load(&name, Some(kind), &info, &bytes));
            match loaded {
                Ok(plugin) => {
                    host.inner.live.write().insert(name, plugin);
                }
                Err(e) => host.record_failure(&name, &e),
            }
        }
        drop(_admin);
        Ok(host)
    }

    fn stats_for(&self, name: &str) -> Arc<PluginStats> {
        self.inner
            .stats
            .lock()
            .entry(name.to_string())
            .or_default()
            .clone()
    }

    fn record_failure(&self, name: &str, e: &PluginError) {
        tracing::warn!(plugin = name, error = %e, "plugin version failed to load; previous version (if any) keeps serving");
        self.inner.failed_loads.fetch_add(1, Ordering::Relaxed);
        self.inner
            .load_errors
            .lock()
            .insert(name.to_string(), e.to_string());
    }

    /// Compiles (or loads from cache), type-checks and instantiates once. Caller holds `admin`.
    fn load(
        &self,
        name: &str,
        kind: Option<PluginKind>,
        info: &VersionInfo,
        bytes: &[u8],
    ) -> Result<Arc<LoadedPlugin>, PluginError> {
        let inner = &self.inner;
        let (component, cached) = compile::compile(
            &inner.engine,
            inner.cache.as_ref(),
            name,
            &info.version,
            bytes,
        )?;
        let counter = if cached {
            &inner.cache_hits
        } else {
            &inner.compiles
        };
        counter.fetch_add(1, Ordering::Relaxed);
        let (kind, pre) = compile::prepare(&inner.engine, &inner.linkers, name, &component, kind)?;
        let identity = Arc::new(Identity {
            name: name.into(),
            version: info.version.clone().into(),
            lineage: format!("{name}@{}", info.version).into(),
            config: info.config.clone(),
        });
        let plugin = LoadedPlugin::new(
            identity,
            kind,
            info.limits,
            pre,
            inner.engine.clone(),
            inner.config.epoch_tick,
            inner.config.max_idle_per_plugin,
            inner.lane.clone(),
            self.stats_for(name),
        );
        if !inner.config.direct_calls {
            plugin.stay_on_fibers();
        }
        block_on_private(plugin.warm_up())??;
        Ok(Arc::new(plugin))
    }

    /// Deploys `wasm` as the new current version of `name` (creating the plugin if needed).
    ///
    /// Redeploying the serving version with the same config and limits is a no-op. On any
    /// failure the previous version keeps serving and the error is also kept for `load_error`.
    pub fn deploy(
        &self,
        name: &str,
        wasm: &[u8],
        opts: DeployOptions,
    ) -> Result<VersionInfo, PluginError> {
        validate_name(name)?;
        let _admin = self.inner.admin.lock();
        let result = self.deploy_locked(name, wasm, opts);
        match &result {
            Ok(info) => {
                self.inner.load_errors.lock().remove(name);
                tracing::info!(plugin = name, version = %info.version, "plugin version deployed");
            }
            Err(e) => self.record_failure(name, e),
        }
        result
    }

    fn deploy_locked(
        &self,
        name: &str,
        wasm: &[u8],
        opts: DeployOptions,
    ) -> Result<VersionInfo, PluginError> {
        let mut limits = opts.limits.unwrap_or(self.inner.config.default_limits);
        limits.max_memory_bytes = limits
            .max_memory_bytes
            .min(self.inner.config.memory_ceiling);
        let existing = self
            .inner
            .registry
            .lock()
            .get(name)
            .map(|r| (r.kind, r.current().clone()));
        let version = hash_hex(wasm);
        if let Some((_, current)) = &existing {
            if current.version == version
                && current.config == opts.config
                && current.limits == limits
            {
                return Ok(current.clone());
            }
        }
        let kind = match (opts.kind, &existing) {
            (Some(k), _) => Some(k),
            (None, Some((k, _))) => Some(*k),
            (None, None) => None,
        };
        if let (Some(wanted), Some((actual, _))) = (kind, &existing) {
            if wanted != *actual {
                return Err(PluginError::WrongKind {
                    plugin: name.to_string(),
                    expected: wanted,
                    actual: *actual,
                });
            }
        }
        let info = VersionInfo {
            version,
            config: opts.config,
            limits,
            size_bytes: wasm.len() as u64,
            deployed_at_ms: now_ms(),
        };
        let plugin = self.load(name, kind, &info, wasm)?;
        let kind = plugin.kind;
        {
            let mut registry = self.inner.registry.lock();
            registry.put_blob(&info.version, wasm)?;
            registry.push(name, kind, info.clone())?;
        }
        self.inner.live.write().insert(name.to_string(), plugin);
        Ok(info)
    }

    /// Reads `path` and deploys it (see [`PluginHost::deploy`]).
    pub fn deploy_file(
        &self,
        name: &str,
        path: impl AsRef<Path>,
        opts: DeployOptions,
    ) -> Result<VersionInfo, PluginError> {
        let bytes = std::fs::read(path.as_ref())
            .map_err(|e| PluginError::Storage(format!("{}: {e}", path.as_ref().display())))?;
        self.deploy(name, &bytes, opts)
    }

    /// Makes the previous deployment current again and forgets the current one.
    pub fn rollback(&self, name: &str) -> Result<VersionInfo, PluginError> {
        let _admin = self.inner.admin.lock();
        let (kind, previous) = {
            let registry = self.inner.registry.lock();
            let record = registry.get(name).ok_or_else(|| PluginError::NotFound {
                plugin: name.to_string(),
            })?;
            if record.history.len() < 2 {
                return Err(PluginError::NoPreviousVersion {
                    plugin: name.to_string(),
                });
            }
            (
                record.kind,
                record.history[record.history.len() - 2].clone(),
            )
        };
        let bytes = self.inner.registry.lock().blob(&previous.version)?;
        let plugin = self
            .load(name, Some(kind), &previous, &bytes)
            .inspect_err(|e| self.record_failure(name, e))?;
        self.inner.registry.lock().pop(name)?;
        self.inner.live.write().insert(name.to_string(), plugin);
        tracing::info!(plugin = name, version = %previous.version, "plugin rolled back");
        Ok(previous)
    }

    /// Removes a plugin, its history, and blobs and artifacts no other plugin uses.
    pub fn remove(&self, name: &str) -> Result<(), PluginError> {
        let _admin = self.inner.admin.lock();
        let orphans = self.inner.registry.lock().remove(name)?;
        self.inner.live.write().remove(name);
        self.inner.stats.lock().remove(name);
        self.inner.load_errors.lock().remove(name);
        if let Some(cache) = &self.inner.cache {
            orphans.iter().for_each(|h| cache.remove(h));
        }
        Ok(())
    }

    pub(super) fn live(&self, name: &str) -> Result<Arc<LoadedPlugin>, PluginError> {
        self.inner
            .live
            .read()
            .get(name)
            .cloned()
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_string(),
            })
    }

    /// Runs router `name`, bounded by the plugin's deadline.
    pub async fn route(
        &self,
        name: &str,
        msg: &Message,
        ctx: &RouteContext,
    ) -> Result<RouteVerdict, PluginError> {
        self.live(name)?.route(msg, ctx, None).await
    }

    /// Runs filter `name`: `true` keeps the message.
    pub async fn filter(
        &self,
        name: &str,
        msg: &Message,
        ctx: &RouteContext,
    ) -> Result<bool, PluginError> {
        self.live(name)?.filter(msg, ctx, None).await
    }

    /// Runs transform `name` and returns the rewritten message.
    pub async fn transform(
        &self,
        name: &str,
        msg: &Message,
        ctx: &RouteContext,
    ) -> Result<Message, PluginError> {
        self.live(name)?.transform(msg, ctx, None).await
    }
}

/// Runs `fut` to completion from synchronous code wherever that code runs — a plain thread or
/// inside an async task — on a private single-threaded runtime in a scoped thread (a runtime
/// cannot be blocked on from inside another). Deploys use it: instantiation is async because
/// WASI is linked async. A warmed instance stays in the pool: it holds no runtime resources
/// (the WASI context is empty, its stdio are in-memory sinks).
fn block_on_private<F>(fut: F) -> Result<F::Output, PluginError>
where
    F: std::future::Future + Send,
    F::Output: Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .map_err(|e| PluginError::Storage(format!("plugin warm-up runtime: {e}")))?;
                Ok(runtime.block_on(fut))
            })
            .join()
            .unwrap_or_else(|_| Err(PluginError::Storage("plugin warm-up panicked".into())))
    })
}
