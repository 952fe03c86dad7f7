//! [`Outcome`]: what one plugin step came to.
//!
//! A value, not a sentence: a step is recorded on every routed publish, and the per-version
//! verdict counters classify each one. Formatting happens only when someone reads it (a dry
//! run, the debug log), and it reads as it always has (`deliver to 2`, `error (trap): …`).

use std::borrow::Cow;
use std::fmt;

use serde::{Serialize, Serializer};

/// What a plugin answered, or why it did not.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A filter kept the message.
    Keep,
    /// A filter dropped it, or a router chose to drop it.
    Drop,
    /// A transform rewrote it; the new body's size.
    Rewrite { bytes: usize },
    /// A router sent it to this many destinations.
    Deliver { destinations: usize },
    /// A router dead-lettered it.
    DeadLetter { reason: String },
    /// Not called: the version's circuit breaker is open.
    Quarantined,
    /// The call failed; `kind` is [`crate::plugin::PluginError::kind`].
    Error { kind: &'static str, message: String },
}

impl Outcome {
    /// The class the verdict counters keep: `error:<kind>` for failures, else the first word
    /// of the text (`deliver`, `dead-letter`, `keep`, ...). Allocates for errors only.
    pub fn class(&self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            Outcome::Keep => "keep",
            Outcome::Drop => "drop",
            Outcome::Rewrite { .. } => "rewrite",
            Outcome::Deliver { .. } => "deliver",
            Outcome::DeadLetter { .. } => "dead-letter",
            Outcome::Quarantined => "quarantined",
            Outcome::Error { kind, .. } => return Cow::Owned(format!("error:{kind}")),
        })
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Outcome::Keep => f.write_str("keep"),
            Outcome::Drop => f.write_str("drop"),
            Outcome::Rewrite { bytes } => write!(f, "rewrite ({bytes} bytes)"),
            Outcome::Deliver { destinations } => write!(f, "deliver to {destinations}"),
            Outcome::DeadLetter { reason } => write!(f, "dead-letter: {reason}"),
            Outcome::Quarantined => f.write_str("quarantined (breaker open)"),
            Outcome::Error { kind, message } => write!(f, "error ({kind}): {message}"),
        }
    }
}

/// Serialized as its text: the admin API's dry-run answer is read by people.
impl Serialize for Outcome {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

#[cfg(test)]
mod tests {
    use super::Outcome;

    #[test]
    fn text_and_class() {
        let cases = [
            (
                Outcome::Deliver { destinations: 2 },
                "deliver to 2",
                "deliver",
            ),
            (
                Outcome::DeadLetter {
                    reason: "bad json".into(),
                },
                "dead-letter: bad json",
                "dead-letter",
            ),
            (
                Outcome::Error {
                    kind: "trap",
                    message: "boom".into(),
                },
                "error (trap): boom",
                "error:trap",
            ),
            (
                Outcome::Rewrite { bytes: 7 },
                "rewrite (7 bytes)",
                "rewrite",
            ),
        ];
        for (outcome, text, class) in cases {
            assert_eq!(outcome.to_string(), text);
            assert_eq!(outcome.class(), class);
        }
    }
}
