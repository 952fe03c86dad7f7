//! The persisted registry: named plugins, their deployment history and the wasm of each
//! version, in `<data>/plugins/`:
//!
//! - `registry.json`: every plugin's kind and history (oldest first; the last entry is current);
//! - `blobs/<sha256>.wasm`: the uploaded bytes, by content hash;
//! - `cache/`: compiled artifacts (see `cache.rs`).
//!
//! Writes go through a temporary file and a rename, so a crash leaves either the old or the new
//! `registry.json`, never a torn one. Blobs are written before the registry references them.
//! A host without a data directory (the offline test harness) keeps the same structure in memory.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::types::{PluginKind, PluginLimits};
use super::PluginError;

/// One deployment of a plugin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// SHA-256 of the component bytes, lowercase hex: the version's identity.
    pub version: String,
    /// Key/values the plugin reads through the `config` import.
    pub config: BTreeMap<String, String>,
    pub limits: PluginLimits,
    pub size_bytes: u64,
    /// Milliseconds since the Unix epoch.
    pub deployed_at_ms: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct PluginRecord {
    pub kind: PluginKind,
    /// Oldest first; never empty. The last entry is the current version.
    pub history: Vec<VersionInfo>,
}

impl PluginRecord {
    pub fn current(&self) -> &VersionInfo {
        self.history.last().expect("history is never empty")
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct RegistryFile {
    format: u32,
    plugins: BTreeMap<String, PluginRecord>,
}

#[derive(Debug)]
pub(crate) struct Registry {
    root: Option<PathBuf>,
    file: RegistryFile,
    mem_blobs: HashMap<String, Vec<u8>>,
}

pub(crate) fn validate_name(name: &str) -> Result<(), PluginError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(PluginError::InvalidName {
            name: name.to_string(),
        })
    }
}

impl Registry {
    /// Opens (or creates) the registry under `root`; `None` keeps everything in memory.
    pub fn open(root: Option<&Path>) -> Result<Self, PluginError> {
        let mut registry = Registry {
            root: root.map(Path::to_path_buf),
            file: RegistryFile::default(),
            mem_blobs: HashMap::new(),
        };
        if let Some(root) = root {
            std::fs::create_dir_all(root.join("blobs"))?;
            let path = root.join("registry.json");
            if path.exists() {
                let text = std::fs::read(&path)?;
                registry.file = serde_json::from_slice(&text)
                    .map_err(|e| PluginError::Storage(format!("{}: {e}", path.display())))?;
            }
        }
        registry.file.format = 1;
        Ok(registry)
    }

    pub fn get(&self, name: &str) -> Option<&PluginRecord> {
        self.file.plugins.get(name)
    }

    pub fn all(&self) -> impl Iterator<Item = (&String, &PluginRecord)> {
        self.file.plugins.iter()
    }

    fn blob_path(root: &Path, hash: &str) -> PathBuf {
        root.join("blobs").join(format!("{hash}.wasm"))
    }

    pub fn put_blob(&mut self, hash: &str, bytes: &[u8]) -> Result<(), PluginError> {
        match &self.root {
            Some(root) => {
                let path = Self::blob_path(root, hash);
                if !path.exists() {
                    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
                    std::fs::write(&tmp, bytes)?;
                    std::fs::rename(&tmp, &path)?;
                }
            }
            None => {
                self.mem_blobs
                    .entry(hash.to_string())
                    .or_insert_with(|| bytes.to_vec());
            }
        }
        Ok(())
    }

    pub fn blob(&self, hash: &str) -> Result<Vec<u8>, PluginError> {
        match &self.root {
            Some(root) => Ok(std::fs::read(Self::blob_path(root, hash))?),
            None => self
                .mem_blobs
                .get(hash)
                .cloned()
                .ok_or_else(|| PluginError::Storage(format!("blob {hash} missing"))),
        }
    }

    /// Appends a deployment (creating the plugin) and persists.
    pub fn push(
        &mut self,
        name: &str,
        kind: PluginKind,
        info: VersionInfo,
    ) -> Result<(), PluginError> {
        self.file
            .plugins
            .entry(name.to_string())
            .or_insert_with(|| PluginRecord {
                kind,
                history: Vec::new(),
            })
            .history
            .push(info);
        self.save()
    }

    /// Drops the current deployment, making the previous one current, and persists.
    pub fn pop(&mut self, name: &str) -> Result<VersionInfo, PluginError> {
        let record = self
            .file
            .plugins
            .get_mut(name)
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_string(),
            })?;
        if record.history.len() < 2 {
            return Err(PluginError::NoPreviousVersion {
                plugin: name.to_string(),
            });
        }
        let popped = record.history.pop().expect("len checked");
        self.save()?;
        self.collect_garbage(&popped.version);
        Ok(popped)
    }

    /// Removes a plugin and persists. Returns the content hashes it referenced that no other
    /// deployment references any more (their blobs are deleted; the caller drops artifacts).
    pub fn remove(&mut self, name: &str) -> Result<Vec<String>, PluginError> {
        let record = self
            .file
            .plugins
            .remove(name)
            .ok_or_else(|| PluginError::NotFound {
                plugin: name.to_string(),
            })?;
        self.save()?;
        let mut hashes: Vec<String> = record.history.into_iter().map(|v| v.version).collect();
        hashes.sort();
        hashes.dedup();
        Ok(hashes
            .into_iter()
            .filter(|h| self.collect_garbage(h))
            .collect())
    }

    /// Deletes the blob of `hash` if no deployment references it. Returns whether it did.
    fn collect_garbage(&mut self, hash: &str) -> bool {
        let referenced = self
            .file
            .plugins
            .values()
            .any(|r| r.history.iter().any(|v| v.version == hash));
        if referenced {
            return false;
        }
        match &self.root {
            Some(root) => {
                let _ = std::fs::remove_file(Self::blob_path(root, hash));
            }
            None => {
                self.mem_blobs.remove(hash);
            }
        }
        true
    }

    fn save(&self) -> Result<(), PluginError> {
        let Some(root) = &self.root else {
            return Ok(());
        };
        let path = root.join("registry.json");
        let tmp = root.join(format!("registry.json.tmp{}", std::process::id()));
        let json = serde_json::to_vec_pretty(&self.file)
            .map_err(|e| PluginError::Storage(e.to_string()))?;
        std::fs::write(&tmp, json)?;
        std::fs::rename(&tmp, &path)?;
        Ok(())
    }
}
