//! Unit tests of the verdict tree: what is remembered, found, refused and checked.

use super::*;
use crate::message::FieldValue;

fn to(queue: &str) -> RouteVerdict {
    RouteVerdict::Deliver(vec![Destination {
        target: Target::Queue(queue.into()),
        message: None,
        delay_ms: None,
    }])
}

fn with_region(region: &str) -> Message {
    let mut m = Message::new(b"x".to_vec());
    m.headers
        .insert("region".into(), FieldValue::String(region.into()));
    m
}

fn reads(probes: &[Probe]) -> Reads {
    Reads {
        probes: probes.to_vec(),
        tainted: false,
    }
}

fn cache() -> VerdictCache {
    let config = [(DIRECTIVE.to_string(), "on".to_string())].into();
    VerdictCache::for_config(&config).expect("asked for")
}

#[test]
fn a_remembered_verdict_is_found_by_the_answers_alone() {
    let (c, ctx) = (cache(), RouteContext::default());
    let region = reads(&[Probe::Header("region".into())]);
    c.remember("p", &region, &with_region("eu"), &ctx, &to("q-eu"));
    c.remember("p", &region, &with_region("us"), &ctx, &to("q-us"));
    assert!(matches!(c.lookup(&with_region("eu"), &ctx), Lookup::Hit(v) if v == to("q-eu")));
    assert!(matches!(c.lookup(&with_region("us"), &ctx), Lookup::Hit(v) if v == to("q-us")));
    assert!(matches!(c.lookup(&with_region("ap"), &ctx), Lookup::Miss));
    let info = c.info();
    assert_eq!((info.verdicts, info.hits, info.misses), (2, 2, 1));
}

#[test]
fn tainted_or_unique_traces_are_not_remembered() {
    let (c, ctx, m) = (cache(), RouteContext::default(), with_region("eu"));
    let mut tainted = reads(&[Probe::Header("region".into())]);
    tainted.tainted = true;
    c.remember("p", &tainted, &m, &ctx, &to("q"));
    c.remember("p", &reads(&[Probe::Id]), &m, &ctx, &to("q"));
    c.remember("p", &reads(&[Probe::ToMessage]), &m, &ctx, &to("q"));
    assert_eq!(c.info().verdicts, 0);
    assert!(matches!(c.lookup(&m, &ctx), Lookup::Miss));
}

#[test]
fn a_contradicting_trace_turns_the_cache_off_for_good() {
    let (c, ctx, m) = (cache(), RouteContext::default(), with_region("eu"));
    let region = reads(&[Probe::Header("region".into())]);
    c.remember("p", &region, &m, &ctx, &to("a"));
    c.remember("p", &region, &m, &ctx, &to("b"));
    assert!(!c.on());
    assert!(c.info().off.expect("says why").contains("another verdict"));
    assert_eq!(c.info().verdicts, 0);
    c.remember("p", &region, &m, &ctx, &to("a"));
    assert!(matches!(c.lookup(&m, &ctx), Lookup::Miss));
}

#[test]
fn big_verdicts_and_replacement_messages_are_not_remembered() {
    let (c, ctx, m) = (cache(), RouteContext::default(), with_region("eu"));
    let region = reads(&[Probe::Header("region".into())]);
    let long = "q".repeat(MAX_VERDICT_BYTES + 1);
    c.remember("p", &region, &m, &ctx, &to(&long));
    let reason = "r".repeat(MAX_VERDICT_BYTES + 1);
    c.remember("p", &region, &m, &ctx, &RouteVerdict::DeadLetter { reason });
    let copy = RouteVerdict::Deliver(vec![Destination {
        target: Target::Queue("q".into()),
        message: Some(Box::new(m.clone())),
        delay_ms: None,
    }]);
    c.remember("p", &region, &m, &ctx, &copy);
    assert_eq!(c.info().verdicts, 0);
    c.remember("p", &region, &m, &ctx, &to(&"q".repeat(MAX_VERDICT_BYTES)));
    assert_eq!(c.info().verdicts, 1);
}

#[test]
fn a_trace_stops_growing_past_what_could_be_remembered() {
    let mut r = Reads::default();
    for _ in 0..MAX_PROBES * 10 {
        r.probe(Probe::Header("h".into()));
    }
    assert_eq!((r.probes.len(), r.tainted), (MAX_PROBES, true));
    let mut r = Reads::default();
    r.probe(Probe::Header("h".repeat(MAX_TRACE_BYTES + 1)));
    assert!(r.probes.is_empty() && r.tainted);
}

#[test]
fn long_traces_are_not_remembered() {
    let (c, ctx, m) = (cache(), RouteContext::default(), with_region("eu"));
    let many = reads(&vec![Probe::BodySize; MAX_PROBES + 1]);
    c.remember("p", &many, &m, &ctx, &to("q"));
    let long_name = reads(&[Probe::Header("h".repeat(MAX_TRACE_BYTES))]);
    c.remember("p", &long_name, &m, &ctx, &to("q"));
    assert_eq!(c.info().verdicts, 0);
    c.remember(
        "p",
        &reads(&vec![Probe::BodySize; MAX_PROBES]),
        &m,
        &ctx,
        &to("q"),
    );
    assert_eq!(c.info().verdicts, 1);
}

#[test]
fn every_check_every_th_hit_is_sent_to_the_plugin() {
    let (c, ctx, m) = (cache(), RouteContext::default(), with_region("eu"));
    c.remember("p", &reads(&[]), &m, &ctx, &to("q"));
    let misses = (0..CHECK_EVERY * 3)
        .filter(|_| matches!(c.lookup(&m, &ctx), Lookup::Miss))
        .count();
    assert_eq!(misses, 3);
}

#[test]
fn a_full_tree_answers_but_remembers_nothing_new() {
    let (c, ctx) = (cache(), RouteContext::default());
    let region = reads(&[Probe::Header("region".into())]);
    for i in 0..MAX_VERDICTS + 10 {
        c.remember("p", &region, &with_region(&i.to_string()), &ctx, &to("q"));
    }
    assert_eq!(c.info().verdicts, MAX_VERDICTS);
    assert!(matches!(c.lookup(&with_region("0"), &ctx), Lookup::Hit(_)));
    let past = with_region(&(MAX_VERDICTS + 5).to_string());
    assert!(matches!(c.lookup(&past, &ctx), Lookup::Miss));
}

#[test]
fn a_full_tree_still_catches_a_contradiction() {
    let (c, ctx) = (cache(), RouteContext::default());
    let region = reads(&[Probe::Header("region".into())]);
    for i in 0..MAX_VERDICTS {
        c.remember("p", &region, &with_region(&i.to_string()), &ctx, &to("q"));
    }
    c.remember("p", &region, &with_region("0"), &ctx, &to("elsewhere"));
    assert!(c.info().off.unwrap().contains("not deterministic"));
}

#[test]
fn a_full_tree_that_mostly_misses_turns_off() {
    let (c, ctx) = (cache(), RouteContext::default());
    let region = reads(&[Probe::Header("region".into())]);
    for i in 0..MAX_VERDICTS + 1 {
        let m = with_region(&i.to_string());
        assert!(matches!(c.lookup(&m, &ctx), Lookup::Miss));
        c.remember("p", &region, &m, &ctx, &to("q"));
    }
    assert!(!c.on());
    assert!(c.info().off.unwrap().contains("rarely repeats"));
    assert_eq!(c.info().verdicts, 0);
}

#[test]
fn no_cache_unless_the_config_says_on() {
    assert!(VerdictCache::for_config(&Default::default()).is_none());
    let off = [(DIRECTIVE.to_string(), "off".to_string())].into();
    assert!(VerdictCache::for_config(&off).is_none());
}
