//! Plugin routing: `x-wasm` exchanges, pipelines, binding filters, failure policies, the
//! circuit breaker and dry runs.

use switchyard::broker::{BrokerError, Outcome, Publish, LINEAGE_HEADER, REASON_HEADER};
use switchyard::message::{FieldValue, Headers};
use switchyard::queue::QueueName;
use switchyard::routing::{Binding, BindingTarget, Exchange, ExchangeKind, FailurePolicy};

use super::*;

const ORDER_EU: &str = r#"{"id":"o-1","region":"eu","amount":2500,"customer":{"email":"a@b.c"}}"#;

fn wasm_exchange(env: &Env, name: &str, plugin: &str, policy: FailurePolicy) {
    let mut ex = Exchange::new(
        name,
        ExchangeKind::Wasm {
            plugin: plugin.into(),
        },
    );
    ex.failure_policy = policy;
    env.broker.declare_exchange(ex).unwrap();
}

#[tokio::test]
async fn json_router_fans_out_with_a_slimmed_copy_and_lineage() {
    let env = Env::new();
    for q in ["orders.eu", "orders.large", "analytics"] {
        env.queue(q);
    }
    let version = env.deploy("orders", "json_router", &[]);
    wasm_exchange(&env, "orders", "orders", FailurePolicy::DeadLetter);
    let mut m = msg(ORDER_EU);
    m.properties.reply_to = Some("replies".into());
    m.properties.correlation_id = Some("corr-7".into());
    let p = env.publish("orders", "", m).await;
    assert_eq!(
        p.decision.queues().collect::<Vec<_>>(),
        ["orders.eu", "orders.large", "analytics"]
    );
    assert!(p.outcomes.iter().all(|o| o.is_stored()));

    let eu = &env.messages("orders.eu")[0];
    assert_eq!(eu.body.as_ref(), ORDER_EU.as_bytes(), "full copy unchanged");
    assert_eq!(
        eu.properties.reply_to.as_deref(),
        Some("replies"),
        "request/reply survives routing"
    );
    assert_eq!(eu.properties.correlation_id.as_deref(), Some("corr-7"));
    let lineage = eu.header(LINEAGE_HEADER).expect("lineage header");
    assert_eq!(
        *lineage,
        FieldValue::Array(vec![format!("orders@{version}").into()])
    );
    let slim = &env.messages("analytics")[0];
    assert!(
        !String::from_utf8_lossy(&slim.body).contains("customer"),
        "slimmed copy"
    );
    assert_eq!(env.messages("orders.large").len(), 1);
}

#[tokio::test]
async fn router_dead_letter_and_missing_destination_go_to_the_dead_letter_queue() {
    let env = Env::new();
    env.deploy("orders", "json_router", &[]);
    wasm_exchange(&env, "orders", "orders", FailurePolicy::DeadLetter);
    // Not JSON: the router dead-letters it with a reason.
    env.publish("orders", "k", msg("not json")).await;
    // Valid, but none of the destination queues exist.
    env.publish("orders", "k", msg(ORDER_EU)).await;
    let dead = env.messages("switchyard.dead-letter");
    assert_eq!(
        dead.len(),
        4,
        "1 dead-lettered by the plugin + 3 copies to missing queues"
    );
    let reasons: Vec<_> = dead
        .iter()
        .map(|m| {
            m.headers
                .get(REASON_HEADER)
                .and_then(FieldValue::as_str)
                .unwrap()
                .to_owned()
        })
        .collect();
    assert!(reasons[0].starts_with("orders: "), "{reasons:?}");
    assert!(
        reasons[1].contains("missing queue \"orders.eu\""),
        "{reasons:?}"
    );
}

#[tokio::test]
async fn pipeline_filters_and_transforms_before_routing() {
    let env = Env::new();
    env.queue("out");
    env.deploy("small-only", "size_filter", &[("max-bytes", "100")]);
    env.deploy("redact", "redact_pii", &[("fields", "email")]);
    let mut ex = Exchange::new("clean", ExchangeKind::Fanout);
    ex.pipeline = vec!["small-only".into(), "redact".into()];
    env.broker.declare_exchange(ex).unwrap();
    env.broker
        .bind(Binding {
            source: "clean".into(),
            target: BindingTarget::Queue("out".into()),
            routing_key: String::new(),
            arguments: Headers::new(),
            filter: None,
        })
        .unwrap();
    let p = env.publish("clean", "", msg(&"x".repeat(500))).await;
    assert_eq!(
        p.decision.dropped.as_deref(),
        Some("filtered by small-only")
    );
    env.publish("clean", "", msg(r#"{"email":"me@example.com","n":1}"#))
        .await;
    let out = env.messages("out");
    assert_eq!(out.len(), 1);
    let body = String::from_utf8_lossy(&out[0].body);
    assert!(
        !body.contains("me@example.com") && body.contains("\"n\":1"),
        "{body}"
    );
    assert!(out[0].header(LINEAGE_HEADER).is_some());
}

#[tokio::test]
async fn binding_filters_make_content_based_subscriptions() {
    let env = Env::new();
    env.queue("everything");
    env.queue("only-with-sku");
    env.deploy("has-sku", "size_filter", &[("required", "sku")]);
    env.broker
        .declare_exchange(Exchange::new("events", ExchangeKind::Fanout))
        .unwrap();
    for (queue, filter) in [
        ("everything", None),
        ("only-with-sku", Some("has-sku".to_string())),
    ] {
        env.broker
            .bind(Binding {
                source: "events".into(),
                target: BindingTarget::Queue(queue.into()),
                routing_key: String::new(),
                arguments: Headers::new(),
                filter,
            })
            .unwrap();
    }
    env.publish("events", "", msg(r#"{"sku":"A1"}"#)).await;
    env.publish("events", "", msg(r#"{"other":1}"#)).await;
    assert_eq!(env.bodies("everything").len(), 2);
    assert_eq!(env.bodies("only-with-sku"), [r#"{"sku":"A1"}"#]);
}

#[tokio::test]
async fn failure_policies_dead_letter_reject_drop_and_fallback() {
    let env = Env::new();
    env.queue("ok");
    env.queue("fallback");
    env.deploy("flaky", "test_trapper", &[]);
    wasm_exchange(&env, "dl", "flaky", FailurePolicy::DeadLetter);
    wasm_exchange(&env, "rej", "flaky", FailurePolicy::Reject);
    wasm_exchange(&env, "drop", "flaky", FailurePolicy::Drop);
    wasm_exchange(
        &env,
        "fb",
        "flaky",
        FailurePolicy::Fallback {
            queue: "fallback".into(),
        },
    );

    env.publish("dl", "", msg("trap")).await;
    let err = env
        .broker
        .publish("rej", "", msg("error"), false)
        .await
        .unwrap_err();
    assert!(
        matches!(err, BrokerError::Rejected(ref r) if r.contains("asked to fail")),
        "{err}"
    );
    let p = env.publish("drop", "", msg("trap")).await;
    assert!(p.decision.dropped.is_some() && p.outcomes.is_empty());
    env.publish("fb", "", msg("error")).await;
    // The plugin still serves after its traps.
    env.publish("dl", "", msg("fine")).await;

    assert_eq!(env.bodies("switchyard.dead-letter"), ["trap"]);
    assert_eq!(env.bodies("fallback"), ["error"]);
    assert_eq!(env.bodies("ok"), ["fine"]);
    let dead = &env.messages("switchyard.dead-letter")[0];
    let reason = dead
        .headers
        .get(REASON_HEADER)
        .and_then(FieldValue::as_str)
        .unwrap();
    assert!(reason.contains("trapped"), "{reason}");
}

#[tokio::test]
async fn a_looping_plugin_times_out_and_other_exchanges_keep_flowing() {
    let env = Env::new();
    env.queue("ok");
    let short = PluginLimits {
        timeout: Duration::from_millis(50),
        ..PluginLimits::default()
    };
    env.deploy_with("loop", "test_looper", &[], Some(short));
    env.deploy("good", "test_trapper", &[]);
    wasm_exchange(&env, "bad", "loop", FailurePolicy::DeadLetter);
    wasm_exchange(&env, "fine", "good", FailurePolicy::DeadLetter);
    env.publish("bad", "", msg("spin")).await;
    for _ in 0..20 {
        env.publish("fine", "", msg("m")).await;
    }
    assert_eq!(env.bodies("ok").len(), 20);
    let dead = &env.messages("switchyard.dead-letter")[0];
    let reason = dead
        .headers
        .get(REASON_HEADER)
        .and_then(FieldValue::as_str)
        .unwrap();
    assert!(reason.contains("deadline"), "{reason}");
}

#[tokio::test]
async fn circuit_breaker_quarantines_then_releases_after_a_fix() {
    let env = Env::with(|c| c.breaker_threshold = 3);
    env.queue("ok");
    env.deploy("flaky", "test_trapper", &[]);
    wasm_exchange(&env, "x", "flaky", FailurePolicy::DeadLetter);
    for _ in 0..3 {
        env.publish("x", "", msg("error")).await;
    }
    assert_eq!(
        env.bodies("switchyard.dead-letter").len(),
        3,
        "failures before the breaker opens"
    );
    // Open: even a message the plugin would accept is parked without a call.
    let p = env.publish("x", "", msg("fine")).await;
    assert_eq!(
        p.decision.queues().collect::<Vec<_>>(),
        ["switchyard.quarantine"]
    );
    assert_eq!(p.decision.steps[0].outcome, Outcome::Quarantined);
    assert!(env.bodies("ok").is_empty());

    // A new version (here: the same router, redeployed with different config) closes it.
    env.deploy("flaky", "test_echo_version", &[("version", "ok")]);
    let released = env.broker.release_quarantine("flaky").await.unwrap();
    assert_eq!(released, 1);
    assert_eq!(env.bodies("ok"), ["fine"]);
    assert!(env.bodies("switchyard.quarantine").is_empty());
}

#[tokio::test]
async fn dead_letter_redrive_through_a_fixed_plugin() {
    let env = Env::new();
    env.queue("eu");
    env.deploy("r", "header_router", &[("header", "region")]);
    wasm_exchange(&env, "regions", "r", FailurePolicy::DeadLetter);
    env.publish("regions", "", msg("order-1").with_header("region", "eu"))
        .await;
    assert_eq!(
        env.bodies("switchyard.dead-letter"),
        ["order-1"],
        "no route configured yet"
    );
    env.deploy(
        "r",
        "header_router",
        &[("header", "region"), ("route.eu", "eu")],
    );
    let dlq = QueueName::new("switchyard.dead-letter").unwrap();
    assert_eq!(env.broker.replay(&dlq, None).await.unwrap(), 1);
    assert_eq!(env.bodies("eu"), ["order-1"]);
    let m = &env.messages("eu")[0];
    assert!(
        !m.headers.contains_key(REASON_HEADER),
        "the reason is cleared on replay"
    );
}

#[tokio::test]
async fn dry_run_shows_the_decision_and_stores_nothing() {
    let env = Env::new();
    for q in ["orders.eu", "orders.large", "analytics"] {
        env.queue(q);
    }
    env.deploy("orders", "json_router", &[]);
    wasm_exchange(&env, "orders", "orders", FailurePolicy::DeadLetter);
    let d = env
        .broker
        .dry_run("orders", "", msg(ORDER_EU))
        .await
        .unwrap();
    assert_eq!(d.outputs.len(), 3);
    assert_eq!(d.steps.len(), 1);
    assert_eq!(d.steps[0].role, "router");
    assert_eq!(d.steps[0].outcome, Outcome::Deliver { destinations: 3 });
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["outputs"][0]["queue"], "orders.eu");
    for q in ["orders.eu", "orders.large", "analytics"] {
        assert!(env.bodies(q).is_empty(), "dry run stored into {q}");
    }
}

#[tokio::test]
async fn dry_run_captures_what_plugins_logged_and_a_publish_does_not() {
    let env = Env::new();
    env.queue("out");
    env.deploy("small-only", "size_filter", &[("max-bytes", "100")]);
    let mut ex = Exchange::new("small", ExchangeKind::Fanout);
    ex.pipeline = vec!["small-only".into()];
    env.broker.declare_exchange(ex).unwrap();
    let big = msg(&"x".repeat(500)).with_id("m-big");
    let d = env.broker.dry_run("small", "", big.clone()).await.unwrap();
    assert_eq!(d.dropped.as_deref(), Some("filtered by small-only"));
    let logs = &d.steps[0].logs;
    assert_eq!(logs.len(), 1, "{logs:?}");
    assert_eq!(logs[0].level, "debug");
    assert_eq!(logs[0].message, "dropping m-big: 500 bytes > 100");
    let json = serde_json::to_value(&d).unwrap();
    assert_eq!(json["steps"][0]["logs"][0]["level"], "debug");
    // A real publish pays nothing for capture: its steps carry no lines.
    let p = env.publish("small", "", big).await;
    assert_eq!(
        p.decision.dropped.as_deref(),
        Some("filtered by small-only")
    );
    assert!(p.decision.steps[0].logs.is_empty());
}

#[tokio::test]
async fn a_batch_is_routed_in_one_call_and_committed_publish_by_publish() {
    let env = Env::new();
    env.queue("eu");
    env.queue("us");
    let version = env.deploy(
        "r",
        "header_router",
        &[("header", "region"), ("route.eu", "eu"), ("route.us", "us")],
    );
    wasm_exchange(&env, "regions", "r", FailurePolicy::DeadLetter);
    let publish = |body: &str, region: Option<&str>| Publish {
        routing_key: "",
        message: match region {
            Some(r) => msg(body).with_header("region", r),
            None => msg(body),
        },
        mandatory: false,
    };
    let batch = vec![
        publish("a", Some("eu")),
        publish("b", Some("us")),
        publish("c", None),
        publish("d", Some("eu")),
    ];
    let mut outputs = Vec::new();
    for submitted in env.broker.submit_batch("regions", batch).await {
        let published = submitted.unwrap().durable().await.unwrap();
        outputs.push(published.decision.queues().collect::<Vec<_>>().join(","));
    }
    assert_eq!(outputs, ["eu", "us", "switchyard.dead-letter", "eu"]);
    assert_eq!(env.bodies("eu"), ["a", "d"], "in publish order");
    assert_eq!(env.bodies("us"), ["b"]);
    assert_eq!(env.bodies("switchyard.dead-letter"), ["c"]);
    let m = &env.messages("us")[0];
    assert_eq!(
        m.header(LINEAGE_HEADER).as_deref(),
        Some(&FieldValue::Array(vec![format!("r@{version}").into()])),
        "a batch-routed copy names the version that routed it"
    );
    let stats = env.broker.plugins().stats("r").unwrap();
    assert_eq!(stats.calls, 4, "one call per message in the statistics");

    // A batch to an exchange that does not exist fails each of its publishes.
    let missing = env
        .broker
        .submit_batch("nowhere", vec![publish("x", None), publish("y", None)])
        .await;
    assert!(missing
        .iter()
        .all(|r| matches!(r, Err(BrokerError::ExchangeNotFound(_)))));
}

#[tokio::test]
async fn a_message_that_traps_a_batch_router_fails_alone() {
    let env = Env::new();
    env.queue("a");
    env.queue("b");
    env.deploy("t", "test_batch_trapper", &[]);
    wasm_exchange(&env, "by-body", "t", FailurePolicy::DeadLetter);
    let batch = ["a", "trap", "b", "a"]
        .into_iter()
        .map(|body| Publish {
            routing_key: "",
            message: msg(body),
            mandatory: false,
        })
        .collect();
    for submitted in env.broker.submit_batch("by-body", batch).await {
        submitted.unwrap().durable().await.unwrap();
    }
    assert_eq!(env.bodies("a"), ["a", "a"]);
    assert_eq!(env.bodies("b"), ["b"]);
    assert_eq!(env.bodies("switchyard.dead-letter"), ["trap"]);
}
