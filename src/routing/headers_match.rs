//! Headers-exchange matching with RabbitMQ's semantics.
//!
//! A binding's arguments are the pattern. `x-match` chooses how they combine: `all` (the default)
//! or `any`, and `all-with-x` / `any-with-x` to also compare arguments whose names start with
//! `x-` (which are otherwise ignored, as they are binding options). A `Void` argument matches any
//! value of a header that is present.

use crate::message::{FieldValue, Headers, Message};

/// How a headers binding's arguments combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum XMatch {
    All,
    Any,
    AllWithX,
    AnyWithX,
}

/// A headers binding parsed for matching.
#[derive(Debug, Clone, PartialEq)]
pub struct HeadersPattern {
    mode: XMatch,
    args: Vec<(String, FieldValue)>,
}

/// An `x-match` value that is not one of the four RabbitMQ accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid x-match value {0:?}: expected all, any, all-with-x or any-with-x")]
pub struct InvalidXMatch(pub String);

impl HeadersPattern {
    pub fn parse(arguments: &Headers) -> Result<Self, InvalidXMatch> {
        let mode = match arguments.get("x-match") {
            None => XMatch::All,
            Some(FieldValue::String(s)) => match s.as_str() {
                "all" => XMatch::All,
                "any" => XMatch::Any,
                "all-with-x" => XMatch::AllWithX,
                "any-with-x" => XMatch::AnyWithX,
                other => return Err(InvalidXMatch(other.to_owned())),
            },
            Some(other) => return Err(InvalidXMatch(format!("{other:?}"))),
        };
        let with_x = matches!(mode, XMatch::AllWithX | XMatch::AnyWithX);
        let args = arguments
            .iter()
            .filter(|(name, _)| name.as_str() != "x-match" && (with_x || !name.starts_with("x-")))
            .map(|(name, value)| (name.clone(), value.clone()))
            .collect();
        Ok(HeadersPattern { mode, args })
    }

    /// Whether `message`'s headers, as it shows them (its lineage included, which an
    /// `all-with-x` binding can ask for), match.
    pub fn matches(&self, message: &Message) -> bool {
        let hit = |(name, want): &(String, FieldValue)| match message.header(name) {
            None => false,
            Some(_) if *want == FieldValue::Void => true,
            Some(have) => values_equal(want, &have),
        };
        match self.mode {
            XMatch::All | XMatch::AllWithX => self.args.iter().all(hit),
            XMatch::Any | XMatch::AnyWithX => self.args.iter().any(hit),
        }
    }
}

/// Equality that ignores integer width: clients disagree on which width to send (pika sends
/// Python ints as 64-bit, others as 32-bit), and a binding on `3` should match either.
fn values_equal(a: &FieldValue, b: &FieldValue) -> bool {
    match (a.as_i64(), b.as_i64()) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn table(pairs: &[(&str, FieldValue)]) -> Headers {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    fn message(pairs: &[(&str, FieldValue)]) -> Message {
        let mut m = Message::new(&b""[..]);
        m.headers = table(pairs);
        m
    }

    #[test]
    fn all_and_any() {
        let all = HeadersPattern::parse(&table(&[
            ("format", "pdf".into()),
            ("type", "report".into()),
        ]))
        .unwrap();
        let any = HeadersPattern::parse(&table(&[
            ("x-match", "any".into()),
            ("format", "pdf".into()),
            ("type", "report".into()),
        ]))
        .unwrap();
        let both = message(&[("format", "pdf".into()), ("type", "report".into())]);
        let one = message(&[("format", "pdf".into()), ("type", "log".into())]);
        assert!(all.matches(&both));
        assert!(!all.matches(&one));
        assert!(any.matches(&one));
        assert!(!any.matches(&message(&[])));
    }

    #[test]
    fn void_means_present_and_integers_ignore_width() {
        let p = HeadersPattern::parse(&table(&[
            ("k", FieldValue::Void),
            ("n", FieldValue::I32(3)),
        ]))
        .unwrap();
        assert!(p.matches(&message(&[
            ("k", "anything".into()),
            ("n", FieldValue::I64(3))
        ])));
        assert!(!p.matches(&message(&[("n", FieldValue::I64(3))])));
    }

    #[test]
    fn x_arguments_are_ignored_unless_with_x() {
        let plain = HeadersPattern::parse(&table(&[("x-tenant", "a".into())])).unwrap();
        assert!(
            plain.matches(&message(&[])),
            "no non-x arguments: all() of nothing is true"
        );
        let with_x = HeadersPattern::parse(&table(&[
            ("x-match", "all-with-x".into()),
            ("x-tenant", "a".into()),
        ]))
        .unwrap();
        assert!(!with_x.matches(&message(&[])));
        assert!(with_x.matches(&message(&[("x-tenant", "a".into())])));
    }

    #[test]
    fn bad_x_match_is_an_error() {
        let err = HeadersPattern::parse(&table(&[("x-match", "most".into())])).unwrap_err();
        assert!(err.to_string().contains("most"));
    }

    #[test]
    fn a_with_x_binding_sees_the_lineage() {
        let routed = HeadersPattern::parse(&table(&[
            ("x-match", "all-with-x".into()),
            (crate::message::LINEAGE_HEADER, FieldValue::Void),
        ]))
        .unwrap();
        let mut m = message(&[]);
        assert!(!routed.matches(&m));
        m.lineage.push(&"router@1".into());
        assert!(routed.matches(&m), "lineage shows as its header");
    }
}
