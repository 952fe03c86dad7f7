//! Test plugin: allocates without end. The host's memory cap must stop it.
wit_bindgen::generate!({ world: "router", path: "../../../wit" });
struct MemoryBomb;
impl Guest for MemoryBomb {
    fn route(_msg: Message, _ctx: RouteContext) -> Result<Verdict, PluginError> {
        let mut hoard: Vec<Vec<u8>> = Vec::new();
        loop {
            let mut chunk = vec![0u8; 1 << 20];
            chunk[4096] = 1;
            hoard.push(std::hint::black_box(chunk));
        }
    }
}
export!(MemoryBomb);
