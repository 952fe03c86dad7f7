//! The README's five-minute tour, command by command, against a real `switchyard serve`, so
//! the README cannot rot.
//!
//! The tour edits and rebuilds an example plugin, so it runs in a temporary copy of `plugins/`
//! and `wit/`, building into `plugins/target/tour` (kept between runs as a cache) instead of
//! the `plugins/target` the other tests use.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::Broker;
use crate::support::plugins::{plugins_dir, repo_root};

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name();
        if ["target", "node_modules", "python", "js"].contains(&name.to_str().unwrap_or("")) {
            continue;
        }
        let (src, dst) = (entry.path(), to.join(&name));
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&src, &dst);
        } else {
            std::fs::copy(&src, &dst).unwrap();
        }
    }
}

/// A shell for tour commands: the outer cargo's variables removed (they are meant for the
/// host crate), the tour's target dir and broker URL set.
fn shell(line: &str, cwd: &Path, target: &Path, url: &str) -> Command {
    let mut cmd = Command::new("bash");
    cmd.args(["-c", line]).current_dir(cwd);
    for (k, _) in std::env::vars() {
        let cargo_home = [
            "CARGO_HOME",
            "CARGO_NET_",
            "CARGO_HTTP_",
            "CARGO_REGISTRIES_",
        ]
        .iter()
        .any(|p| k.starts_with(p));
        if (k.starts_with("CARGO") && !cargo_home)
            || k.starts_with("RUSTC")
            || k.starts_with("RUSTFLAGS")
            || k.starts_with("SWITCHYARD_")
        {
            cmd.env_remove(&k);
        }
    }
    let bin_dir = PathBuf::from(env!("CARGO_BIN_EXE_switchyard"))
        .parent()
        .unwrap()
        .to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.env("PATH", path)
        .env("CARGO_TARGET_DIR", target)
        .env("SWITCHYARD_URL", url);
    cmd
}

/// The tour's commands: the lines of the fenced block between `<!-- tour -->` markers.
fn tour() -> Vec<String> {
    let readme = std::fs::read_to_string(repo_root().join("README.md")).unwrap();
    let start = readme.find("<!-- tour -->").expect("tour marker");
    let end = readme.find("<!-- /tour -->").expect("tour end marker");
    readme[start..end]
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#') && !l.starts_with("```"))
        .filter(|l| !l.starts_with("<!--"))
        .map(|l| l.split(" # ").next().unwrap().trim().to_owned())
        .collect()
}

/// What a command's output must show, when it must show something.
fn expected(line: &str) -> &'static [&'static str] {
    match line {
        l if l.starts_with("switchyard plugin list") => &["json_router", "router"],
        l if l.starts_with("curl") => &["\"orders.eu\"", "\"orders.large\"", "\"analytics\""],
        l if l.contains("--id o2") => &["published o2 → orders.eu, analytics"],
        l if l.starts_with("switchyard consume orders.eu") => &["o1", "o2"],
        l if l.starts_with("switchyard plugin versions") => &["VERSION"],
        l if l.contains("--id o3") => &["published o3 → orders.eu, orders.large, analytics"],
        l if l.contains("--id o4") => &["switchyard.dead-letter"],
        l if l.starts_with("switchyard dlq list") => &["o4", "orders.us"],
        l if l.starts_with("switchyard dlq redrive") => &["redriven 1 messages"],
        l if l.starts_with("switchyard consume orders.us") => &["o4"],
        _ => &[],
    }
}

#[test]
fn readme_tour_runs_as_written() {
    let work = tempfile::tempdir().unwrap();
    copy_dir(&plugins_dir(), &work.path().join("plugins"));
    copy_dir(&repo_root().join("wit"), &work.path().join("wit"));
    let target = plugins_dir().join("target/tour");
    let components = target.join("wasm32-wasip2/release");
    // What scripts/run.sh does before serving.
    let build = "cd plugins && cargo build --release --target wasm32-wasip2 --quiet \
                 -p header-router -p json-router -p redact-pii -p size-filter";
    let out = shell(build, work.path(), &target, "").output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let broker = Broker::start(
        work.path(),
        &["--plugins-dir", components.to_str().unwrap()],
        &[("SWITCHYARD_PLUGIN_TIMEOUT_MS", "5000")],
    );
    let commands = tour();
    assert!(commands.len() >= 15, "{commands:?}");
    for line in commands {
        if line.starts_with("export PATH=") {
            continue; // the test puts its own build of the binary on PATH
        }
        let line = line.replace("http://127.0.0.1:15673", &broker.url);
        let out = shell(&line, work.path(), &target, &broker.url)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            out.status.success(),
            "`{line}` failed:\n{stdout}\n{stderr}\n{}",
            broker.log()
        );
        for want in expected(&line) {
            assert!(
                stdout.contains(want),
                "`{line}`: expected {want:?} in:\n{stdout}"
            );
        }
        if line.starts_with("switchyard plugin versions") {
            assert_eq!(
                stdout.lines().count(),
                3,
                "hot reload made a second version:\n{stdout}"
            );
        }
    }
}
