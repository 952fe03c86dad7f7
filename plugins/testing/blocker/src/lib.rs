//! Test plugin: reaches blocking WASI imports on purpose, as the `mode` header says:
//! - `sleep`: sleeps 20 ms (a monotonic-clock pollable, blocked on);
//! - `print`: writes a line to stdout and one to stderr;
//! - anything else, or no header: nothing.
//! Then delivers to queue `done`. The host must answer every mode, whatever thread it runs on.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });

use switchyard::plugin::types::{Destination, HeaderValue, Target};

struct Blocker;

impl Guest for Blocker {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let mode = msg.headers.iter().find_map(|(name, value)| match value {
            HeaderValue::Text(text) if name == "mode" => Some(text.as_str()),
            _ => None,
        });
        match mode {
            Some("sleep") => std::thread::sleep(std::time::Duration::from_millis(20)),
            Some("print") => {
                println!("blocker: message {}", msg.id);
                eprintln!("blocker: to stderr too");
            }
            _ => {}
        }
        Ok(Verdict::Deliver(vec![Destination {
            target: Target::Queue("done".into()),
            message: None,
            delay_ms: None,
        }]))
    }
}

export!(Blocker);
