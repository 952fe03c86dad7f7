//! Which plugin versions put a message where it is: its lineage.
//!
//! Consumers, the admin API and plugins see it as the header [`LINEAGE_HEADER`], an array of
//! `name@version` strings in the order the versions touched the message. The broker keeps it
//! apart from the headers table, as shared strings, because it stamps an entry on every message
//! a plugin routes or rewrites: a header would cost a key, a value and an array allocated,
//! searched for, stored and freed per message, where an entry here is a reference count.
//!
//! Invariant: the header a message shows is its `x-switchyard-lineage` header as it arrived
//! (from a publisher, an older record, or a plugin that rewrote the message and kept the header
//! it was shown), with this lineage's entries appended: an array stays an array and grows, any
//! other value gives way to the entries. With no entries, the header shows as it arrived. So a
//! message shows the same header whichever way it travelled.

use std::borrow::Cow;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use smallvec::SmallVec;

use super::{FieldValue, Headers, Message};

/// The header a message's lineage shows as.
pub const LINEAGE_HEADER: &str = "x-switchyard-lineage";

/// The `name@version` entries stamped on a message inside the broker. One entry (a message one
/// router routed) is held inline: no allocation to stamp it, none to free.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lineage(SmallVec<[Arc<str>; 1]>);

impl Lineage {
    /// Append a version's entry; the string is shared, not copied.
    pub fn push(&mut self, entry: &Arc<str>) {
        self.0.push(Arc::clone(entry));
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn entries(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(|e| &**e)
    }

    /// Bytes the entries take, for [`Message::approximate_size`].
    pub(super) fn size(&self) -> usize {
        self.0.iter().map(|e| e.len()).sum()
    }

    /// The header value shown for these entries after `arrived`, the header as the message
    /// arrived (see the module's invariant). Only called with entries.
    fn render(&self, arrived: Option<&FieldValue>) -> FieldValue {
        let mut shown = match arrived {
            Some(FieldValue::Array(a)) => a.clone(),
            _ => Vec::with_capacity(self.0.len()),
        };
        shown.extend(self.entries().map(|e| FieldValue::String(e.to_owned())));
        FieldValue::Array(shown)
    }
}

impl Message {
    /// The header `name` as the message shows it outside the broker: its headers table, with the
    /// lineage shown as [`LINEAGE_HEADER`].
    pub fn header(&self, name: &str) -> Option<Cow<'_, FieldValue>> {
        if self.lineage.is_empty() || name != LINEAGE_HEADER {
            return self.headers.get(name).map(Cow::Borrowed);
        }
        Some(Cow::Owned(
            self.lineage.render(self.headers.get(LINEAGE_HEADER)),
        ))
    }

    /// Whether the message shows any header at all.
    pub fn has_headers(&self) -> bool {
        !self.headers.is_empty() || !self.lineage.is_empty()
    }

    /// Every header the message shows, in name order (the table's own order): what protocol
    /// encoders write, one header at a time.
    pub fn shown_headers(&self) -> impl Iterator<Item = (&str, Cow<'_, FieldValue>)> {
        let mut lineage = (!self.lineage.is_empty())
            .then(|| self.lineage.render(self.headers.get(LINEAGE_HEADER)));
        let mut table = self.headers.iter().peekable();
        std::iter::from_fn(move || {
            // The rendered lineage goes where its name sorts, in place of the header it extends.
            let due = table
                .peek()
                .is_none_or(|(k, _)| k.as_str() >= LINEAGE_HEADER);
            if lineage.is_some() && due {
                table.next_if(|(k, _)| k.as_str() == LINEAGE_HEADER);
                return lineage.take().map(|v| (LINEAGE_HEADER, Cow::Owned(v)));
            }
            table.next().map(|(k, v)| (k.as_str(), Cow::Borrowed(v)))
        })
    }

    /// The headers as the message shows them, as a table: borrowed unless there is lineage to
    /// show. For the paths that need a whole table (the admin API, dry runs, the general AMQP
    /// encoder); encoders that can take one header at a time use [`Message::shown_headers`].
    pub fn headers_shown(&self) -> Cow<'_, Headers> {
        if self.lineage.is_empty() {
            return Cow::Borrowed(&self.headers);
        }
        let mut all = self.headers.clone();
        let shown = self.lineage.render(all.get(LINEAGE_HEADER));
        all.insert(LINEAGE_HEADER.to_owned(), shown);
        Cow::Owned(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamped(arrived: Option<FieldValue>, entries: &[&str]) -> Message {
        let mut m = Message::new(&b"x"[..])
            .with_header("a", 1i64)
            .with_header("z", 2i64);
        if let Some(v) = arrived {
            m.headers.insert(LINEAGE_HEADER.into(), v);
        }
        for e in entries {
            m.lineage.push(&Arc::from(*e));
        }
        m
    }

    fn strings(v: &[&str]) -> FieldValue {
        FieldValue::Array(v.iter().map(|s| FieldValue::String((*s).into())).collect())
    }

    /// The three views of a message's headers agree, in the table's order.
    fn shown(m: &Message) -> Vec<(String, FieldValue)> {
        let one_by_one: Vec<_> = m
            .shown_headers()
            .map(|(k, v)| (k.to_owned(), v.into_owned()))
            .collect();
        let table: Vec<_> = m.headers_shown().into_owned().into_iter().collect();
        assert_eq!(one_by_one, table);
        for (k, v) in &table {
            assert_eq!(m.header(k).as_deref(), Some(v), "{k}");
        }
        assert_eq!(m.has_headers(), !table.is_empty());
        table
    }

    #[test]
    fn entries_show_as_an_array_in_name_order() {
        let m = stamped(None, &["p@1", "q@2"]);
        let names: Vec<_> = shown(&m).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["a", LINEAGE_HEADER, "z"]);
        assert_eq!(
            m.header(LINEAGE_HEADER).as_deref(),
            Some(&strings(&["p@1", "q@2"]))
        );
    }

    #[test]
    fn an_arrived_array_grows_and_anything_else_gives_way() {
        let m = stamped(Some(strings(&["old@1"])), &["new@2"]);
        assert_eq!(shown(&m).len(), 3);
        assert_eq!(
            m.header(LINEAGE_HEADER).as_deref(),
            Some(&strings(&["old@1", "new@2"]))
        );
        let m = stamped(Some(FieldValue::I32(7)), &["new@2"]);
        assert_eq!(
            m.header(LINEAGE_HEADER).as_deref(),
            Some(&strings(&["new@2"]))
        );
    }

    #[test]
    fn without_entries_the_header_shows_as_it_arrived() {
        let m = stamped(Some(FieldValue::I32(7)), &[]);
        assert_eq!(shown(&m).len(), 3);
        assert_eq!(
            m.header(LINEAGE_HEADER).as_deref(),
            Some(&FieldValue::I32(7))
        );
        let bare = Message::new(&b""[..]);
        assert!(shown(&bare).is_empty());
        let mut only = bare.clone();
        only.lineage.push(&Arc::from("p@1"));
        assert_eq!(shown(&only).len(), 1);
    }
}
