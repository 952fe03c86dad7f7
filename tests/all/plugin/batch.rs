//! The `batch-router` world: one call routes many messages, and each message gets the answer its
//! own call would have given.

use switchyard::message::{FieldValue, Message};
use switchyard::plugin::{RouteContext, RouteVerdict, Routed};

use super::{memory_host, queues, with_config};
use crate::support::plugins::rust_plugin_bytes;
use crate::support::wait::Wait;

fn context() -> RouteContext {
    RouteContext {
        exchange: "orders".into(),
        routing_key: "order.created".into(),
        delivery_count: 0,
        source: "test".into(),
    }
}

#[test]
fn a_batch_call_answers_each_message_as_its_own_call_would() {
    let host = memory_host();
    let routes = [
        ("header", "region"),
        ("route.eu", "q-eu"),
        ("route.7", "q-7"),
    ];
    host.deploy(
        "r",
        &rust_plugin_bytes("header_router"),
        with_config(&routes),
    )
    .unwrap();
    assert_eq!(host.show("r").unwrap().world, "batch-router");
    let messages = [
        Message::new("a").with_header("region", "eu"),
        Message::new("b").with_header("region", FieldValue::I32(7)),
        Message::new("c"),
        Message::new("d").with_header("region", "mars"),
        Message::new("e").with_header("region", "eu"),
    ];
    let ctx = context();
    let items: Vec<Routed<'_>> = messages.iter().map(|m| (m, &ctx)).collect();
    let serving = host.serving("r").unwrap();
    assert!(serving.batches(), "a direct batch router takes batches");
    let answers = serving
        .route_batch(&items)
        .expect("the batch call completes");
    assert_eq!(answers.len(), messages.len(), "one answer per message");
    let described: Vec<String> = answers.into_iter().map(|a| describe(&a.unwrap())).collect();
    assert_eq!(
        described,
        [
            "queue q-eu",
            "queue q-7",
            "dead-letter: missing header region",
            "dead-letter: no route for region=mars",
            "queue q-eu",
        ],
        "each message read at its own index, answers in order"
    );
    for (m, batched) in messages.iter().zip(&described) {
        let single = host.route("r", m, &ctx).wait().unwrap();
        assert_eq!(
            &describe(&single),
            batched,
            "same answer as a call of its own"
        );
    }
    let stats = host.stats("r").unwrap();
    assert_eq!(stats.calls, 10, "a batch counts one call per message");
    assert_eq!(
        stats.instantiations, 1,
        "the batch and the single calls share one instance"
    );
}

#[test]
fn an_empty_batch_makes_no_call() {
    let host = memory_host();
    host.deploy("r", &rust_plugin_bytes("header_router"), with_config(&[]))
        .unwrap();
    let serving = host.serving("r").unwrap();
    assert!(serving.route_batch(&[]).is_none());
    assert_eq!(host.stats("r").unwrap().calls, 0);
}

fn describe(verdict: &RouteVerdict) -> String {
    match verdict {
        RouteVerdict::DeadLetter { reason } => format!("dead-letter: {reason}"),
        deliver => format!("queue {}", queues(deliver).join(",")),
    }
}

/// A host serving the `batch-trapper` test plugin as `t`.
fn trapper_host() -> switchyard::plugin::PluginHost {
    let host = memory_host();
    host.deploy(
        "t",
        &rust_plugin_bytes("test_batch_trapper"),
        with_config(&[]),
    )
    .unwrap();
    host
}

/// A column lists each value of the header once, with an index per message into them; a message
/// without the header has a value of its own (`none`).
#[test]
fn a_column_lists_each_value_once() {
    let host = trapper_host();
    let column = |k: Option<&str>| match k {
        Some(k) => Message::new("column").with_header("k", k),
        None => Message::new("column"),
    };
    let messages = [Some("x"), Some("y"), Some("x"), None, Some("y"), None].map(column);
    let ctx = context();
    let items: Vec<Routed<'_>> = messages.iter().map(|m| (m, &ctx)).collect();
    let serving = host.serving("t").unwrap();
    let answers = serving
        .route_batch(&items)
        .expect("the batch call completes");
    for answer in &answers {
        assert_eq!(describe(answer.as_ref().unwrap()), "queue values=3");
    }
    assert_eq!(answers.len(), messages.len());
    let alone = host.route("t", &messages[0], &ctx).wait().unwrap();
    assert_eq!(describe(&alone), "queue values=1", "a batch of one");
}

/// A batch call that traps, answers for the wrong number of messages or picks an answer it does
/// not have answers nothing: the caller routes each message with a call of its own, where only
/// the bad message fails (and, having trapped, penalizes the version). A failed batch alone does
/// not stop batching.
#[test]
fn a_batch_the_plugin_cannot_answer_whole_answers_nothing() {
    let host = trapper_host();
    let ctx = context();
    let serving = host.serving("t").unwrap();
    let failing = [
        ["q-a", "trap", "q-b"],
        ["q-a", "short", "q-b"],
        ["q-a", "stray", "q-b"],
    ];
    for bodies in failing {
        let messages: Vec<Message> = bodies.iter().map(|b| Message::new(*b)).collect();
        let items: Vec<Routed<'_>> = messages.iter().map(|m| (m, &ctx)).collect();
        assert!(
            serving.route_batch(&items).is_none(),
            "{bodies:?}: no answer from a failed batch"
        );
        assert!(serving.batches(), "a failed batch keeps batching on");
    }
    // The instance that trapped was dropped; the next batch gets a fresh one and is answered.
    let (a, b) = (Message::new("q-a"), Message::new("q-b"));
    let answers = serving.route_batch(&[(&a, &ctx), (&b, &ctx)]).unwrap();
    let answers: Vec<String> = answers
        .iter()
        .map(|a| describe(a.as_ref().unwrap()))
        .collect();
    assert_eq!(answers, ["queue q-a", "queue q-b"]);
    // One message per call: only the bad one fails.
    let one = |body: &str| host.route("t", &Message::new(body.to_owned()), &ctx).wait();
    assert_eq!(describe(&one("q-a").unwrap()), "queue q-a");
    assert_eq!(describe(&one("short").unwrap()), "queue short");
    let stray = one("stray").unwrap_err();
    assert!(
        stray.to_string().contains("picked answer 1 of 1"),
        "{stray}"
    );
    let trapped = one("trap").unwrap_err();
    assert!(trapped.to_string().contains("trap"), "{trapped}");
    // That trap penalizes the version: its calls go to the penalty lane, one at a time.
    assert!(!serving.batches(), "a penalized version takes no batches");
}
