//! Errors of the plugin host. No wasmtime types: causes are rendered to strings at the boundary,
//! so the broker layer can match on the variant and log the text.

use std::time::Duration;

use super::PluginKind;

/// Everything that can go wrong deploying or calling a plugin.
///
/// Call-time variants name the plugin and the version (content hash) that failed, so a
/// dead-lettered message can be reproduced offline with exactly that version.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum PluginError {
    /// The plugin trapped (panic, `unreachable`, out-of-bounds access...). Its instance was
    /// discarded; the next call gets a fresh one.
    #[error("plugin {plugin} version {version} trapped: {cause}")]
    Trap {
        plugin: String,
        version: String,
        cause: String,
    },
    /// The call ran past its deadline and was interrupted.
    #[error("plugin {plugin} version {version} exceeded its deadline of {limit:?}")]
    Timeout {
        plugin: String,
        version: String,
        limit: Duration,
    },
    /// The plugin tried to grow its linear memory past the cap.
    #[error("plugin {plugin} version {version} exceeded its memory limit of {limit} bytes")]
    MemoryLimit {
        plugin: String,
        version: String,
        limit: usize,
    },
    /// The plugin returned more data than the host accepts from one call.
    #[error("plugin {plugin} version {version} returned {size} bytes, over the limit of {limit}")]
    OutputTooLarge {
        plugin: String,
        version: String,
        size: usize,
        limit: usize,
    },
    /// The plugin returned something the host cannot turn into a message (e.g. an empty id).
    #[error("plugin {plugin} version {version} returned an invalid result: {cause}")]
    InvalidOutput {
        plugin: String,
        version: String,
        cause: String,
    },
    /// The plugin returned `err(plugin-error)` on purpose.
    #[error("plugin {plugin} version {version} reported an error: {message}")]
    PluginReported {
        plugin: String,
        version: String,
        message: String,
    },
    /// The bytes are a component, but it does not fit the expected world (exports or imports).
    #[error("plugin {plugin}: component does not match world {expected}: {cause}")]
    WrongWorld {
        plugin: String,
        expected: String,
        cause: String,
    },
    /// The bytes are not a WebAssembly component at all (garbage, or a core module).
    #[error("plugin {plugin}: not a wasm component: {cause}")]
    NotAComponent { plugin: String, cause: String },
    /// The component is well-formed but failed to compile or validate.
    #[error("plugin {plugin}: failed to compile: {cause}")]
    Compile { plugin: String, cause: String },
    /// A fresh instance could not be created (start function trapped, pool exhausted, ...).
    #[error("plugin {plugin} version {version}: failed to instantiate: {cause}")]
    Instantiate {
        plugin: String,
        version: String,
        cause: String,
    },
    #[error("plugin {plugin} not found")]
    NotFound { plugin: String },
    #[error("plugin {plugin} is a {actual}, not a {expected}")]
    WrongKind {
        plugin: String,
        expected: PluginKind,
        actual: PluginKind,
    },
    #[error("plugin {plugin} has no previous version to roll back to")]
    NoPreviousVersion { plugin: String },
    #[error("invalid plugin name {name:?}: use 1-64 characters from [A-Za-z0-9._-], not starting with '.'")]
    InvalidName { name: String },
    /// Reading or writing the data directory failed.
    #[error("plugin storage: {0}")]
    Storage(String),
}

impl PluginError {
    /// A short machine-readable name of the variant (`"timeout"`, `"trap"`...), for JSON output
    /// and metrics labels.
    pub fn kind(&self) -> &'static str {
        match self {
            PluginError::Trap { .. } => "trap",
            PluginError::Timeout { .. } => "timeout",
            PluginError::MemoryLimit { .. } => "memory_limit",
            PluginError::OutputTooLarge { .. } => "output_too_large",
            PluginError::InvalidOutput { .. } => "invalid_output",
            PluginError::PluginReported { .. } => "plugin_reported",
            PluginError::WrongWorld { .. } => "wrong_world",
            PluginError::NotAComponent { .. } => "not_a_component",
            PluginError::Compile { .. } => "compile",
            PluginError::Instantiate { .. } => "instantiate",
            PluginError::NotFound { .. } => "not_found",
            PluginError::WrongKind { .. } => "wrong_kind",
            PluginError::NoPreviousVersion { .. } => "no_previous_version",
            PluginError::InvalidName { .. } => "invalid_name",
            PluginError::Storage(_) => "storage",
        }
    }
}

impl From<std::io::Error> for PluginError {
    fn from(e: std::io::Error) -> Self {
        PluginError::Storage(e.to_string())
    }
}
