//! Test plugin: returns a replacement message of `size` bytes (config, default 4 MiB) for each
//! of `copies` destinations (default 4), to exceed the host's output limit.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });
use switchyard::plugin::config;
use switchyard::plugin::types::{Destination, Target};
struct Oversized;
impl Guest for Oversized {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let size: usize = config::get("size")
            .and_then(|s| s.parse().ok())
            .unwrap_or(4 << 20);
        let copies: usize = config::get("copies")
            .and_then(|s| s.parse().ok())
            .unwrap_or(4);
        let big = Message {
            body: vec![b'x'; size],
            ..msg
        };
        let destinations = (0..copies)
            .map(|i| Destination {
                target: Target::Queue(format!("q{i}")),
                message: Some(big.clone()),
                delay_ms: None,
            })
            .collect();
        Ok(Verdict::Deliver(destinations))
    }
}
export!(Oversized);
