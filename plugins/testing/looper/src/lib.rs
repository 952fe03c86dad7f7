//! Test plugin: burns CPU. Without a `spin-ms` header it never returns, and the host must stop
//! it at the per-call deadline; with one it spins that many milliseconds (by the WASI monotonic
//! clock) and then drops the message — a slow plugin that stays under its deadline.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });

use std::time::{Duration, Instant};

use switchyard::plugin::types::HeaderValue;

struct Looper;

impl Guest for Looper {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let spin = msg.headers.iter().find_map(|(name, value)| match value {
            HeaderValue::Text(ms) if name == "spin-ms" => ms.parse::<u64>().ok(),
            HeaderValue::Int64(ms) if name == "spin-ms" => u64::try_from(*ms).ok(),
            _ => None,
        });
        let until = spin.map(|ms| Instant::now() + Duration::from_millis(ms));
        let mut x: u64 = msg.body.len() as u64;
        loop {
            for _ in 0..1000 {
                x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            }
            if until.is_some_and(|t| Instant::now() >= t) || (x == 42 && msg.id == "never") {
                return Ok(Verdict::Drop);
            }
        }
    }
}

export!(Looper);
