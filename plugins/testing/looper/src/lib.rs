//! Test plugin: never returns. The host must stop it at the per-call deadline.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });
struct Looper;
impl Guest for Looper {
    fn route(msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let mut x: u64 = msg.body.len() as u64;
        loop {
            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
            if x == 42 && msg.id == "never" {
                return Ok(Verdict::Drop);
            }
        }
    }
}
export!(Looper);
