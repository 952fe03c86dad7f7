//! Compiled-artifact cache: `<data>/plugins/cache/<content-hash>-<engine-hash>.cwasm`.
//!
//! Files are written by [`ArtifactCache::store`] only (from `Engine::precompile_component`,
//! through a temporary file and a rename, so a crash never leaves a half-written artifact under
//! the final name) and read back with `Component::deserialize`. The engine hash in the name
//! covers wasmtime's version and every compilation setting, so an upgraded or reconfigured host
//! misses the cache instead of loading incompatible code; wasmtime checks compatibility again on
//! load, and any load failure falls back to compiling.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

use wasmtime::component::Component;
use wasmtime::Engine;

/// The artifact directory of one host.
#[derive(Debug, Clone)]
pub(crate) struct ArtifactCache {
    dir: PathBuf,
    engine_key: String,
}

impl ArtifactCache {
    pub fn new(dir: PathBuf, engine: &Engine) -> std::io::Result<Self> {
        std::fs::create_dir_all(&dir)?;
        // SipHash with fixed keys: stable for a given build of the host, which is all that is
        // needed (a different build just misses the cache).
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        engine.precompile_compatibility_hash().hash(&mut hasher);
        Ok(ArtifactCache {
            dir,
            engine_key: format!("{:016x}", hasher.finish()),
        })
    }

    fn path(&self, content_hash: &str) -> PathBuf {
        self.dir
            .join(format!("{content_hash}-{}.cwasm", self.engine_key))
    }

    /// Loads the artifact for `content_hash` if this host wrote one. `None` on a miss or on any
    /// load failure (the caller then compiles).
    pub fn load(&self, engine: &Engine, content_hash: &str) -> Option<Component> {
        let path = self.path(content_hash);
        if !path.is_file() {
            return None;
        }
        match deserialize_own_file(engine, &path) {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "discarding unusable cached artifact");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    /// Writes `artifact` (output of `precompile_component`) and loads it back.
    pub fn store(
        &self,
        engine: &Engine,
        content_hash: &str,
        artifact: &[u8],
    ) -> Result<Component, String> {
        let path = self.path(content_hash);
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, artifact).map_err(|e| format!("writing {}: {e}", tmp.display()))?;
        std::fs::rename(&tmp, &path).map_err(|e| format!("renaming {}: {e}", tmp.display()))?;
        deserialize_own_file(engine, &path).map_err(|e| format!("{e:#}"))
    }

    /// Removes every artifact of `content_hash` (any engine).
    pub fn remove(&self, content_hash: &str) {
        if let Ok(entries) = std::fs::read_dir(&self.dir) {
            for entry in entries.flatten() {
                if entry
                    .file_name()
                    .to_string_lossy()
                    .starts_with(content_hash)
                {
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
    }
}

/// Loads precompiled native code from `path`.
///
/// The only `unsafe` in the crate. Callers pass only paths inside the host's own cache
/// directory, whose files are written exclusively by [`ArtifactCache::store`].
///
/// The file is read into memory rather than memory-mapped (`deserialize_file` maps it): with a
/// mapping, anything that truncated or rewrote the file in place while the host runs (a backup
/// restore, an operator) would crash the process with SIGBUS. A read costs a few milliseconds
/// for the largest (Python) artifacts and nothing measurable for Rust ones.
#[allow(unsafe_code)]
fn deserialize_own_file(engine: &Engine, path: &Path) -> wasmtime::Result<Component> {
    let bytes = std::fs::read(path)?;
    // SAFETY: `Component::deserialize` trusts its input to be the output of
    // `precompile_component` for a compatible engine, because it turns it into executable code.
    // These bytes come from a file this host wrote with `precompile_component` (the cache
    // directory is private to the host's data directory, and artifacts are renamed into place
    // only after a complete write), and wasmtime verifies the engine compatibility header
    // before use.
    unsafe { Component::deserialize(engine, &bytes) }
}
