//! Registry: deploy, list, show, rollback, remove; persistence; the compiled-artifact cache.

use crate::support::wait::Wait;
use switchyard::message::Message;
use switchyard::plugin::{PluginError, PluginKind, RouteContext};

use super::{open_host, queues, with_config};
use crate::support::plugins::{rust_plugin_bytes, with_custom_section};

fn route(host: &switchyard::plugin::PluginHost, name: &str) -> Vec<String> {
    queues(
        &host
            .route(name, &Message::new("x"), &RouteContext::default())
            .wait()
            .unwrap(),
    )
}

#[test]
fn deploy_list_show_rollback_remove_and_persist() {
    let dir = tempfile::tempdir().unwrap();
    let router = rust_plugin_bytes("header_router");
    let router_v2 = with_custom_section(&router, "v2");
    {
        let host = open_host(dir.path());
        assert!(host.list().is_empty());
        let v1 = host
            .deploy("r", &router, with_config(&[("default", "one")]))
            .unwrap();
        assert_eq!(v1.version.len(), 64, "sha-256 hex");
        assert_eq!(v1.size_bytes, router.len() as u64);
        let v2 = host
            .deploy("r", &router_v2, with_config(&[("default", "two")]))
            .unwrap();
        assert_ne!(v1.version, v2.version);
        host.deploy("f", &rust_plugin_bytes("size_filter"), Default::default())
            .unwrap();
        assert_eq!(route(&host, "r"), ["two"]);

        // Redeploying the serving version unchanged is a no-op.
        let again = host
            .deploy("r", &router_v2, with_config(&[("default", "two")]))
            .unwrap();
        assert_eq!(again, v2);

        let list = host.list();
        assert_eq!(
            list.iter().map(|p| p.name.as_str()).collect::<Vec<_>>(),
            ["f", "r"]
        );
        let shown = host.show("r").unwrap();
        assert_eq!(shown.kind, PluginKind::Router);
        assert_eq!(shown.current, v2);
        assert_eq!(shown.history, vec![v1.clone(), v2.clone()]);
        assert_eq!(shown.stats.calls, 1);

        assert_eq!(host.rollback("r").unwrap(), v1);
        assert_eq!(route(&host, "r"), ["one"]);
        assert_eq!(host.show("r").unwrap().history, vec![v1.clone()]);
        assert_eq!(
            host.rollback("r").unwrap_err(),
            PluginError::NoPreviousVersion { plugin: "r".into() }
        );
        host.deploy("r", &router_v2, with_config(&[("default", "two")]))
            .unwrap();
    }
    // A new host on the same directory serves the same versions, from the artifact cache.
    {
        let host = open_host(dir.path());
        assert_eq!(route(&host, "r"), ["two"]);
        assert_eq!(host.show("r").unwrap().history.len(), 2);
        assert_eq!(host.current("f").unwrap().0, PluginKind::Filter);
        let stats = host.host_stats();
        assert_eq!(stats.compiles, 0, "restart must not recompile: {stats:?}");
        assert_eq!(stats.cache_hits, 2);

        host.remove("r").unwrap();
        assert_eq!(
            host.route("r", &Message::new("x"), &RouteContext::default())
                .wait()
                .unwrap_err()
                .kind(),
            "not_found"
        );
        assert_eq!(
            host.remove("r").unwrap_err(),
            PluginError::NotFound { plugin: "r".into() }
        );
        assert_eq!(host.list().len(), 1);
    }
    let host = open_host(dir.path());
    assert!(host.current("r").is_none());
    assert!(host.current("f").is_some());
    // Blobs of removed versions are gone; the filter's remains.
    let blobs = std::fs::read_dir(dir.path().join("plugins/blobs"))
        .unwrap()
        .count();
    assert_eq!(blobs, 1);
}

#[test]
fn reloading_an_unchanged_plugin_does_not_recompile() {
    let dir = tempfile::tempdir().unwrap();
    let wasm = rust_plugin_bytes("json_router");
    let host = open_host(dir.path());
    host.deploy("j", &wasm, Default::default()).unwrap();
    assert_eq!(host.host_stats().compiles, 1);
    // Same bytes under a new config (a new deployment) and under another name: cache hits.
    host.deploy("j", &wasm, with_config(&[("threshold", "5")]))
        .unwrap();
    host.deploy("j2", &wasm, Default::default()).unwrap();
    let stats = host.host_stats();
    assert_eq!((stats.compiles, stats.cache_hits), (1, 2), "{stats:?}");
    let artifacts = std::fs::read_dir(dir.path().join("plugins/cache"))
        .unwrap()
        .count();
    assert_eq!(artifacts, 1);

    // A corrupted artifact is discarded and recompiled, not trusted.
    let artifact = std::fs::read_dir(dir.path().join("plugins/cache"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    std::fs::write(&artifact, b"corrupt").unwrap();
    drop(host);
    let host = open_host(dir.path());
    assert!(host.current("j").is_some());
    let stats = host.host_stats();
    assert_eq!(stats.compiles, 1, "{stats:?}");
}
