//! `server::run`: startup (definitions, plugins directory), graceful shutdown, bind errors.

use serde_json::json;
use switchyard::config::Config;
use switchyard::server::{Listeners, ServeError};

use super::Server;
use crate::support::plugins::rust_plugin;

#[test]
fn shutdown_is_graceful_and_the_data_stays() {
    let s = Server::start();
    s.put("/api/queues/keep", json!({}));
    s.post(
        "/api/exchanges/amq.default/publish",
        json!({"routing_key": "keep", "body": "still here"}),
    );
    let (result, dir) = s.stop();
    result.expect("run returns Ok after a graceful stop");
    let s = Server::start_in(dir, |_| {});
    let got = s.post("/api/queues/keep/get", json!({"ack": true}));
    assert_eq!(got["messages"][0]["message"]["body"], "still here");
}

#[test]
fn definitions_and_plugins_dir_are_applied_at_start() {
    let defs_dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        rust_plugin("header_router"),
        defs_dir.path().join("hdr.wasm"),
    )
    .unwrap();
    let file = defs_dir.path().join("definitions.json");
    std::fs::write(
        &file,
        json!({
            "plugins": [{"name": "hdr", "file": "hdr.wasm", "config": {"header": "tenant", "route.acme": "t.acme"}}],
            "queues": [{"name": "t.acme"}, {"name": "dead"}, {"name": "q", "dead_letter": "dead"}],
            "exchanges": [{"name": "by-tenant", "type": "x-wasm", "plugin": "hdr"}],
            "bindings": [{"source": "amq.direct", "destination": "q", "routing_key": "q"}],
            "users": [
                {"name": "app", "password": "pw", "remote": true},
                // Written by RabbitMQ 3.10.8 (`add_user ops test12`, `export_definitions`).
                {"name": "ops", "password_hash": "LGwh8+u14EnkuCSsA9FwNvEaSJM2O0NvDhkNaJEVJcgUl6w4",
                 "hashing_algorithm": "rabbit_password_hashing_sha256"}
            ],
            "permissions": [
                {"user": "app", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
                {"user": "ops", "vhost": "/", "configure": "", "write": "", "read": ".*"}
            ]
        })
        .to_string(),
    )
    .unwrap();
    let plugins = tempfile::tempdir().unwrap();
    std::fs::copy(
        rust_plugin("size_filter"),
        plugins.path().join("small.wasm"),
    )
    .unwrap();
    let s = Server::start_with(|st| {
        st.definitions = Some(file.clone());
        st.plugins_dir = Some(plugins.path().to_path_buf());
    });
    let names: Vec<String> = s
        .get("/api/plugins")
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["hdr", "small"]);
    assert_eq!(s.get("/api/queues/q")["config"]["dead_letter"], "dead");
    let r = s.post(
        "/api/exchanges/by-tenant/publish",
        json!({"body": "x", "headers": {"tenant": "acme"}}),
    );
    assert_eq!(r["queues"], json!(["t.acme"]), "{r}");
    // The definitions' users may log in over AMQP, one with a hash RabbitMQ wrote.
    let rt = tokio::runtime::Runtime::new().unwrap();
    for (user, password) in [("app", "pw"), ("ops", "test12")] {
        let uri = format!("amqp://{user}:{password}@{}/%2f", s.amqp);
        rt.block_on(async {
            let c = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
                .await
                .unwrap_or_else(|e| panic!("{user} logs in: {e}"));
            c.close(200, "bye".into()).await.unwrap();
        });
    }
    let uri = format!("amqp://ops:test13@{}/%2f", s.amqp);
    let wrong = rt.block_on(lapin::Connection::connect(&uri, Default::default()));
    assert!(wrong.is_err(), "a wrong password is refused");
}

#[test]
fn a_missing_plugins_dir_is_not_fatal() {
    let s =
        Server::start_with(|st| st.plugins_dir = Some("/nonexistent/switchyard-plugins".into()));
    assert_eq!(s.get("/api/plugins"), json!([]));
}

#[test]
fn a_taken_port_names_the_setting_to_change() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let config = Config {
        amqp_listen: "127.0.0.1:0".parse().unwrap(),
        http_listen: taken.local_addr().unwrap(),
        ..Config::default()
    };
    let err = rt.block_on(Listeners::bind(&config)).unwrap_err();
    assert!(matches!(err, ServeError::Bind { .. }));
    let text = err.to_string();
    assert!(
        text.contains("--http-listen") && text.contains("SWITCHYARD_HTTP_LISTEN"),
        "{text}"
    );
}
