//! Message ids: the publisher's, or a generated time-ordered one.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// A message id. Publisher-supplied ids are kept verbatim; generated ids are 26-character
/// Crockford base32 strings (the ULID layout: 48 bits of milliseconds, then 80 bits that are
/// random per process and increase monotonically), so they sort by generation time.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct MessageId(String);

const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// Low 64 bits of the random part; incremented per id so ids made in the same millisecond
/// still sort in generation order.
static COUNTER: AtomicU64 = AtomicU64::new(0);
static SEED: std::sync::OnceLock<u16> = std::sync::OnceLock::new();

impl MessageId {
    /// A fresh, time-ordered id.
    pub fn generate() -> Self {
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        let seed = *SEED.get_or_init(rand::random::<u16>);
        let counter = COUNTER.fetch_add(1, Ordering::Relaxed);
        let value: u128 = (u128::from(millis & 0xFFFF_FFFF_FFFF) << 80)
            | (u128::from(seed) << 64)
            | u128::from(counter);
        let mut out = [0u8; 26];
        for (i, slot) in out.iter_mut().enumerate() {
            let shift = 125 - 5 * i as u32;
            *slot = ALPHABET[((value >> shift) & 0x1F) as usize];
        }
        MessageId(String::from_utf8(out.to_vec()).expect("alphabet is ASCII"))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MessageId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<String> for MessageId {
    fn from(s: String) -> Self {
        MessageId(s)
    }
}

impl From<&str> for MessageId {
    fn from(s: &str) -> Self {
        MessageId(s.to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_are_unique_and_sorted() {
        let ids: Vec<_> = (0..1000).map(|_| MessageId::generate()).collect();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "ids must sort in generation order"
        );
        assert!(ids.iter().all(|id| id.as_str().len() == 26));
    }
}
