//! Test plugin for the `batch-router` world: routes every message of a batch to the queue named
//! by its body, except that:
//! - any body `trap` panics (a trap, failing the whole batch call);
//! - any body `short` (in a batch of more than one) answers for one message too few;
//! - a body `stray` picks an answer out of range;
//! - a body `column` goes to `values=N`, N the number of values in the batch's column of header
//!   `k`, which says how the host encoded it.
//!
//! Used to check that a batch the plugin cannot answer is routed again one message per call, so
//! only the bad message fails, and that a column lists each value once.
wit_bindgen::generate!({ world: "batch-router", path: "../../../wit" });
use switchyard::plugin::batch;
use switchyard::plugin::types::{Destination, Target};
struct BatchTrapper;
impl Guest for BatchTrapper {
    fn route_batch(count: u32) -> Verdicts {
        let bodies: Vec<String> = (0..count)
            .map(|i| String::from_utf8_lossy(&batch::body(i)).into_owned())
            .collect();
        if bodies.iter().any(|b| b == "trap") {
            panic!("asked to trap");
        }
        let short = count > 1 && bodies.iter().any(|b| b == "short");
        let values = batch::header_column("k").values.len();
        let mut of: Vec<u32> = (0..count).collect();
        for (pick, body) in of.iter_mut().zip(&bodies) {
            if body == "stray" {
                *pick = count;
            }
        }
        let answers = bodies
            .into_iter()
            .map(|body| {
                let queue = match body.as_str() {
                    "column" => format!("values={values}"),
                    _ => body,
                };
                Ok(Verdict::Deliver(vec![Destination {
                    target: Target::Queue(queue),
                    message: None,
                    delay_ms: None,
                }]))
            })
            .collect();
        if short {
            of.pop();
        }
        Verdicts { answers, of }
    }
}
export!(BatchTrapper);
