//! Builds the plugins under `plugins/` for the tests, once per process.
//!
//! Safe across concurrent test processes: builds hold an exclusive file lock in
//! `plugins/target/`, and each language's build is also memoized per process (`OnceLock`).
//! Rust plugins are built with `cargo build --release --target wasm32-wasip2` in the `plugins/`
//! workspace, with the outer cargo's environment cleared so that e.g. `CARGO_TARGET_DIR` or
//! `RUSTFLAGS` meant for the host crate do not leak into the guest build. The Python and JS
//! routers are built with componentize-py and componentize-js; when a tool is missing they
//! return `None` after printing a "skipped" line (`scripts/test.sh` installs both).
#![allow(dead_code)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn plugins_dir() -> PathBuf {
    repo_root().join("plugins")
}

/// Runs `f` holding an exclusive lock on `plugins/target/<name>.lock`.
fn with_file_lock<T>(name: &str, f: impl FnOnce() -> T) -> T {
    let dir = plugins_dir().join("target");
    std::fs::create_dir_all(&dir).expect("create plugins/target");
    let lock = File::create(dir.join(format!("{name}.lock"))).expect("create lock file");
    lock.lock().expect("lock build");
    let out = f();
    let _ = lock.unlock();
    out
}

/// A command with the variables the outer `cargo test` set for the host crate removed.
fn clean_command(program: &str) -> Command {
    let mut cmd = Command::new(program);
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy().into_owned();
        let keep = [
            "CARGO_HOME",
            "CARGO_NET_",
            "CARGO_HTTP_",
            "CARGO_REGISTRIES_",
            "CARGO_TERM_",
        ]
        .iter()
        .any(|p| key.starts_with(p));
        let cargo_var = key.starts_with("CARGO_") || key == "CARGO";
        let rust_flags = [
            "RUSTFLAGS",
            "RUSTDOCFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "RUSTC",
        ]
        .contains(&key.as_str());
        if (cargo_var && !keep) || rust_flags {
            cmd.env_remove(&key);
        }
    }
    cmd
}

fn build_rust() -> Result<PathBuf, String> {
    with_file_lock("rust-build", || {
        let out = clean_command("cargo")
            .args(["build", "--release", "--target", "wasm32-wasip2", "--quiet"])
            .current_dir(plugins_dir())
            .output()
            .map_err(|e| format!("running cargo: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "plugin build failed:\n{}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(plugins_dir().join("target/wasm32-wasip2/release"))
    })
}

/// Path of Rust plugin `crate_name`'s component (e.g. `header_router`, `test_looper`).
pub fn rust_plugin(crate_name: &str) -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = BUILT
        .get_or_init(build_rust)
        .as_ref()
        .unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join(format!("{crate_name}.wasm"));
    assert!(path.is_file(), "{} was not built", path.display());
    path
}

pub fn rust_plugin_bytes(crate_name: &str) -> Vec<u8> {
    std::fs::read(rust_plugin(crate_name)).expect("read plugin")
}

fn tool_works(program: &str, arg: &str) -> bool {
    Command::new(program)
        .arg(arg)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

fn newer_than(output: &Path, input: &Path) -> bool {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    matches!((modified(output), modified(input)), (Some(o), Some(i)) if o >= i)
}

/// Builds `plugins/python/<name>/app.py` for `world` into `out/<name>.wasm`, unless it is fresh.
fn build_python(name: &str, world: &str) -> Result<Option<PathBuf>, String> {
    if !tool_works("componentize-py", "--version") {
        println!("skipped: componentize-py not installed, run scripts/test.sh");
        return Ok(None);
    }
    let dir = plugins_dir().join("python").join(name);
    let out = dir.join(format!("out/{name}.wasm"));
    with_file_lock(&format!("python-build-{name}"), || {
        if newer_than(&out, &dir.join("app.py"))
            && newer_than(&out, &repo_root().join("wit/plugin.wit"))
        {
            return Ok(Some(out.clone()));
        }
        std::fs::create_dir_all(dir.join("out")).map_err(|e| e.to_string())?;
        let status = Command::new("componentize-py")
            .args([
                "-d",
                "../../../wit",
                "-w",
                world,
                "componentize",
                "app",
                "-o",
            ])
            .arg(&out)
            .current_dir(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !status.status.success() {
            return Err(format!(
                "componentize-py failed:\n{}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        Ok(Some(out.clone()))
    })
}

/// The Python header router, or `None` (after printing why) when componentize-py is missing.
pub fn python_header_router() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_python("header_router", "router"))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The Python header router for the `view-router` world, or `None` (after printing why) when
/// componentize-py is missing.
pub fn python_view_router() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| build_python("view_router", "view-router"))
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

fn build_js() -> Result<Option<PathBuf>, String> {
    let dir = plugins_dir().join("js/header-router");
    let cli = dir.join("node_modules/@bytecodealliance/componentize-js/src/cli.js");
    if !cli.is_file() || !tool_works("node", "--version") {
        println!(
            "skipped: node or componentize-js (node_modules) not installed, run scripts/test.sh"
        );
        return Ok(None);
    }
    let out = dir.join("out/header_router.wasm");
    with_file_lock("js-build", || {
        if newer_than(&out, &dir.join("app.js"))
            && newer_than(&out, &repo_root().join("wit/plugin.wit"))
        {
            return Ok(Some(out.clone()));
        }
        std::fs::create_dir_all(dir.join("out")).map_err(|e| e.to_string())?;
        let status = Command::new("node")
            .arg(&cli)
            .args([
                "app.js",
                "--wit",
                "../../../wit",
                "-n",
                "router",
                "-d",
                "http",
                "fetch-event",
                "-o",
                "out/header_router.wasm",
            ])
            .current_dir(&dir)
            .output()
            .map_err(|e| e.to_string())?;
        if !status.status.success() {
            return Err(format!(
                "componentize-js failed:\n{}",
                String::from_utf8_lossy(&status.stderr)
            ));
        }
        Ok(Some(out.clone()))
    })
}

/// The JavaScript header router, or `None` (after printing why) when node_modules is missing.
pub fn js_header_router() -> Option<PathBuf> {
    static BUILT: OnceLock<Result<Option<PathBuf>, String>> = OnceLock::new();
    BUILT
        .get_or_init(build_js)
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `bytes` with a custom section appended: a different content hash, same behaviour. Lets a
/// test make many distinct versions of one plugin.
pub fn with_custom_section(bytes: &[u8], payload: &str) -> Vec<u8> {
    fn leb(mut n: usize, out: &mut Vec<u8>) {
        loop {
            let byte = (n & 0x7f) as u8;
            n >>= 7;
            if n == 0 {
                out.push(byte);
                break;
            }
            out.push(byte | 0x80);
        }
    }
    let name = b"switchyard-test";
    let mut content = Vec::new();
    leb(name.len(), &mut content);
    content.extend_from_slice(name);
    content.extend_from_slice(payload.as_bytes());
    let mut out = bytes.to_vec();
    out.push(0);
    leb(content.len(), &mut out);
    out.extend_from_slice(&content);
    out
}
