//! Test plugin: delivers to the queue named by its `version` config key, so a test can tell
//! which deployed version answered a call.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });
use switchyard::plugin::config;
use switchyard::plugin::types::{Destination, Target};
struct EchoVersion;
impl Guest for EchoVersion {
    fn route(_msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let version = config::get("version").unwrap_or_default();
        Ok(Verdict::Deliver(vec![Destination {
            target: Target::Queue(version),
            message: None,
            delay_ms: None,
        }]))
    }
}
export!(EchoVersion);
