//! Test plugin for the `batch-router` world: routes every message of a batch to the queue named
//! by its body, but panics (a trap, failing the whole batch call) when any body is `trap`, and
//! answers one verdict too few when any body is `short`. Used to check that a batch the plugin
//! cannot answer is routed again one message per call, so only the bad message fails.
wit_bindgen::generate!({ world: "batch-router", path: "../../../wit" });
use switchyard::plugin::batch;
use switchyard::plugin::types::{Destination, Target};
struct BatchTrapper;
impl Guest for BatchTrapper {
    fn route_batch(count: u32) -> Vec<Result<Verdict, PluginError>> {
        let bodies: Vec<String> = (0..count)
            .map(|i| String::from_utf8_lossy(&batch::body(i)).into_owned())
            .collect();
        if bodies.iter().any(|b| b == "trap") {
            panic!("asked to trap");
        }
        let mut answers: Vec<_> = bodies
            .into_iter()
            .map(|queue| {
                Ok(Verdict::Deliver(vec![Destination {
                    target: Target::Queue(queue),
                    message: None,
                    delay_ms: None,
                }]))
            })
            .collect();
        if answers.len() > 1 && answers.iter().any(|a| matches!(a, Ok(Verdict::Deliver(d)) if matches!(&d[0].target, Target::Queue(q) if q == "short"))) {
            answers.pop();
        }
        answers
    }
}
export!(BatchTrapper);
