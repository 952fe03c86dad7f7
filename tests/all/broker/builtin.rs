//! Built-in exchange types, exchange-to-exchange bindings, alternate exchanges, persistence.

use switchyard::message::Headers;
use switchyard::routing::{Binding, BindingTarget, Exchange, ExchangeKind};

use super::*;

fn bind(env: &Env, source: &str, queue: &str, key: &str) {
    env.broker
        .bind(Binding {
            source: source.into(),
            target: BindingTarget::Queue(queue.into()),
            routing_key: key.into(),
            arguments: Headers::new(),
            filter: None,
        })
        .unwrap();
}

#[tokio::test]
async fn default_direct_fanout_topic_and_headers_exchanges() {
    let env = Env::new();
    for q in ["a", "b", "c"] {
        env.queue(q);
    }
    env.publish("", "a", msg("to-a-by-name")).await;
    env.broker.declare_exchange(Exchange::new("fan", ExchangeKind::Fanout)).unwrap();
    bind(&env, "fan", "a", "");
    bind(&env, "fan", "b", "");
    env.publish("fan", "ignored", msg("fanned")).await;
    env.broker.declare_exchange(Exchange::new("logs", ExchangeKind::Topic)).unwrap();
    bind(&env, "logs", "c", "*.error");
    bind(&env, "logs", "c", "kern.#");
    let p = env.publish("logs", "kern.error", msg("one copy per queue")).await;
    assert_eq!(p.decision.queues().collect::<Vec<_>>(), ["c"], "two matching bindings, one copy");
    let mut args = Headers::new();
    args.insert("x-match".into(), "any".into());
    args.insert("format".into(), "pdf".into());
    env.broker.declare_exchange(Exchange::new("hdr", ExchangeKind::Headers)).unwrap();
    env.broker
        .bind(Binding {
            source: "hdr".into(),
            target: BindingTarget::Queue("b".into()),
            routing_key: String::new(),
            arguments: args,
            filter: None,
        })
        .unwrap();
    env.publish("hdr", "", msg("pdf").with_header("format", "pdf")).await;
    env.publish("hdr", "", msg("zip").with_header("format", "zip")).await;

    assert_eq!(env.bodies("a"), ["to-a-by-name", "fanned"]);
    assert_eq!(env.bodies("b"), ["fanned", "pdf"]);
    assert_eq!(env.bodies("c"), ["one copy per queue"]);
}

#[tokio::test]
async fn unroutable_is_returned_when_mandatory_or_goes_to_the_alternate_exchange() {
    let env = Env::new();
    env.queue("lost-and-found");
    let mut ex = Exchange::new("orders", ExchangeKind::Direct);
    env.broker.declare_exchange(ex.clone()).unwrap();
    let p = env.broker.publish("orders", "nowhere", msg("x"), true).await.unwrap();
    assert!(p.decision.unroutable && p.decision.returned && p.outcomes.is_empty());
    let p = env.broker.publish("orders", "nowhere", msg("x"), false).await.unwrap();
    assert!(p.decision.unroutable && !p.decision.returned);

    env.broker.declare_exchange(Exchange::new("ae", ExchangeKind::Fanout)).unwrap();
    bind(&env, "ae", "lost-and-found", "");
    ex.name = "orders2".into();
    ex.alternate_exchange = Some("ae".into());
    env.broker.declare_exchange(ex).unwrap();
    let p = env.broker.publish("orders2", "nowhere", msg("caught"), true).await.unwrap();
    assert!(!p.decision.returned && !p.decision.unroutable);
    assert_eq!(env.bodies("lost-and-found"), ["caught"]);
}

#[tokio::test]
async fn exchange_to_exchange_bindings_and_missing_exchange_error() {
    let env = Env::new();
    env.queue("q");
    env.broker.declare_exchange(Exchange::new("front", ExchangeKind::Fanout)).unwrap();
    env.broker.declare_exchange(Exchange::new("back", ExchangeKind::Direct)).unwrap();
    env.broker
        .bind(Binding {
            source: "front".into(),
            target: BindingTarget::Exchange("back".into()),
            routing_key: String::new(),
            arguments: Headers::new(),
            filter: None,
        })
        .unwrap();
    bind(&env, "back", "q", "k");
    env.publish("front", "k", msg("hop")).await;
    env.publish("front", "other", msg("stops at back")).await;
    assert_eq!(env.bodies("q"), ["hop"]);
    let err = env.broker.publish("nope", "k", msg("x"), false).await.unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");
}

#[tokio::test]
async fn durable_topology_survives_a_restart_and_transient_does_not() {
    let env = Env::new();
    env.queue("q");
    env.broker.declare_exchange(Exchange::new("keep", ExchangeKind::Topic)).unwrap();
    let mut transient = Exchange::new("temp", ExchangeKind::Fanout);
    transient.durable = false;
    env.broker.declare_exchange(transient).unwrap();
    bind(&env, "keep", "q", "a.*");
    bind(&env, "temp", "q", "");
    let env = env.reopen();
    assert!(env.broker.topology().exchange("temp").is_none());
    env.publish("keep", "a.b", msg("after restart")).await;
    assert_eq!(env.bodies("q"), ["after restart"]);
    assert_eq!(env.broker.topology().bindings().count(), 1);
}

#[tokio::test]
async fn deleting_a_queue_removes_its_bindings() {
    let env = Env::new();
    let q = env.queue("gone");
    env.broker.declare_exchange(Exchange::new("fan", ExchangeKind::Fanout)).unwrap();
    bind(&env, "fan", "gone", "");
    env.broker.delete_queue(&q).unwrap();
    assert_eq!(env.broker.topology().bindings().count(), 0);
    let p = env.publish("fan", "", msg("x")).await;
    assert!(p.decision.unroutable);
}
