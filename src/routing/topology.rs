//! The topology: declared exchanges and the bindings between them, with built-in matching.

use std::collections::HashMap;

use super::binding::CompiledBinding;
use super::{Binding, BindingTarget, Exchange, ExchangeKind, HeadersPattern, TopicPattern};
use crate::message::Message;

/// A topology change that cannot be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopologyError {
    #[error("no exchange named {0:?}; declare it first")]
    NoSuchExchange(String),
    #[error("exchange {name:?} exists with different settings ({what}); delete it first or declare it with the same settings")]
    Inequivalent { name: String, what: &'static str },
    #[error("exchange {0:?} is predefined and cannot be changed or deleted")]
    Predefined(String),
    #[error("exchange {0:?} is in use by bindings and if-unused was set")]
    InUse(String),
    #[error("invalid binding arguments: {0}")]
    InvalidArguments(String),
}

/// Exchanges and bindings. Names starting `amq.` and the default exchange `""` are predefined.
///
/// Invariant: every binding's source exchange exists; deleting an exchange removes the bindings
/// from it and to it.
#[derive(Debug, Clone, Default)]
pub struct Topology {
    exchanges: HashMap<String, Exchange>,
    bindings: HashMap<String, Vec<CompiledBinding>>,
}

impl Topology {
    /// A topology with RabbitMQ's predefined exchanges.
    pub fn with_defaults() -> Self {
        let mut t = Topology::default();
        for (name, kind) in [
            ("", ExchangeKind::Direct),
            ("amq.direct", ExchangeKind::Direct),
            ("amq.fanout", ExchangeKind::Fanout),
            ("amq.topic", ExchangeKind::Topic),
            ("amq.headers", ExchangeKind::Headers),
            ("amq.match", ExchangeKind::Headers),
        ] {
            t.exchanges
                .insert(name.to_owned(), Exchange::new(name, kind));
        }
        t
    }

    pub fn exchange(&self, name: &str) -> Option<&Exchange> {
        self.exchanges.get(name)
    }

    pub fn exchanges(&self) -> impl Iterator<Item = &Exchange> {
        self.exchanges.values()
    }

    /// Declare an exchange. Redeclaring with equal type and durability is a no-op.
    /// Returns `true` when the exchange is new.
    pub fn declare_exchange(&mut self, exchange: Exchange) -> Result<bool, TopologyError> {
        if let Some(existing) = self.exchanges.get(&*exchange.name) {
            if existing.kind != exchange.kind {
                return Err(TopologyError::Inequivalent {
                    name: exchange.name.to_string(),
                    what: "type",
                });
            }
            if existing.durable != exchange.durable {
                return Err(TopologyError::Inequivalent {
                    name: exchange.name.to_string(),
                    what: "durable",
                });
            }
            return Ok(false);
        }
        self.exchanges.insert(exchange.name.to_string(), exchange);
        Ok(true)
    }

    pub fn delete_exchange(&mut self, name: &str, if_unused: bool) -> Result<(), TopologyError> {
        if is_predefined(name) {
            return Err(TopologyError::Predefined(name.to_owned()));
        }
        if !self.exchanges.contains_key(name) {
            return Err(TopologyError::NoSuchExchange(name.to_owned()));
        }
        if if_unused && self.bindings.get(name).is_some_and(|b| !b.is_empty()) {
            return Err(TopologyError::InUse(name.to_owned()));
        }
        self.exchanges.remove(name);
        self.bindings.remove(name);
        let target = BindingTarget::Exchange(name.to_owned());
        self.retain_bindings(|b| b.target != target);
        Ok(())
    }

    /// Add a binding. Binding the same thing twice is a no-op. The default exchange takes no
    /// explicit bindings: every queue is implicitly bound to it by name.
    pub fn bind(&mut self, binding: Binding) -> Result<(), TopologyError> {
        let kind = match self.exchanges.get(&binding.source) {
            Some(e) if e.name.is_empty() => {
                return Err(TopologyError::Predefined(String::new()));
            }
            Some(e) => e.kind.clone(),
            None => return Err(TopologyError::NoSuchExchange(binding.source.clone())),
        };
        if let BindingTarget::Exchange(target) = &binding.target {
            if !self.exchanges.contains_key(target) {
                return Err(TopologyError::NoSuchExchange(target.clone()));
            }
        }
        let compiled = compile(binding, &kind)?;
        let list = self
            .bindings
            .entry(compiled.binding.source.clone())
            .or_default();
        if !list.iter().any(|b| b.binding.same_as(&compiled.binding)) {
            list.push(compiled);
        }
        Ok(())
    }

    /// Remove a binding; removing one that is not there is not an error (as in RabbitMQ).
    pub fn unbind(&mut self, binding: &Binding) {
        if let Some(list) = self.bindings.get_mut(&binding.source) {
            list.retain(|b| !b.binding.same_as(binding));
        }
    }

    /// Remove every binding to a queue, as when the queue is deleted.
    pub fn unbind_queue(&mut self, queue: &str) {
        let target = BindingTarget::Queue(queue.to_owned());
        self.retain_bindings(|b| b.target != target);
    }

    /// All bindings, for export and persistence.
    pub fn bindings(&self) -> impl Iterator<Item = &Binding> {
        self.bindings.values().flatten().map(|c| &c.binding)
    }

    /// Bindings of a built-in exchange that take this message with this key.
    /// A `Wasm` exchange's bindings are not consulted by key: its plugin decides.
    pub fn matching<'a>(
        &'a self,
        exchange: &Exchange,
        routing_key: &'a str,
        message: &'a Message,
    ) -> impl Iterator<Item = &'a Binding> + 'a {
        let kind = exchange.kind.clone();
        self.bindings
            .get(&*exchange.name)
            .into_iter()
            .flatten()
            .filter(move |c| match &kind {
                ExchangeKind::Direct => c.binding.routing_key == routing_key,
                ExchangeKind::Fanout => true,
                ExchangeKind::Topic => c.topic.as_ref().is_some_and(|t| t.matches(routing_key)),
                ExchangeKind::Headers => c.headers.as_ref().is_some_and(|h| h.matches(message)),
                ExchangeKind::Wasm { .. } => false,
            })
            .map(|c| &c.binding)
    }

    /// Whether routing a publish to `exchange` may call a plugin: an `x-wasm` exchange, a
    /// pipeline or a binding filter anywhere on the exchanges it can reach (bindings and
    /// alternate exchanges). The broker runs such routes off the async workers.
    pub fn may_call_plugins(&self, exchange: &str) -> bool {
        let mut todo = vec![exchange];
        let mut seen = std::collections::HashSet::new();
        while let Some(name) = todo.pop() {
            if !seen.insert(name) {
                continue;
            }
            let Some(ex) = self.exchanges.get(name) else {
                continue;
            };
            if matches!(ex.kind, ExchangeKind::Wasm { .. }) || !ex.pipeline.is_empty() {
                return true;
            }
            todo.extend(ex.alternate_exchange.as_deref());
            for c in self.bindings.get(name).into_iter().flatten() {
                if c.binding.filter.is_some() {
                    return true;
                }
                if let BindingTarget::Exchange(next) = &c.binding.target {
                    todo.push(next);
                }
            }
        }
        false
    }

    fn retain_bindings(&mut self, keep: impl Fn(&Binding) -> bool) {
        for list in self.bindings.values_mut() {
            list.retain(|c| keep(&c.binding));
        }
    }
}

fn is_predefined(name: &str) -> bool {
    name.is_empty() || name.starts_with("amq.")
}

fn compile(binding: Binding, kind: &ExchangeKind) -> Result<CompiledBinding, TopologyError> {
    let topic =
        matches!(kind, ExchangeKind::Topic).then(|| TopicPattern::parse(&binding.routing_key));
    let headers = match kind {
        ExchangeKind::Headers => Some(
            HeadersPattern::parse(&binding.arguments)
                .map_err(|e| TopologyError::InvalidArguments(e.to_string()))?,
        ),
        _ => None,
    };
    Ok(CompiledBinding {
        binding,
        topic,
        headers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::message::Headers;

    fn to_queue(source: &str, queue: &str, key: &str) -> Binding {
        Binding {
            source: source.into(),
            target: BindingTarget::Queue(queue.into()),
            routing_key: key.into(),
            arguments: Headers::new(),
            filter: None,
        }
    }

    fn targets(t: &Topology, exchange: &str, key: &str) -> Vec<BindingTarget> {
        let ex = t.exchange(exchange).unwrap().clone();
        let message = Message::new(&b""[..]);
        let mut v: Vec<_> = t
            .matching(&ex, key, &message)
            .map(|b| b.target.clone())
            .collect();
        v.sort_by_key(|t| format!("{t:?}"));
        v
    }

    #[test]
    fn direct_fanout_topic() {
        let mut t = Topology::with_defaults();
        t.declare_exchange(Exchange::new("logs", ExchangeKind::Topic))
            .unwrap();
        t.bind(to_queue("logs", "errors", "*.error")).unwrap();
        t.bind(to_queue("logs", "all", "#")).unwrap();
        t.bind(to_queue("amq.direct", "q1", "k")).unwrap();
        assert_eq!(
            targets(&t, "logs", "app.error"),
            vec![
                BindingTarget::Queue("all".into()),
                BindingTarget::Queue("errors".into())
            ]
        );
        assert_eq!(
            targets(&t, "logs", "app.info"),
            vec![BindingTarget::Queue("all".into())]
        );
        assert_eq!(
            targets(&t, "amq.direct", "k"),
            vec![BindingTarget::Queue("q1".into())]
        );
        assert!(targets(&t, "amq.direct", "other").is_empty());
    }

    #[test]
    fn redeclare_must_be_equivalent_and_predefined_are_protected() {
        let mut t = Topology::with_defaults();
        assert!(t
            .declare_exchange(Exchange::new("x", ExchangeKind::Direct))
            .unwrap());
        assert!(!t
            .declare_exchange(Exchange::new("x", ExchangeKind::Direct))
            .unwrap());
        let err = t
            .declare_exchange(Exchange::new("x", ExchangeKind::Fanout))
            .unwrap_err();
        assert!(matches!(
            err,
            TopologyError::Inequivalent { what: "type", .. }
        ));
        assert!(matches!(
            t.delete_exchange("amq.topic", false),
            Err(TopologyError::Predefined(_))
        ));
        assert!(matches!(
            t.bind(to_queue("", "q", "q")),
            Err(TopologyError::Predefined(_))
        ));
    }

    #[test]
    fn deleting_an_exchange_removes_its_bindings_both_ways() {
        let mut t = Topology::with_defaults();
        t.declare_exchange(Exchange::new("a", ExchangeKind::Fanout))
            .unwrap();
        t.declare_exchange(Exchange::new("b", ExchangeKind::Fanout))
            .unwrap();
        t.bind(Binding {
            target: BindingTarget::Exchange("b".into()),
            ..to_queue("a", "", "")
        })
        .unwrap();
        t.bind(to_queue("b", "q", "")).unwrap();
        assert!(matches!(
            t.delete_exchange("b", true),
            Err(TopologyError::InUse(_))
        ));
        t.delete_exchange("b", false).unwrap();
        assert!(targets(&t, "a", "").is_empty());
        assert_eq!(t.bindings().count(), 0);
    }
}
