//! Plugins over HTTP: upload, route through `x-wasm`, dead letters and redrive, rollback,
//! stats; definitions export and import.

use serde_json::{json, Value};

use super::{put_bytes, Server};
use crate::support::plugins::rust_plugin_bytes;

fn ids(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn upload_route_dead_letter_redrive_rollback_and_stats() {
    let s = Server::start();
    let router = rust_plugin_bytes("json_router");
    let (status, v) = put_bytes(&s, "/api/plugins/orders?config.threshold=1000", &router);
    assert_eq!(status, 201, "{v}");
    assert_eq!(v["kind"], "router");
    let first = v["version"]["version"].as_str().unwrap().to_owned();
    assert_eq!(v["version"]["config"]["threshold"], "1000");

    for q in ["orders.eu", "orders.large", "analytics"] {
        s.put(&format!("/api/queues/{q}"), json!({}));
    }
    s.put(
        "/api/exchanges/orders",
        json!({"type": "x-wasm", "plugin": "orders"}),
    );
    let r = s.post(
        "/api/exchanges/orders/publish",
        json!({"id": "o1", "json": {"id": "o1", "region": "eu", "amount": 2000}}),
    );
    assert_eq!(
        r["queues"],
        json!(["orders.eu", "orders.large", "analytics"]),
        "{r}"
    );
    assert_eq!(r["decision"]["steps"][0]["version"], first.as_str());

    // Region `us` has no queue yet: the message is dead-lettered with the reason.
    let r = s.post(
        "/api/exchanges/orders/publish",
        json!({"id": "o2", "json": {"id": "o2", "region": "us", "amount": 5}}),
    );
    assert_eq!(
        r["queues"],
        json!(["switchyard.dead-letter", "analytics"]),
        "{r}"
    );
    let dl = s.get("/api/dead-letters");
    assert_eq!(dl["total"], 1);
    assert_eq!(ids(&dl["messages"]), ["o2"]);
    assert!(
        dl["messages"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("orders.us"),
        "{dl}"
    );
    assert_eq!(dl["messages"][0]["exchange"], "orders");

    // Fix the topology, redrive: the message goes through the router again.
    s.put("/api/queues/orders.us", json!({}));
    let red = s.post("/api/dead-letters/redrive", json!({}));
    assert_eq!(red["redriven"], 1, "{red}");
    assert_eq!(red["remaining"], 0);
    assert_eq!(s.get("/api/queues/orders.us")["messages"], 1);

    // A second version, then rollback to the first.
    let (status, v) = put_bytes(&s, "/api/plugins/orders?config.threshold=10", &router);
    assert_eq!(status, 201, "{v}");
    let info = s.get("/api/plugins/orders");
    assert_eq!(info["history"].as_array().unwrap().len(), 2);
    let rb = s.post("/api/plugins/orders/rollback", json!({}));
    assert_eq!(rb["version"]["config"]["threshold"], "1000", "{rb}");
    let (status, err) = s.call("POST", "/api/plugins/orders/rollback", None);
    assert_eq!(status, 409, "{err}");

    let stats = s.get("/api/plugins/orders/stats");
    assert!(stats["calls"]["calls"].as_u64().unwrap() >= 3, "{stats}");
    assert!(
        stats["calls"]["p99_us_at_most"].as_u64().is_some(),
        "{stats}"
    );
    // A well-behaved router: on the serving path, never in the penalty lane.
    assert_eq!(stats["penalized"], false, "{stats}");
    assert_eq!(stats["calls"]["lane_calls"], 0, "{stats}");
    let v1 = &stats["versions"][first.as_str()];
    assert_eq!(v1["verdicts"]["deliver"], 3, "{stats}");
    assert_eq!(v1["calls"], 3, "{stats}");
    assert!(v1["p50_us_at_most"].as_u64().is_some(), "{stats}");
    let list = s.get("/api/plugins");
    assert_eq!(list[0]["name"], "orders");

    // Wrong world for a filter binding is refused with the plugin host's message.
    let (status, _) = put_bytes(&s, "/api/plugins/orders?kind=filter", &router);
    assert_eq!(status, 409);

    assert_eq!(s.call("DELETE", "/api/plugins/orders", None).0, 200);
    assert_eq!(s.call("GET", "/api/plugins/orders", None).0, 404);
}

#[test]
fn definitions_export_and_import_round_trip() {
    let s = Server::start();
    let (status, _) = put_bytes(
        &s,
        "/api/plugins/hdr?config.header=tenant",
        &rust_plugin_bytes("header_router"),
    );
    assert_eq!(status, 201);
    s.put("/api/queues/dlq", json!({}));
    s.put(
        "/api/queues/jobs",
        json!({"dead_letter": "dlq", "max_deliveries": 2, "retry_delays_ms": [10, 20]}),
    );
    s.put(
        "/api/exchanges/ex",
        json!({"type": "direct", "alternate_exchange": "amq.fanout"}),
    );
    s.put(
        "/api/exchanges/wasm",
        json!({"type": "x-wasm", "plugin": "hdr", "failure_policy": "drop"}),
    );
    s.post(
        "/api/bindings",
        json!({"source": "ex", "destination": "jobs", "routing_key": "k"}),
    );
    let defs = s.get("/api/definitions");
    assert_eq!(defs["plugins"][0]["name"], "hdr");
    assert_eq!(defs["plugins"][0]["config"]["header"], "tenant");
    let jobs = defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .find(|q| q["name"] == "jobs")
        .unwrap();
    assert_eq!(jobs["dead_letter"], "dlq");
    assert_eq!(jobs["retry"], json!({"List": {"delays_ms": [10, 20]}}));
    assert_eq!(defs["exchanges"].as_array().unwrap().len(), 2, "{defs}");
    assert!(defs["queues"]
        .as_array()
        .unwrap()
        .iter()
        .all(|q| q["name"] != "switchyard.dead-letter"));

    // Another broker with the same plugin deployed takes the document as is.
    let other = Server::start();
    let (status, _) = put_bytes(
        &other,
        "/api/plugins/hdr?config.header=tenant",
        &rust_plugin_bytes("header_router"),
    );
    assert_eq!(status, 201);
    other.post("/api/definitions", defs.clone());
    assert_eq!(other.get("/api/definitions"), defs);
    // Without the plugin, the import says what to do.
    let third = Server::start();
    let (status, err) = third.call("POST", "/api/definitions", Some(&defs));
    assert_eq!(status, 400, "{err}");
    assert!(
        err["error"].as_str().unwrap().contains("not deployed"),
        "{err}"
    );
}

#[test]
fn a_router_deployed_with_its_verdict_cache_routes_without_calls_and_reports_it() {
    let s = Server::start();
    let url = "/api/plugins/hdr?config.header=region&config.route.eu=eu\
               &config.switchyard.verdict-cache=on";
    let (status, v) = put_bytes(&s, url, &rust_plugin_bytes("header_router"));
    assert_eq!(status, 201, "{v}");
    s.put("/api/queues/eu", json!({}));
    s.put(
        "/api/exchanges/regions",
        json!({"type": "x-wasm", "plugin": "hdr"}),
    );
    for i in 0..5 {
        let msg = json!({"id": format!("m{i}"), "body": "x", "headers": {"region": "eu"}});
        let r = s.post("/api/exchanges/regions/publish", msg);
        assert_eq!(r["queues"], json!(["eu"]), "{r}");
    }
    assert_eq!(s.get("/api/queues/eu")["messages"], 5);
    let stats = s.get("/api/plugins/hdr/stats");
    let cache = &stats["verdict_cache"];
    assert_eq!(cache["verdicts"], 1, "{stats}");
    assert_eq!(cache["hits"], 4, "{stats}");
    assert_eq!(cache["off"], Value::Null, "{stats}");
    assert_eq!(stats["calls"]["calls"], 1, "{stats}");
    let text = s.get("/metrics");
    let text = text.as_str().unwrap();
    let hits = r#"switchyard_plugin_verdict_cache_lookups_total{plugin="hdr",result="hit"} 4"#;
    assert!(text.lines().any(|l| l == hits), "{text}");
}
