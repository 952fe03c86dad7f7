//! Validated queue names.

use std::borrow::Borrow;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::QueueError;

/// A queue name: 1–255 bytes of `[A-Za-z0-9._:-]`.
///
/// Why so strict: names appear in logs, metrics labels, `x-death` headers and plugin calls;
/// a small alphabet keeps all of those unambiguous. (AMQP allows more; the AMQP layer reports
/// this error as a channel error.)
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct QueueName(String);

impl QueueName {
    pub fn new(name: impl Into<String>) -> Result<QueueName, QueueError> {
        let name = name.into();
        let bad = |reason| QueueError::InvalidName {
            name: name.clone(),
            reason,
        };
        if name.is_empty() {
            return Err(bad("must not be empty"));
        }
        if name.len() > 255 {
            return Err(bad("longer than 255 bytes"));
        }
        if !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(bad("only A-Z, a-z, 0-9 and . _ : - are allowed"));
        }
        Ok(QueueName(name))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for QueueName {
    type Error = QueueError;
    fn try_from(s: String) -> Result<Self, QueueError> {
        QueueName::new(s)
    }
}

impl TryFrom<&str> for QueueName {
    type Error = QueueError;
    fn try_from(s: &str) -> Result<Self, QueueError> {
        QueueName::new(s)
    }
}

impl From<QueueName> for String {
    fn from(n: QueueName) -> String {
        n.0
    }
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Lets maps keyed by name be searched with a `&str` without building a name. Sound because the
/// derived `Eq`, `Ord` and `Hash` are those of the inner string.
impl Borrow<str> for QueueName {
    fn borrow(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_validated() {
        assert!(QueueName::new("orders.v1:eu-west_2").is_ok());
        assert!(QueueName::new("x".repeat(255)).is_ok());
        for bad in ["", "a b", "é", "a/b", "q\n"] {
            let err = QueueName::new(bad).unwrap_err();
            assert!(matches!(err, QueueError::InvalidName { .. }), "{bad:?}");
        }
        let err = QueueName::new("x".repeat(256)).unwrap_err().to_string();
        assert!(err.contains("255"), "{err}");
    }
}
