//! Turning bytes into a type-checked, ready-to-instantiate plugin version.
//!
//! Steps, any of which can fail and leave the serving version untouched:
//! 1. sniff the header: not `\0asm` → "not a wasm component"; a core module → same, saying so;
//! 2. compile (or load the cached artifact of the same content hash);
//! 3. find which world the component implements (by its export name) or check the one asked for;
//! 4. resolve imports against the linker (`InstancePre`) and type-check the export against the
//!    world's signature (`RouterPre::new` etc.).

use wasmtime::component::Component;
use wasmtime::Engine;

use super::bindings::Linkers;
use super::cache::ArtifactCache;
use super::types::PluginKind;
use super::worker::{FiberPre, Pres};
use super::PluginError;

const WASM_MAGIC: &[u8; 4] = b"\0asm";
/// Version/layer field of a core module (version 1, layer 0).
const CORE_MODULE_VERSION: [u8; 4] = [1, 0, 0, 0];
/// Version/layer field of a component (version 0xd, layer 1).
const COMPONENT_VERSION: [u8; 4] = [0x0d, 0, 1, 0];

/// Checks the 8-byte preamble, so garbage and core modules get a clear error before wasmtime.
pub(crate) fn sniff(plugin: &str, bytes: &[u8]) -> Result<(), PluginError> {
    if bytes.len() < 8 || &bytes[..4] != WASM_MAGIC {
        return Err(PluginError::NotAComponent {
            plugin: plugin.to_string(),
            cause: "magic header not detected (expected \\0asm)".into(),
        });
    }
    if bytes[4..8] == CORE_MODULE_VERSION {
        return Err(PluginError::NotAComponent {
            plugin: plugin.to_string(),
            cause: "this is a core wasm module; build a component (e.g. target wasm32-wasip2)"
                .into(),
        });
    }
    if bytes[4..8] != COMPONENT_VERSION {
        return Err(PluginError::NotAComponent {
            plugin: plugin.to_string(),
            cause: format!("unknown wasm version/layer {:02x?}", &bytes[4..8]),
        });
    }
    Ok(())
}

/// Compiles `bytes`, or loads the cached artifact. Returns the component and whether it came
/// from the cache.
pub(crate) fn compile(
    engine: &Engine,
    cache: Option<&ArtifactCache>,
    plugin: &str,
    content_hash: &str,
    bytes: &[u8],
) -> Result<(Component, bool), PluginError> {
    sniff(plugin, bytes)?;
    if let Some(component) = cache.and_then(|c| c.load(engine, content_hash)) {
        return Ok((component, true));
    }
    let compile_err = |e: String| PluginError::Compile {
        plugin: plugin.to_string(),
        cause: e,
    };
    let component = match cache {
        Some(cache) => {
            let artifact = engine
                .precompile_component(bytes)
                .map_err(|e| compile_err(format!("{e:#}")))?;
            cache
                .store(engine, content_hash, &artifact)
                .map_err(compile_err)?
        }
        None => Component::new(engine, bytes).map_err(|e| compile_err(format!("{e:#}")))?,
    };
    Ok((component, false))
}

/// The world a component implements, judged by its export names (`route-batch` is a router's
/// too, the `batch-router` world's).
pub(crate) fn infer_kind(engine: &Engine, component: &Component) -> Option<PluginKind> {
    let ty = component.component_type();
    let names: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_string())
        .collect();
    [
        PluginKind::Router,
        PluginKind::Filter,
        PluginKind::Transform,
    ]
    .into_iter()
    .find(|k| {
        names
            .iter()
            .any(|n| n == k.export() || (*k == PluginKind::Router && n == "route-batch"))
    })
}

/// Resolves imports and type-checks exports against `kind`'s world (or the inferred one).
pub(crate) fn prepare(
    engine: &Engine,
    linkers: &Linkers,
    plugin: &str,
    component: &Component,
    kind: Option<PluginKind>,
) -> Result<(PluginKind, Pres), PluginError> {
    let wrong = |expected: &str, cause: String| PluginError::WrongWorld {
        plugin: plugin.to_string(),
        expected: expected.to_string(),
        cause,
    };
    let kind = match kind.or_else(|| infer_kind(engine, component)) {
        Some(k) => k,
        None => {
            return Err(wrong(
                "filter, transform or router",
                "exports none of `filter`, `transform`, `route`, `route-batch`".into(),
            ))
        }
    };
    let expected = match kind {
        PluginKind::Router => {
            "switchyard:plugin/router@0.1.0, view-router@0.1.0 or batch-router@0.1.0".to_string()
        }
        other => format!("switchyard:plugin/{}@0.1.0", other.world()),
    };
    let instance_pre = linkers
        .fiber
        .instantiate_pre(component)
        .map_err(|e| wrong(&expected, format!("imports: {e:#}")))?;
    let fiber = FiberPre::new(kind, instance_pre)
        .map_err(|e| wrong(&expected, format!("exports: {e:#}")))?;
    // Same imports, non-blocking WASI. The fiber pre-instance above has type-checked the
    // export; `Worker::direct` types it again when it makes an instance.
    let direct = linkers.direct.instantiate_pre(component).ok();
    Ok((kind, Pres { fiber, direct }))
}
