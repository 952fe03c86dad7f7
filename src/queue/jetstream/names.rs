//! Where a queue lives in JetStream: its stream, its subject, its key in the declarations
//! bucket.
//!
//! Queue names allow `[A-Za-z0-9._:-]`; stream names forbid `.`, subject tokens are split on
//! it, and key-value keys forbid `:`. So each name is escaped into `[A-Za-z0-9_-]`: `_` becomes
//! `__`, `.` becomes `_d`, `:` becomes `_c`. The escape is injective (two queues never share a
//! stream) and reversible (listing the bucket gives queue names back).

use crate::queue::QueueName;

/// The longest escaped name: stream names become directory names on every NATS node, and a
/// 255-byte file name limit must leave room for the namespace prefix.
pub const MAX_ESCAPED: usize = 200;

/// The JetStream names of one namespace (`prefix`): several Switchyard clusters, or tests
/// running side by side, can share one NATS without seeing each other's queues.
#[derive(Debug, Clone)]
pub struct Names {
    prefix: String,
}

impl Names {
    /// `prefix` must itself be a valid token: `[A-Za-z0-9_-]+`.
    pub fn new(prefix: &str) -> Result<Names, String> {
        let valid = !prefix.is_empty()
            && prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        match valid {
            true => Ok(Names {
                prefix: prefix.to_owned(),
            }),
            false => Err(format!(
                "namespace {prefix:?} must be non-empty and use only A-Z, a-z, 0-9, _ and -"
            )),
        }
    }

    /// The stream holding `queue`'s messages.
    pub fn stream(&self, queue: &QueueName) -> Result<String, String> {
        Ok(format!("{}_Q_{}", self.prefix, escape(queue)?))
    }

    /// The one subject of that stream.
    pub fn subject(&self, queue: &QueueName) -> Result<String, String> {
        Ok(format!("{}.q.{}", self.prefix, escape(queue)?))
    }

    /// The key-value bucket of queue declarations.
    pub fn declarations(&self) -> String {
        format!("{}_queues", self.prefix)
    }

    /// The durable consumer every node pulls a queue's messages through.
    pub fn consumer(&self) -> &'static str {
        "switchyard"
    }
}

/// `name` in `[A-Za-z0-9_-]` (for names of `[A-Za-z0-9._:-]`: queues and plugins), by the
/// escape this module's documentation describes.
pub(crate) fn escape_token(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for c in name.chars() {
        match c {
            '_' => out.push_str("__"),
            '.' => out.push_str("_d"),
            ':' => out.push_str("_c"),
            c => out.push(c),
        }
    }
    out
}

/// The escaped form of a queue name; refused when it would be too long.
pub fn escape(queue: &QueueName) -> Result<String, String> {
    let out = escape_token(queue.as_str());
    match out.len() {
        n if n > MAX_ESCAPED => Err(format!(
            "queue name {:?} is too long for the JetStream store ({n} bytes escaped, at most \
             {MAX_ESCAPED}); choose a shorter name or fewer of . _ :",
            queue.as_str()
        )),
        _ => Ok(out),
    }
}

/// The queue name an escaped key stands for; `None` for a key this module did not write.
pub fn unescape(key: &str) -> Option<QueueName> {
    QueueName::new(unescape_token(key)?).ok()
}

/// The inverse of [`escape_token`]; `None` for text it cannot have written.
pub(crate) fn unescape_token(key: &str) -> Option<String> {
    let mut out = String::with_capacity(key.len());
    let mut chars = key.chars();
    while let Some(c) = chars.next() {
        match c {
            '_' => match chars.next()? {
                '_' => out.push('_'),
                'd' => out.push('.'),
                'c' => out.push(':'),
                _ => return None,
            },
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn escapes_what_streams_subjects_and_keys_refuse() {
        let q = QueueName::new("orders.eu:high_1").unwrap();
        assert_eq!(escape(&q).unwrap(), "orders_deu_chigh__1");
        let names = Names::new("SY").unwrap();
        assert_eq!(names.stream(&q).unwrap(), "SY_Q_orders_deu_chigh__1");
        assert_eq!(names.subject(&q).unwrap(), "SY.q.orders_deu_chigh__1");
        assert!(Names::new("bad.prefix").is_err());
        assert!(Names::new("").is_err());
        assert_eq!(unescape("a_x"), None);
        assert_eq!(unescape("a_"), None);
    }

    #[test]
    fn refuses_names_too_long_once_escaped() {
        let q = QueueName::new("_".repeat(150)).unwrap();
        let err = escape(&q).unwrap_err();
        assert!(err.contains("too long"), "{err}");
    }

    proptest! {
        #[test]
        fn escape_round_trips_and_stays_in_the_safe_alphabet(name in "[A-Za-z0-9._:-]{1,90}") {
            let q = QueueName::new(name).unwrap();
            let e = escape(&q).unwrap();
            prop_assert!(e.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'));
            prop_assert_eq!(unescape(&e), Some(q));
        }
    }
}
