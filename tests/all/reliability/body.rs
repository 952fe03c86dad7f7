//! Message bodies that check themselves: the id, the length and a byte pattern derived from the
//! id, so a consumer can tell a torn, truncated, swapped or corrupted body from an intact one.

/// FNV-1a: a stable hash of the id (std's hasher may change between Rust versions).
fn seed(id: &str) -> u64 {
    id.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// The body for message `id`: `"<id>|<n>|"` then `n` pattern bytes (0..2048 by id).
pub fn make(id: &str) -> Vec<u8> {
    let s = seed(id);
    let n = (s % 2048) as usize;
    let mut body = format!("{id}|{n}|").into_bytes();
    body.extend((0..n).map(|i| pattern(s, i)));
    body
}

fn pattern(seed: u64, i: usize) -> u8 {
    (seed.wrapping_add(i as u64 * 7) % 251) as u8
}

/// `Ok` if `body` is exactly [`make`]`(id)`.
pub fn check(id: &str, body: &[u8]) -> Result<(), String> {
    if body == make(id).as_slice() {
        return Ok(());
    }
    let head = String::from_utf8_lossy(&body[..body.len().min(60)]).into_owned();
    Err(format!(
        "message {id}: body of {} bytes is not intact (starts {head:?})",
        body.len()
    ))
}
