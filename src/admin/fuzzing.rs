//! Fuzzing entry point for the admin API's request bodies (the `admin_bodies` cargo-fuzz target
//! and its regression test). Not part of the API.
//!
//! [`Harness::run`] sends one request built from the input through the real [`router`] (every
//! middleware, extractor and handler; only the TCP listener is missing) against a real
//! [`Broker`] in a directory. A client can send anything, so the properties are:
//! - no panic, and no 5xx: garbage is the client's fault, so it gets a 4xx, never a 500;
//! - every response is JSON, and every error is `{"error": "<non-empty text>"}`;
//! - afterwards the broker still answers `/healthz` and `/api/overview`.

use std::path::Path;
use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::Router;
use serde_json::{json, Value};
use tower::ServiceExt;

use super::{router, AdminConfig, AdminState};
use crate::broker::{Broker, BrokerConfig, BrokerError};
use crate::message::fuzzing::Input;

/// The routes that take input, `{}` standing for a name. `true`: a query string is fuzzed too.
const ROUTES: &[(&str, &str, bool)] = &[
    ("PUT", "/api/queues/{}", false),
    ("GET", "/api/queues/{}", false),
    ("DELETE", "/api/queues/{}", false),
    ("POST", "/api/queues/{}/purge", false),
    ("POST", "/api/queues/{}/get", false),
    ("POST", "/api/queues/{}/ack", false),
    ("POST", "/api/queues/{}/nack", false),
    ("PUT", "/api/exchanges/{}", false),
    ("GET", "/api/exchanges/{}", false),
    ("DELETE", "/api/exchanges/{}", true),
    ("POST", "/api/exchanges/{}/publish", false),
    ("POST", "/api/exchanges/{}/dry-run", false),
    ("POST", "/api/bindings", false),
    ("POST", "/api/bindings/unbind", false),
    ("POST", "/api/dead-letters/redrive", false),
    ("GET", "/api/dead-letters", true),
    ("PUT", "/api/plugins/{}", true),
    ("GET", "/api/plugins/{}", false),
    ("POST", "/api/plugins/{}/rollback", false),
    ("GET", "/api/plugins/{}/stats", false),
    ("DELETE", "/api/plugins/{}", false),
    ("POST", "/api/definitions", false),
];

/// Names for the `{}` in a route (already percent-encoded): the prelude's, predefined and
/// special ones, and hostile ones. Indexes past the end take the name from the input.
const NAMES: &[&str] = &[
    "fuzz",
    "fx",
    "amq.default",
    "amq.topic",
    "switchyard.dead-letter",
    "switchyard.quarantine",
    "%2F",
    "a%00b",
    "..",
    "%C3%BC",
    "%FF%FE",
    "q.1:-_",
];

const CONTENT_TYPES: &[Option<&str>] = &[
    Some("application/json"),
    Some("application/json"),
    None,
    Some("text/plain"),
];

/// One response: its status and its body as JSON (`Value::Null` when it was not JSON).
#[derive(Debug, Clone, PartialEq)]
pub struct Reply {
    pub status: StatusCode,
    pub body: Value,
}

/// One broker, router and runtime reused across inputs.
#[derive(Debug)]
pub struct Harness {
    rt: tokio::runtime::Runtime,
    state: AdminState,
    router: Router,
}

impl Harness {
    /// A broker in `dir` (created if missing) behind the admin API, without authentication.
    pub fn open(dir: &Path) -> Result<Harness, BrokerError> {
        let broker = Arc::new(Broker::open(dir, BrokerConfig::scratch())?);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| BrokerError::Internal(format!("tokio runtime: {e}")))?;
        let admin = AdminConfig {
            max_request_bytes: 1 << 20,
            max_plugin_bytes: 1 << 20,
            ..AdminConfig::default()
        };
        let state = AdminState::new(broker, None, admin, None);
        state.set_ready(true);
        Ok(Harness {
            rt,
            router: router(state.clone()),
            state,
        })
    }

    pub fn broker(&self) -> &Arc<Broker> {
        self.state.broker()
    }

    /// Run one fuzz input: byte 0 picks the route, byte 1 the name (low 4 bits), the content
    /// type (bits 4-5) and whether a [`Harness::prelude`] runs first (bit 6); then a query
    /// string when the route takes one; the rest is the body. Checks every property in the
    /// module doc, then empties the broker (see [`Harness::reset`]).
    ///
    /// Panics when a property does not hold.
    pub fn run(&self, data: &[u8]) -> Reply {
        let mut input = Input::new(data);
        let (method, template, has_query) = ROUTES[usize::from(input.byte()) % ROUTES.len()];
        let flags = input.byte();
        if flags & 0x40 != 0 {
            self.prelude();
        }
        let name = match NAMES.get(usize::from(flags & 0x0f)) {
            Some(name) => (*name).to_owned(),
            None => percent_encode(input.bytes(80)),
        };
        let mut uri = template.replace("{}", &name);
        if has_query {
            uri = format!("{uri}?{}", query(input.bytes(64)));
        }
        let content_type = CONTENT_TYPES[usize::from(flags >> 4) & 3];
        let body = input.rest().to_vec();
        let reply = self.request(method, &uri, content_type, body.clone());
        let what = || {
            format!(
                "{method} {uri} ({content_type:?}) with {:?} -> {} {}",
                String::from_utf8_lossy(&body),
                reply.status,
                reply.body
            )
        };
        assert!(!reply.status.is_server_error(), "server error: {}", what());
        assert!(!reply.body.is_null(), "not a JSON reply: {}", what());
        if !reply.status.is_success() {
            let message = reply.body.get("error").and_then(Value::as_str);
            assert!(
                message.is_some_and(|m| !m.is_empty()),
                "an error without a message: {}",
                what()
            );
        }
        self.check_alive();
        self.reset();
        reply
    }

    /// Panics unless the broker still answers its health probe and its overview.
    pub fn check_alive(&self) {
        for path in ["/healthz", "/api/overview"] {
            let r = self.request("GET", path, None, Vec::new());
            assert_eq!(
                r.status,
                StatusCode::OK,
                "GET {path} after the input: {r:?}"
            );
        }
    }

    /// Send one request through the router; returns its status and JSON body.
    pub fn request(
        &self,
        method: &str,
        uri: &str,
        content_type: Option<&str>,
        body: Vec<u8>,
    ) -> Reply {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(ct) = content_type {
            req = req.header("content-type", ct);
        }
        let req = req
            .body(Body::from(body))
            .expect("routes and names form valid URIs");
        let router = self.router.clone();
        self.rt.block_on(async move {
            let resp = router.oneshot(req).await.expect("a router never fails");
            let status = resp.status();
            let bytes = axum::body::to_bytes(resp.into_body(), 64 << 20)
                .await
                .expect("response bodies are in memory");
            let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
            Reply { status, body }
        })
    }

    /// A queue `fuzz` holding two messages, one of them taken over HTTP (tag in flight), and
    /// a topic exchange `fx` bound to it: ack, nack, purge, delete and unbind then have
    /// something to act on.
    pub fn prelude(&self) {
        let json = Some("application/json");
        let steps = [
            ("PUT", "/api/queues/fuzz", json!({"max_deliveries": 3})),
            ("PUT", "/api/exchanges/fx", json!({"type": "topic"})),
            (
                "POST",
                "/api/bindings",
                json!({"source": "fx", "destination": "fuzz", "routing_key": "#"}),
            ),
            ("POST", "/api/exchanges/fx/publish", json!({"body": "one"})),
            (
                "POST",
                "/api/exchanges/amq.default/publish",
                json!({"routing_key": "fuzz", "body": "two", "headers": {"n": 2}}),
            ),
            ("POST", "/api/queues/fuzz/get", json!({"count": 1})),
        ];
        for (method, uri, body) in steps {
            let r = self.request(method, uri, json, body.to_string().into_bytes());
            assert!(r.status.is_success(), "prelude {method} {uri}: {r:?}");
        }
    }

    /// Delete every queue, exchange and plugin the inputs created, and forget the HTTP pull
    /// consumers (the special queues are declared again, empty). Why: state left by earlier
    /// inputs makes crashes hard to reproduce.
    pub fn reset(&self) {
        self.state.inner.pulls.lock().clear();
        let broker = self.broker();
        let exchanges: Vec<String> = broker
            .topology()
            .exchanges()
            .map(|e| e.name.to_string())
            .filter(|n| !crate::definitions::is_predefined(n))
            .collect();
        for name in exchanges {
            let _ = broker.delete_exchange(&name, false);
        }
        for queue in broker.queues().list() {
            let _ = broker.delete_queue(&queue);
        }
        for plugin in broker.plugins().list() {
            let _ = broker.plugins().remove(&plugin.name);
        }
        let special = broker.special_queues();
        for name in [&special.dead_letter, &special.quarantine] {
            if let Ok(q) = crate::queue::QueueName::new(name.clone()) {
                let _ = broker.declare_queue(&q, crate::queue::QueueConfig::default());
            }
        }
    }
}

/// Every byte as `%XX`: any byte string becomes a valid path segment.
fn percent_encode(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("%{b:02X}")).collect()
}

/// A query string: URL-safe bytes as they are (so `key=value&...` shapes are easy to reach),
/// the others percent-encoded.
fn query(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|&b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'=' | b'&' | b'.' | b'_' | b'-' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
