//! Queues, exchanges, bindings, publishing, pull consumption, metrics, errors, auth, limits.

use serde_json::{json, Value};

use super::{request, Server};

#[test]
fn queue_lifecycle_publish_get_ack_nack_purge_delete() {
    let s = Server::start();
    let (status, created) = s.call(
        "PUT",
        "/api/queues/work",
        Some(&json!({"max_deliveries": 3})),
    );
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["config"]["max_deliveries"], 3);
    // Same policies again: 200; different ones: 409 with an error body.
    assert_eq!(
        s.call(
            "PUT",
            "/api/queues/work",
            Some(&json!({"max_deliveries": 3}))
        )
        .0,
        200
    );
    let (status, err) = s.call(
        "PUT",
        "/api/queues/work",
        Some(&json!({"max_deliveries": 9})),
    );
    assert_eq!(status, 409);
    assert!(err["error"].as_str().unwrap().contains("work"), "{err}");

    for i in 0..3 {
        let r = s.post(
            "/api/exchanges/amq.default/publish",
            json!({"routing_key": "work", "body": format!("job {i}"), "headers": {"n": i}}),
        );
        assert_eq!(r["queues"], json!(["work"]), "{r}");
        assert_eq!(r["outcomes"][0]["outcome"], "stored");
        assert!(!r["message_id"].as_str().unwrap().is_empty());
    }
    let q = s.get("/api/queues/work");
    assert_eq!(q["messages"], 3);
    assert_eq!(q["ready"], 3);
    assert_eq!(q["published_total"], 3);
    assert!(q["oldest_message_age_ms"].as_u64().is_some(), "{q}");

    let got = s.post("/api/queues/work/get", json!({"count": 2}));
    let msgs = got["messages"].as_array().unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0]["message"]["body"], "job 0");
    assert_eq!(msgs[0]["message"]["headers"]["n"], 0);
    let (t0, t1) = (msgs[0]["tag"].clone(), msgs[1]["tag"].clone());
    assert_eq!(s.get("/api/queues/work")["unacked"], 2);

    assert_eq!(
        s.post("/api/queues/work/ack", json!({"tags": [t0]}))["acked"],
        1
    );
    assert_eq!(
        s.post("/api/queues/work/nack", json!({"tags": [t1]}))["nacked"],
        1
    );
    let q = s.get("/api/queues/work");
    assert_eq!(
        (q["messages"].as_u64(), q["unacked"].as_u64()),
        (Some(2), Some(0))
    );
    // The nacked message comes back first, redelivered.
    let again = s.post("/api/queues/work/get", json!({"ack": true}));
    assert_eq!(again["messages"][0]["message"]["body"], "job 1");
    assert_eq!(again["messages"][0]["redelivered"], true);
    // Settling an unknown tag is a client error.
    let (status, err) = s.call(
        "POST",
        "/api/queues/work/ack",
        Some(&json!({"tags": [999]})),
    );
    assert_eq!(status, 400, "{err}");

    assert_eq!(s.post("/api/queues/work/purge", json!({}))["purged"], 1);
    assert_eq!(s.get("/api/queues/work")["messages"], 0);
    let (status, _) = s.call("DELETE", "/api/queues/work", None);
    assert_eq!(status, 200);
    let (status, err) = s.call("GET", "/api/queues/work", None);
    assert_eq!(status, 404);
    assert!(
        err["error"].as_str().unwrap().contains("does not exist"),
        "{err}"
    );
}

#[test]
fn exchanges_bindings_publish_and_dry_run() {
    let s = Server::start();
    s.put("/api/queues/eu", json!({}));
    s.put("/api/queues/all", json!({}));
    let (status, _) = s.call(
        "PUT",
        "/api/exchanges/orders",
        Some(&json!({"type": "topic"})),
    );
    assert_eq!(status, 201);
    s.post(
        "/api/bindings",
        json!({"source": "orders", "destination": "eu", "routing_key": "eu.*"}),
    );
    s.post(
        "/api/bindings",
        json!({"source": "orders", "destination": "all", "routing_key": "#"}),
    );
    let ex = s.get("/api/exchanges/orders");
    assert_eq!(ex["type"], "topic");
    assert_eq!(ex["bindings"].as_array().unwrap().len(), 2);
    let names: Vec<Value> = s
        .get("/api/exchanges")
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["name"].clone())
        .collect();
    assert!(
        names.contains(&json!("orders")) && names.contains(&json!("amq.default")),
        "{names:?}"
    );

    let dry = s.post(
        "/api/exchanges/orders/dry-run",
        json!({"routing_key": "eu.new", "body": "x"}),
    );
    let queues: Vec<&str> = dry["outputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["queue"].as_str().unwrap())
        .collect();
    assert_eq!(queues, ["eu", "all"], "{dry}");
    assert_eq!(
        s.get("/api/queues/eu")["messages"],
        0,
        "a dry run stores nothing"
    );

    let r = s.post(
        "/api/exchanges/orders/publish",
        json!({"routing_key": "us.new", "body_base64": "//79"}),
    );
    assert_eq!(r["queues"], json!(["all"]));
    let got = s.post("/api/queues/all/get", json!({"ack": true}));
    assert_eq!(got["messages"][0]["message"]["body_base64"], "//79");

    s.post(
        "/api/bindings/unbind",
        json!({"source": "orders", "destination": "all", "routing_key": "#"}),
    );
    let r = s.post(
        "/api/exchanges/orders/publish",
        json!({"routing_key": "us.new", "body": "y"}),
    );
    assert_eq!(r["routed"], false);
    assert_eq!(r["unroutable"], true);

    // Errors: unknown exchange 404, bad type 400, inequivalent redeclare 409, in use 409.
    let (status, err) = s.call(
        "POST",
        "/api/exchanges/nope/publish",
        Some(&json!({"body": "z"})),
    );
    assert_eq!(status, 404, "{err}");
    assert_eq!(
        s.call("PUT", "/api/exchanges/bad", Some(&json!({"type": "fancy"})))
            .0,
        400
    );
    assert_eq!(
        s.call(
            "PUT",
            "/api/exchanges/orders",
            Some(&json!({"type": "fanout"}))
        )
        .0,
        409
    );
    assert_eq!(
        s.call("DELETE", "/api/exchanges/orders?if_unused=true", None)
            .0,
        409
    );
    assert_eq!(s.call("DELETE", "/api/exchanges/orders", None).0, 200);
    assert_eq!(s.get("/api/bindings"), json!([]));
    // A request body that is not a message: 400 naming the message fields.
    let (status, err) = s.call(
        "POST",
        "/api/exchanges/amq.default/publish",
        Some(&json!({"body": 1})),
    );
    assert_eq!(status, 400);
    assert!(
        err["error"].as_str().unwrap().contains("body_base64"),
        "{err}"
    );
}

#[test]
fn metrics_overview_health_and_unknown_routes() {
    let s = Server::start();
    s.put("/api/queues/m1", json!({}));
    s.post(
        "/api/exchanges/amq.default/publish",
        json!({"routing_key": "m1", "body": "a"}),
    );
    let text = s.get("/metrics");
    let text = text.as_str().unwrap();
    assert!(
        text.contains("# TYPE switchyard_queue_messages gauge"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_queue_messages{queue=\"m1\"} 1\n"),
        "{text}"
    );
    assert!(
        text.contains("switchyard_publishes_total{outcome=\"all\"} 1\n"),
        "{text}"
    );
    assert!(text.contains("switchyard_storage_bytes "), "{text}");
    let o = s.get("/api/overview");
    assert_eq!(o["messages"], 1);
    assert_eq!(o["publishes"]["total"], 1);
    // Rates come from sampling the engine's totals every 2 s. A single publish can fall before
    // the first sample on a loaded machine (then no interval ever sees it), so a second queue
    // gets a publish every 200 ms until a sample shows a positive rate.
    s.put("/api/queues/m2", json!({}));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        s.post(
            "/api/exchanges/amq.default/publish",
            json!({"routing_key": "m2", "body": "b"}),
        );
        let q = s.get("/api/queues/m2");
        if q["publish_rate"].as_f64().unwrap() > 0.0 {
            assert_eq!(q["deliver_rate"].as_f64(), Some(0.0), "{q}");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no publish rate: {q}");
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(s.get("/healthz")["status"], "ok");
    assert_eq!(s.get("/readyz")["status"], "ready");
    let (status, err) = s.call("GET", "/api/nothing", None);
    assert_eq!(status, 404);
    assert!(err["error"].as_str().unwrap().contains("/api/nothing"));
}

#[test]
fn a_token_guards_everything_but_health() {
    let s = Server::start_with(|st| st.admin.token = Some("s3cret".into()));
    let (status, err) = request(&s.url, None, "GET", "/api/queues", None);
    assert_eq!(status, 401);
    assert!(err["error"].as_str().unwrap().contains("Bearer"), "{err}");
    assert_eq!(
        request(&s.url, Some("wrong"), "GET", "/api/queues", None).0,
        401
    );
    assert_eq!(
        request(&s.url, Some("s3cret"), "GET", "/api/queues", None).0,
        200
    );
    assert_eq!(request(&s.url, None, "GET", "/metrics", None).0, 401);
    assert_eq!(request(&s.url, None, "GET", "/healthz", None).0, 200);
}

#[test]
fn request_bodies_are_limited() {
    let s = Server::start_with(|st| {
        st.admin.max_request_bytes = 1024;
        st.admin.max_plugin_bytes = 2048;
    });
    s.put("/api/queues/big", json!({}));
    let body = "x".repeat(4096);
    let (status, err) = s.call(
        "POST",
        "/api/exchanges/amq.default/publish",
        Some(&json!({"routing_key": "big", "body": body})),
    );
    assert_eq!(status, 413);
    assert!(
        err["error"].is_string(),
        "axum's own errors are JSON too: {err}"
    );
    let (status, err) = s.call(
        "POST",
        "/api/queues/big/get",
        Some(&json!({"count": "many"})),
    );
    assert_eq!(status, 422, "{err}");
    assert!(err["error"].as_str().unwrap().contains("count"), "{err}");
    let (status, _) = super::put_bytes(&s, "/api/plugins/huge", &vec![0u8; 4096]);
    assert_eq!(status, 413);
    // Under the upload limit, garbage is refused by the plugin host: 422, not a crash.
    let (status, err) = super::put_bytes(&s, "/api/plugins/junk", b"not wasm");
    assert_eq!(status, 422, "{err}");
    assert!(
        err["error"]
            .as_str()
            .unwrap()
            .contains("not a wasm component"),
        "{err}"
    );
}

#[test]
fn amqp_connections_and_consumers_are_listed() {
    let s = Server::start();
    s.put("/api/queues/watched", json!({}));
    let rt = tokio::runtime::Runtime::new().unwrap();
    let uri = format!("amqp://guest:guest@{}/%2f", s.amqp);
    let (conn, _consumer) = rt.block_on(async {
        let conn = lapin::Connection::connect(&uri, lapin::ConnectionProperties::default())
            .await
            .unwrap();
        let ch = conn.create_channel().await.unwrap();
        let consumer = ch
            .basic_consume(
                "watched".into(),
                "ctag-admin".into(),
                lapin::options::BasicConsumeOptions::default(),
                lapin::types::FieldTable::default(),
            )
            .await
            .unwrap();
        (conn, consumer)
    });
    let conns = s.get("/api/connections");
    assert_eq!(conns.as_array().unwrap().len(), 1, "{conns}");
    assert_eq!(conns[0]["user"], "guest");
    let consumers = s.get("/api/consumers");
    assert_eq!(consumers[0]["queue"], "watched", "{consumers}");
    assert_eq!(consumers[0]["tag"], "ctag-admin");
    assert_eq!(s.get("/api/queues/watched")["consumers"], 1);
    rt.block_on(async { conn.close(200, "bye".into()).await.unwrap() });
    // The registry forgets a closed connection and its consumers.
    for _ in 0..100 {
        if s.get("/api/connections").as_array().unwrap().is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    assert_eq!(s.get("/api/connections"), json!([]));
    assert_eq!(s.get("/api/consumers"), json!([]));
}
