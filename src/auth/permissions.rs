//! Per-vhost permissions: three regular expressions, as in RabbitMQ.
//!
//! A resource (queue or exchange) name is allowed when the pattern for the kind of access
//! matches it anywhere (unanchored, like RabbitMQ: write `^app\.` to mean a prefix). The empty
//! pattern allows nothing. What each AMQP operation needs, also as in RabbitMQ:
//!
//! | operation | needs |
//! |---|---|
//! | declare (not passive) or delete a queue or exchange | configure on it |
//! | publish | write on the exchange (`amq.default` for `""`) |
//! | bind, unbind | write on the destination, read on the source exchange |
//! | consume, get, purge | read on the queue |

use regex::Regex;

use super::AuthError;

/// The kind of access an operation needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

impl Access {
    fn name(self) -> &'static str {
        match self {
            Access::Configure => "configure",
            Access::Write => "write",
            Access::Read => "read",
        }
    }
}

/// What is accessed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource<'a> {
    Queue(&'a str),
    /// `""`, the default exchange, is checked under RabbitMQ's name for it, `amq.default`.
    Exchange(&'a str),
}

impl Resource<'_> {
    /// The name patterns are matched against.
    pub fn name(&self) -> &str {
        match *self {
            Resource::Queue(q) => q,
            Resource::Exchange("") => "amq.default",
            Resource::Exchange(x) => x,
        }
    }

    pub fn kind(&self) -> &'static str {
        match self {
            Resource::Queue(_) => "queue",
            Resource::Exchange(_) => "exchange",
        }
    }
}

/// One pattern; `None` is the empty pattern, which allows nothing.
#[derive(Debug, Clone)]
struct Pattern(Option<Regex>);

impl Pattern {
    fn new(which: Access, pattern: &str) -> Result<Pattern, AuthError> {
        if pattern.is_empty() {
            return Ok(Pattern(None));
        }
        Regex::new(pattern)
            .map(|r| Pattern(Some(r)))
            .map_err(|e| AuthError::BadPattern {
                which: which.name(),
                pattern: pattern.to_owned(),
                cause: e.to_string(),
            })
    }

    fn matches(&self, name: &str) -> bool {
        self.0.as_ref().is_some_and(|r| r.is_match(name))
    }

    fn as_str(&self) -> &str {
        self.0.as_ref().map_or("", Regex::as_str)
    }
}

/// A user's permissions in one vhost.
#[derive(Debug, Clone)]
pub struct Permissions {
    configure: Pattern,
    write: Pattern,
    read: Pattern,
}

impl Permissions {
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permissions, AuthError> {
        Ok(Permissions {
            configure: Pattern::new(Access::Configure, configure)?,
            write: Pattern::new(Access::Write, write)?,
            read: Pattern::new(Access::Read, read)?,
        })
    }

    /// `.*` for all three: what `guest` has on `/`.
    pub fn full() -> Permissions {
        Permissions::new(".*", ".*", ".*").expect("valid patterns")
    }

    pub fn allows(&self, access: Access, resource: Resource<'_>) -> bool {
        let pattern = match access {
            Access::Configure => &self.configure,
            Access::Write => &self.write,
            Access::Read => &self.read,
        };
        pattern.matches(resource.name())
    }

    /// `(configure, write, read)` as given.
    pub fn patterns(&self) -> (&str, &str, &str) {
        (
            self.configure.as_str(),
            self.write.as_str(),
            self.read.as_str(),
        )
    }
}

/// RabbitMQ's wording, which clients and operators already search for.
pub fn refusal(access: Access, resource: Resource<'_>, user: &str, vhost: &str) -> String {
    format!(
        "{} access to {} '{}' in vhost '{vhost}' refused for user '{user}'",
        access.name(),
        resource.kind(),
        resource.name()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_are_unanchored_and_empty_allows_nothing() {
        let p = Permissions::new(r"^app\.", "", "orders").unwrap();
        assert!(p.allows(Access::Configure, Resource::Queue("app.q")));
        assert!(!p.allows(Access::Configure, Resource::Queue("x.app.q")));
        assert!(!p.allows(Access::Write, Resource::Exchange("app.x")));
        assert!(p.allows(Access::Read, Resource::Queue("eu.orders.new")));
        assert!(!p.allows(Access::Read, Resource::Queue("eu.order")));
        assert_eq!(p.patterns(), (r"^app\.", "", "orders"));
    }

    #[test]
    fn the_default_exchange_is_amq_default() {
        let p = Permissions::new("", "^amq\\.default$", "").unwrap();
        assert!(p.allows(Access::Write, Resource::Exchange("")));
        assert!(!p.allows(Access::Write, Resource::Exchange("amq.direct")));
        assert!(Permissions::full().allows(Access::Configure, Resource::Exchange("anything")));
    }

    #[test]
    fn a_bad_pattern_names_itself() {
        let err = Permissions::new(".*", "(", ".*").unwrap_err();
        assert!(err.to_string().starts_with("write pattern \"(\""), "{err}");
        assert_eq!(
            refusal(Access::Write, Resource::Exchange(""), "app", "/"),
            "write access to exchange 'amq.default' in vhost '/' refused for user 'app'"
        );
    }
}
