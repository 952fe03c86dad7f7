//! Test plugin: panics (a trap) when the body is `trap`, reports an error when it is `error`,
//! otherwise delivers to queue `ok`. Used to check that a trapped plugin serves again. Logs the
//! body it got first, so tests can see a call's log lines wherever it ran.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });
use switchyard::plugin::log::{log, Level};
use switchyard::plugin::types::{Destination, Target};
struct Trapper;
impl Guest for Trapper {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        log(
            Level::Debug,
            &format!("body: {}", String::from_utf8_lossy(&msg.body)),
        );
        match msg.body.as_slice() {
            b"trap" => panic!("asked to trap"),
            b"error" => Err(PluginError {
                message: "asked to fail".to_string(),
            }),
            _ => Ok(Verdict::Deliver(vec![Destination {
                target: Target::Queue("ok".to_string()),
                message: None,
                delay_ms: None,
            }])),
        }
    }
}
export!(Trapper);
