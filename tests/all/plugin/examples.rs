//! Each example plugin's verdicts, in Rust, Python and JavaScript.

use crate::support::wait::Wait;
use switchyard::message::{FieldValue, Message};
use switchyard::plugin::{PluginError, PluginHost, PluginKind, RouteContext, RouteVerdict};

use super::{memory_host, queues, with_config};
use crate::support::plugins::{js_header_router, python_header_router, rust_plugin_bytes};

fn ctx() -> RouteContext {
    RouteContext {
        exchange: "orders".into(),
        routing_key: "new".into(),
        delivery_count: 0,
        source: "test".into(),
    }
}

fn deploy_header_router(host: &PluginHost, wasm: &[u8]) {
    let opts = with_config(&[
        ("header", "region"),
        ("route.eu", "orders.eu"),
        ("route.7", "orders.seven"),
        ("default", "orders.other"),
    ]);
    let info = host.deploy("hr", wasm, opts).expect("deploy header router");
    assert_eq!(host.current("hr"), Some((PluginKind::Router, info.version)));
}

/// The same assertions for every language's header router.
fn check_header_router(host: &PluginHost, wasm: &[u8]) {
    let eu = Message::new("x")
        .with_header("region", "eu")
        .with_header("other", 1i64);
    assert_eq!(
        queues(&host.route("hr", &eu, &ctx()).wait().unwrap()),
        ["orders.eu"]
    );
    let us = Message::new("x").with_header("region", "us");
    assert_eq!(
        queues(&host.route("hr", &us, &ctx()).wait().unwrap()),
        ["orders.other"]
    );
    let seven = Message::new("x").with_header("region", FieldValue::U8(7));
    assert_eq!(
        queues(&host.route("hr", &seven, &ctx()).wait().unwrap()),
        ["orders.seven"]
    );
    // Repeated calls reuse a warm instance and keep answering correctly.
    for _ in 0..50 {
        assert_eq!(
            queues(&host.route("hr", &eu, &ctx()).wait().unwrap()),
            ["orders.eu"]
        );
    }
    // Without a default route, a missing header is dead-lettered with a reason.
    let opts = with_config(&[("header", "region"), ("route.eu", "orders.eu")]);
    host.deploy("hr", wasm, opts).unwrap();
    match host.route("hr", &Message::new("x"), &ctx()).wait().unwrap() {
        RouteVerdict::DeadLetter { reason } => assert_eq!(reason, "missing header region"),
        other => panic!("expected dead-letter, got {other:?}"),
    }
    let stats = host.stats("hr").unwrap();
    assert!(stats.calls >= 54 && stats.ok == stats.calls, "{stats:?}");
}

fn run_header_router(wasm: Vec<u8>) {
    let host = memory_host();
    deploy_header_router(&host, &wasm);
    check_header_router(&host, &wasm);
}

#[test]
fn rust_header_router_routes_by_header() {
    run_header_router(rust_plugin_bytes("header_router"));
}

#[test]
fn python_header_router_routes_like_the_rust_one() {
    let Some(path) = python_header_router() else {
        return;
    };
    run_header_router(std::fs::read(path).unwrap());
}

#[test]
fn js_header_router_routes_like_the_rust_one() {
    let Some(path) = js_header_router() else {
        return;
    };
    run_header_router(std::fs::read(path).unwrap());
}

#[test]
fn json_router_routes_orders_and_slims_the_analytics_copy() {
    let host = memory_host();
    host.deploy(
        "orders",
        &rust_plugin_bytes("json_router"),
        with_config(&[("threshold", "500")]),
    )
    .unwrap();

    let body =
        r#"{"id":"o-1","region":"eu","amount":120.5,"customer":{"email":"a@b.c"},"items":[1,2,3]}"#;
    let msg = Message::new(body)
        .with_header("tenant", "acme")
        .with_id("m-1");
    let verdict = host.route("orders", &msg, &ctx()).wait().unwrap();
    assert_eq!(queues(&verdict), ["orders.eu", "analytics"]);
    let RouteVerdict::Deliver(list) = &verdict else {
        unreachable!()
    };
    assert!(
        list[0].message.is_none(),
        "full copy is the original message"
    );
    let slim = list[1].message.as_ref().expect("slimmed copy");
    let slim_body: serde_json::Value = serde_json::from_slice(&slim.body).unwrap();
    assert_eq!(
        slim_body,
        serde_json::json!({"id": "o-1", "region": "eu", "amount": 120.5})
    );
    assert_eq!(slim.headers.get("x-slimmed"), Some(&FieldValue::Bool(true)));
    assert_eq!(
        slim.headers.get("tenant"),
        Some(&FieldValue::String("acme".into()))
    );
    assert_eq!(slim.id.as_str(), "m-1");

    let large = Message::new(r#"{"id":"o-2","region":"us","amount":900}"#);
    assert_eq!(
        queues(&host.route("orders", &large, &ctx()).wait().unwrap()),
        ["orders.us", "orders.large", "analytics"]
    );

    match host
        .route("orders", &Message::new("not json"), &ctx())
        .wait()
        .unwrap()
    {
        RouteVerdict::DeadLetter { reason } => {
            assert!(reason.starts_with("body is not JSON"), "{reason}")
        }
        other => panic!("expected dead-letter, got {other:?}"),
    }
    match host
        .route("orders", &Message::new(r#"{"amount":1}"#), &ctx())
        .wait()
        .unwrap()
    {
        RouteVerdict::DeadLetter { reason } => assert_eq!(reason, "order has no region"),
        other => panic!("expected dead-letter, got {other:?}"),
    }
}

#[test]
fn redact_pii_masks_configured_fields_and_keeps_typed_headers() {
    let host = memory_host();
    host.deploy(
        "redact",
        &rust_plugin_bytes("redact_pii"),
        with_config(&[("fields", "email, ssn")]),
    )
    .unwrap();
    let nested = FieldValue::Table(
        [("k".to_string(), FieldValue::I16(-3))]
            .into_iter()
            .collect(),
    );
    let mut msg =
        Message::new(r#"{"name":"Ann","email":"a@b.c","orders":[{"ssn":"123"},{"ok":1}]}"#)
            .with_header("attempt", FieldValue::U16(3))
            .with_header("nested", nested.clone())
            .with_header("when", FieldValue::Timestamp(1_700_000_000));
    msg.properties.content_type = Some("application/json".into());
    msg.properties.priority = Some(4);

    let out = host.transform("redact", &msg, &ctx()).wait().unwrap();
    let body: serde_json::Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({"name": "Ann", "email": "[REDACTED]", "orders": [{"ssn": "[REDACTED]"}, {"ok": 1}]})
    );
    assert_eq!(out.headers.get("x-redacted"), Some(&FieldValue::U32(2)));
    // Types survive the round trip through the plugin, including a nested table.
    assert_eq!(out.headers.get("attempt"), Some(&FieldValue::U16(3)));
    assert_eq!(out.headers.get("nested"), Some(&nested));
    assert_eq!(
        out.headers.get("when"),
        Some(&FieldValue::Timestamp(1_700_000_000))
    );
    assert_eq!(out.properties, msg.properties);
    assert_eq!(out.id, msg.id);

    // A non-JSON body passes through unchanged.
    let plain = Message::new(vec![0xffu8, 0, 1]).with_header("a", "b");
    assert_eq!(
        host.transform("redact", &plain, &ctx()).wait().unwrap(),
        plain
    );
}

#[test]
fn size_filter_keeps_small_messages_with_required_fields() {
    let host = memory_host();
    host.deploy(
        "size",
        &rust_plugin_bytes("size_filter"),
        with_config(&[("max-bytes", "64"), ("required", "id,kind")]),
    )
    .unwrap();
    assert_eq!(host.current("size").unwrap().0, PluginKind::Filter);
    assert!(host
        .filter("size", &Message::new(r#"{"id":1,"kind":"a"}"#), &ctx())
        .wait()
        .unwrap());
    assert!(
        !host
            .filter("size", &Message::new(r#"{"id":1}"#), &ctx())
            .wait()
            .unwrap(),
        "missing field"
    );
    assert!(
        !host
            .filter("size", &Message::new("[1,2]"), &ctx())
            .wait()
            .unwrap(),
        "not an object"
    );
    let big = format!(r#"{{"id":1,"kind":"a","pad":"{}"}}"#, "x".repeat(100));
    assert!(
        !host
            .filter("size", &Message::new(big), &ctx())
            .wait()
            .unwrap(),
        "too big"
    );

    // A plugin-reported error is structured and distinct from a trap.
    host.deploy(
        "size",
        &rust_plugin_bytes("size_filter"),
        with_config(&[("required", " , ")]),
    )
    .unwrap();
    match host.filter("size", &Message::new("{}"), &ctx()).wait() {
        Err(PluginError::PluginReported {
            plugin, message, ..
        }) => {
            assert_eq!(plugin, "size");
            assert_eq!(message, "config `required` is empty");
        }
        other => panic!("expected a plugin-reported error, got {other:?}"),
    }
    // Calling a filter as a router is refused without running it.
    assert!(matches!(
        host.route("size", &Message::new("{}"), &ctx()).wait(),
        Err(PluginError::WrongKind {
            expected: PluginKind::Router,
            actual: PluginKind::Filter,
            ..
        })
    ));
}
