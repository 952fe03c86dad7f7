//! Introspection of a `PluginHost`: what is deployed, why a load failed, counters. Read-only;
//! none of it takes the deploy lock, so the admin API can poll it while a compile runs.

use std::sync::atomic::Ordering;

use super::host::PluginHost;
use super::memo::VerdictCacheInfo;
use super::registry::VersionInfo;
use super::stats::StatsSnapshot;
use super::types::PluginKind;
use super::PluginError;

/// What `list` and `show` report about a plugin.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct PluginInfo {
    pub name: String,
    pub kind: PluginKind,
    /// The WIT world the serving version implements: the kind's world, or `view-router` for a
    /// router that reads the message through a `message-view` (empty if it is not loaded).
    pub world: &'static str,
    /// The serving version.
    pub current: VersionInfo,
    /// All deployments, oldest first; the last is `current`.
    pub history: Vec<VersionInfo>,
    /// Why the last attempt to load a new version failed, if it did (cleared by a success).
    pub last_load_error: Option<String>,
    /// Whether the serving version's calls run directly on the caller's stack (the fast path)
    /// rather than on a fiber; see `ARCHITECTURE.md`, "Plugin host".
    pub direct_calls: bool,
    /// Whether the serving version's calls run in the penalty lane, at the lowest CPU priority,
    /// because a recent call failed or computed too long; see `ARCHITECTURE.md`, "Plugin host".
    pub penalized: bool,
    /// The serving version's verdict cache, if it was deployed with one (config
    /// `switchyard.verdict-cache = on`); see `ARCHITECTURE.md`, "Verdict cache".
    pub verdict_cache: Option<VerdictCacheInfo>,
    pub stats: StatsSnapshot,
}

/// Host-wide counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostStats {
    /// Components compiled from wasm (cache misses).
    pub compiles: u64,
    /// Components loaded from the artifact cache.
    pub cache_hits: u64,
    /// Versions that failed to load (compile, type-check or first instantiation).
    pub failed_loads: u64,
}

impl PluginHost {
    /// Every registered plugin, by name.
    pub fn list(&self) -> Vec<PluginInfo> {
        let names: Vec<String> = self
            .inner
            .registry
            .lock()
            .all()
            .map(|(n, _)| n.clone())
            .collect();
        names.iter().filter_map(|n| self.show(n).ok()).collect()
    }

    pub fn show(&self, name: &str) -> Result<PluginInfo, PluginError> {
        let registry = self.inner.registry.lock();
        let record = registry.get(name).ok_or_else(|| PluginError::NotFound {
            plugin: name.to_string(),
        })?;
        Ok(PluginInfo {
            name: name.to_string(),
            kind: record.kind,
            world: self.world(name).unwrap_or(""),
            current: record.current().clone(),
            history: record.history.clone(),
            last_load_error: self.load_error(name),
            direct_calls: self.direct_calls(name).unwrap_or(false),
            penalized: self.penalized(name).unwrap_or(false),
            verdict_cache: self.verdict_cache(name),
            stats: self.stats(name).unwrap_or_default(),
        })
    }

    /// Why the last load of `name` failed, until a later load succeeds.
    pub fn load_error(&self, name: &str) -> Option<String> {
        self.inner.load_errors.lock().get(name).cloned()
    }

    pub fn stats(&self, name: &str) -> Option<StatsSnapshot> {
        self.inner.stats.lock().get(name).map(|s| s.snapshot())
    }

    pub fn host_stats(&self) -> HostStats {
        HostStats {
            compiles: self.inner.compiles.load(Ordering::Relaxed),
            cache_hits: self.inner.cache_hits.load(Ordering::Relaxed),
            failed_loads: self.inner.failed_loads.load(Ordering::Relaxed),
        }
    }

    /// The kind and serving version of `name`, if it is loaded.
    pub fn current(&self, name: &str) -> Option<(PluginKind, String)> {
        self.inner
            .live
            .read()
            .get(name)
            .map(|p| (p.kind, p.identity.version.to_string()))
    }

    /// Whether calls to the serving version of `name` go direct (`None`: not loaded).
    pub fn direct_calls(&self, name: &str) -> Option<bool> {
        self.inner.live.read().get(name).map(|p| p.direct())
    }

    /// The WIT world of the serving version of `name` (`None`: not loaded).
    pub fn world(&self, name: &str) -> Option<&'static str> {
        self.inner.live.read().get(name).map(|p| p.world())
    }

    /// Whether calls to the serving version of `name` run in the penalty lane (`None`: not
    /// loaded).
    pub fn penalized(&self, name: &str) -> Option<bool> {
        self.inner.live.read().get(name).map(|p| p.penalized())
    }

    /// The serving version's verdict cache (`None`: not loaded, or deployed without one).
    pub fn verdict_cache(&self, name: &str) -> Option<VerdictCacheInfo> {
        self.inner.live.read().get(name)?.verdict_cache()
    }

    /// Idle warm instances of the serving version (observability and tests).
    pub fn idle_instances(&self, name: &str) -> usize {
        self.inner
            .live
            .read()
            .get(name)
            .map_or(0, |p| p.idle_instances())
    }

    /// Creates and drops `iterations` fresh instances of the serving version of `name` and
    /// returns the mean time per instantiation. For benchmarks and diagnostics; calls in flight
    /// are unaffected.
    pub async fn measure_instantiation(
        &self,
        name: &str,
        iterations: u32,
    ) -> Result<std::time::Duration, PluginError> {
        let plugin = self.live(name)?;
        let started = std::time::Instant::now();
        for _ in 0..iterations {
            plugin.instantiate_and_drop().await?;
        }
        Ok(started.elapsed() / iterations.max(1))
    }
}
