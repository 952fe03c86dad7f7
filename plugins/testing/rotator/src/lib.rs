//! Test plugin for the verdict cache: a `view-router` that is *not* deterministic, and can be
//! told to do what makes a call uncacheable.
//!
//! Reads header `region`, then routes to `<region>-<n>`, where `n` alternates 0, 1, 0, ... from
//! call to call (state kept in the instance). Header `log` present: logs a line first. Header
//! `clock` present: reads the WASI wall clock first.
wit_bindgen::generate!({ world: "view-router", path: "../../../wit" });

use std::sync::atomic::{AtomicU32, Ordering};

use switchyard::plugin::log::{log, Level};
use switchyard::plugin::types::{Destination, HeaderValue, Target};

static CALLS: AtomicU32 = AtomicU32::new(0);

struct Rotator;

impl Guest for Rotator {
    fn route(msg: &MessageView) -> Result<Verdict, PluginError> {
        let region = match msg.header("region") {
            Some(HeaderValue::Text(r)) => r,
            _ => "none".to_string(),
        };
        if msg.header("log").is_some() {
            log(Level::Info, &format!("routing {region}"));
        }
        if msg.header("clock").is_some() {
            let _ = std::time::SystemTime::now();
        }
        let n = CALLS.fetch_add(1, Ordering::Relaxed) % 2;
        Ok(Verdict::Deliver(vec![Destination {
            target: Target::Queue(format!("{region}-{n}")),
            message: None,
            delay_ms: None,
        }]))
    }
}

export!(Rotator);
