//! Hot reload from a watched directory, by polling.
//!
//! Every `<name>.wasm` in the directory is plugin `<name>`; an optional `<name>.config.json`
//! (a flat JSON object of strings) is its config. The world is inferred from the component's
//! export (or the already-deployed kind is kept). A file whose size or modification time changed
//! since the last poll is deployed through [`PluginHost::deploy`], so the usual rules hold:
//! unchanged content is a no-op, and a version that fails to load leaves the old one serving.
//!
//! Polling, not inotify: portable, no dependency, and a reload a second late is fine. Write new
//! files elsewhere and `rename` them in, so the watcher never reads a half-written file (a torn
//! read fails to load and is retried on the next change, the old version serving meanwhile).
//! Deleting a file does not remove the plugin: removal is an explicit API call.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime};

use super::host::{DeployOptions, PluginHost};
use super::PluginError;

/// Stops the watcher thread when dropped.
#[derive(Debug)]
pub struct DirWatcher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

type Stamp = (Option<SystemTime>, u64, Option<SystemTime>);

fn stamp(wasm: &Path, sidecar: &Path) -> Option<Stamp> {
    let meta = std::fs::metadata(wasm).ok()?;
    let side = std::fs::metadata(sidecar)
        .ok()
        .and_then(|m| m.modified().ok());
    Some((meta.modified().ok(), meta.len(), side))
}

fn read_config(path: &Path) -> Result<BTreeMap<String, String>, PluginError> {
    match std::fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map_err(|e| PluginError::Storage(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e.into()),
    }
}

/// The per-directory poll state.
#[derive(Debug, Default)]
struct Scanner {
    seen: HashMap<PathBuf, Stamp>,
}

impl Scanner {
    /// One pass over `dir`: deploys new and changed files. Returns the results of the deploys it
    /// attempted, by plugin name.
    fn scan(
        &mut self,
        host: &PluginHost,
        dir: &Path,
    ) -> Vec<(String, Result<String, PluginError>)> {
        let mut results = Vec::new();
        let Ok(files) = wasm_files(dir) else {
            return results;
        };
        for (name, path) in files {
            let sidecar = dir.join(format!("{name}.config.json"));
            let Some(now) = stamp(&path, &sidecar) else {
                continue;
            };
            if self.seen.get(&path) == Some(&now) {
                continue;
            }
            self.seen.insert(path.clone(), now);
            let result = read_config(&sidecar).and_then(|config| {
                host.deploy_file(
                    &name,
                    &path,
                    DeployOptions {
                        config,
                        ..Default::default()
                    },
                )
                .map(|info| info.version)
            });
            if let Err(e) = &result {
                tracing::warn!(plugin = %name, file = %path.display(), error = %e, "watched plugin failed to load");
            }
            results.push((name, result));
        }
        results
    }
}

/// Every `<name>.wasm` in `dir`, as (name, path).
fn wasm_files(dir: &Path) -> std::io::Result<impl Iterator<Item = (String, PathBuf)>> {
    Ok(std::fs::read_dir(dir)?.flatten().filter_map(|entry| {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("wasm") {
            return None;
        }
        let name = path.file_stem()?.to_str()?.to_owned();
        Some((name, path))
    }))
}

/// A plugin found in a directory: its name, its component file and its config.
pub type DirPlugin = (String, PathBuf, BTreeMap<String, String>);

/// Every `<name>.wasm` of `dir` with its `<name>.config.json` (see the module docs), in name
/// order, without deploying anything (cluster mode deploys them through the registry).
pub fn dir_plugins(dir: &Path) -> Result<Vec<DirPlugin>, PluginError> {
    let mut found = Vec::new();
    for (name, path) in wasm_files(dir)? {
        let config = read_config(&dir.join(format!("{name}.config.json")))?;
        found.push((name, path, config));
    }
    found.sort();
    Ok(found)
}

impl PluginHost {
    /// Deploys every new or changed `.wasm` in `dir` once (see the module docs). Returns the
    /// outcome per plugin name: the deployed version or the error.
    pub fn scan_dir(&self, dir: impl AsRef<Path>) -> Vec<(String, Result<String, PluginError>)> {
        Scanner::default().scan(self, dir.as_ref())
    }

    /// Starts a thread that polls `dir` every `interval` and deploys new and changed files. The
    /// first poll happens immediately. Dropping the returned handle stops the thread.
    pub fn watch_dir(
        &self,
        dir: impl Into<PathBuf>,
        interval: Duration,
    ) -> std::io::Result<DirWatcher> {
        let dir = dir.into();
        let host = self.clone();
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::Builder::new()
            .name("plugin-watch".into())
            .spawn(move || {
                let mut scanner = Scanner::default();
                while !flag.load(Ordering::Relaxed) {
                    scanner.scan(&host, &dir);
                    // Sleep in small steps so that dropping the handle returns promptly.
                    let mut slept = Duration::ZERO;
                    while slept < interval && !flag.load(Ordering::Relaxed) {
                        let step = Duration::from_millis(20).min(interval - slept);
                        std::thread::sleep(step);
                        slept += step;
                    }
                }
            })?;
        Ok(DirWatcher {
            stop,
            thread: Some(thread),
        })
    }
}
