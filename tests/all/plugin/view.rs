//! The `view-router` world: a router that reads the message through a lent `message-view`
//! instead of receiving a copied record. Every view method is compared with what the host
//! holds, on the direct path and on fibers, and a version can replace a record router.

use serde_json::Value;
use switchyard::message::{FieldValue, Message};
use switchyard::plugin::{HostConfig, PluginHost, RouteContext, RouteVerdict, Target};

use super::{host_config, memory_host, queues, with_config};
use crate::support::plugins::rust_plugin_bytes;
use crate::support::wait::Wait;

fn order() -> Message {
    let mut msg = Message::new(r#"{"region":"eu"}"#)
        .with_id("m-42")
        .with_header("region", "eu")
        .with_header("attempt", FieldValue::I32(3));
    msg.properties.content_type = Some("application/json".into());
    msg.properties.correlation_id = Some("c-7".into());
    msg
}

fn context() -> RouteContext {
    RouteContext {
        exchange: "orders".into(),
        routing_key: "order.created".into(),
        delivery_count: 2,
        source: "conn-1".into(),
    }
}

/// What the view reader saw: it dead-letters with a JSON report.
fn seen(verdict: RouteVerdict) -> Value {
    match verdict {
        RouteVerdict::DeadLetter { reason } => serde_json::from_str(&reason).unwrap(),
        other => panic!("expected the reader's report, got {other:?}"),
    }
}

fn reads_every_field(host: &PluginHost) {
    host.deploy(
        "reader",
        &rust_plugin_bytes("test_view_reader"),
        Default::default(),
    )
    .unwrap();
    assert_eq!(host.show("reader").unwrap().world, "view-router");
    for _ in 0..3 {
        let report = seen(host.route("reader", &order(), &context()).wait().unwrap());
        assert_eq!(report["id"], "m-42");
        assert_eq!(report["region"], "eu");
        assert_eq!(report["absent"], Value::Null);
        assert_eq!(
            report["header_names"],
            serde_json::json!(["attempt", "region"])
        );
        assert_eq!(report["content_type"], "application/json");
        assert_eq!(report["correlation_id"], "c-7");
        assert_eq!(report["body_size"], 15);
        assert_eq!(report["body"], r#"{"region":"eu"}"#);
        assert_eq!(report["exchange"], "orders");
        assert_eq!(report["routing_key"], "order.created");
        assert_eq!(report["delivery_count"], 2);
        assert_eq!(report["source"], "conn-1");
        assert_eq!(report["whole_matches"], true);
    }
    // A second message on the same warm instance sees its own fields, not the first one's.
    let other = Message::new("").with_id("m-43");
    let report = seen(
        host.route("reader", &other, &RouteContext::default())
            .wait()
            .unwrap(),
    );
    assert_eq!(report["id"], "m-43");
    assert_eq!(report["region"], Value::Null);
    assert_eq!(report["body_size"], 0);
    assert_eq!(report["routing_key"], "");
    assert_eq!(host.show("reader").unwrap().stats.calls, 4);
}

#[test]
fn a_view_router_reads_every_field_directly() {
    let host = memory_host();
    reads_every_field(&host);
    assert_eq!(host.direct_calls("reader"), Some(true));
}

#[test]
fn a_view_router_reads_every_field_on_fibers() {
    let host = PluginHost::in_memory(HostConfig {
        direct_calls: false,
        ..host_config()
    })
    .unwrap();
    reads_every_field(&host);
    assert_eq!(host.direct_calls("reader"), Some(false));
}

#[test]
fn a_view_router_can_deliver_a_changed_copy() {
    let host = memory_host();
    host.deploy(
        "reader",
        &rust_plugin_bytes("test_view_reader"),
        Default::default(),
    )
    .unwrap();
    let msg = order().with_header("mode", "copy");
    let verdict = host.route("reader", &msg, &context()).wait().unwrap();
    assert_eq!(queues(&verdict), ["copy"]);
    let RouteVerdict::Deliver(list) = verdict else {
        unreachable!()
    };
    assert_eq!(list[0].target, Target::Queue("copy".into()));
    let copy = list[0].message.as_deref().expect("a replacement message");
    let expected = msg.with_header("x-viewed", "yes");
    assert_eq!(
        copy, &expected,
        "to-message is the whole message, unchanged"
    );
}

#[test]
fn record_and_batch_routers_replace_each_other_under_one_name() {
    let host = memory_host();
    let routes = with_config(&[("header", "region"), ("route.eu", "q-eu")]);
    host.deploy("r", &rust_plugin_bytes("test_echo_version"), routes.clone())
        .unwrap();
    assert_eq!(host.show("r").unwrap().world, "router");
    host.deploy("r", &rust_plugin_bytes("header_router"), routes.clone())
        .unwrap();
    assert_eq!(host.show("r").unwrap().world, "batch-router");
    let verdict = host.route("r", &order(), &context()).wait().unwrap();
    assert_eq!(queues(&verdict), ["q-eu"]);
    host.rollback("r").unwrap();
    assert_eq!(host.show("r").unwrap().world, "router");
}
