//! Topic-exchange pattern matching with RabbitMQ's semantics.
//!
//! Keys and patterns are words separated by `.`; in a pattern `*` stands for exactly one word and
//! `#` for zero or more words. A pattern is parsed once at bind time into [`TopicPattern`], so
//! publishing only compares words.

/// One word of a parsed topic pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Word {
    Literal(String),
    /// `*`: exactly one word.
    One,
    /// `#`: zero or more words.
    Many,
}

/// A binding key parsed for matching.
///
/// Invariant: consecutive `#` words are collapsed into one, which matches the same keys and keeps
/// the matcher's backtracking linear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicPattern {
    words: Vec<Word>,
}

impl TopicPattern {
    pub fn parse(pattern: &str) -> Self {
        let mut words: Vec<Word> = Vec::new();
        for word in pattern.split('.') {
            let word = match word {
                "*" => Word::One,
                "#" => Word::Many,
                literal => Word::Literal(literal.to_owned()),
            };
            if word == Word::Many && words.last() == Some(&Word::Many) {
                continue;
            }
            words.push(word);
        }
        TopicPattern { words }
    }

    /// Whether `routing_key` matches this pattern.
    ///
    /// Glob matching over words with one backtrack point: `#` is glob's `*` and `*` is glob's
    /// `?`. On a mismatch we resume just after the most recent `#`, letting it absorb one more
    /// word. Earlier `#`s never need revisiting, so this runs in O(pattern × key) at worst.
    pub fn matches(&self, routing_key: &str) -> bool {
        let key: Vec<&str> = routing_key.split('.').collect();
        let pat = &self.words;
        let (mut p, mut k) = (0usize, 0usize);
        // (pattern index after the last `#`, key index that `#` absorbs up to)
        let mut backtrack: Option<(usize, usize)> = None;
        while k < key.len() {
            match pat.get(p) {
                Some(Word::Many) => {
                    backtrack = Some((p + 1, k));
                    p += 1;
                    continue;
                }
                Some(Word::One) => {
                    p += 1;
                    k += 1;
                    continue;
                }
                Some(Word::Literal(w)) if w == key[k] => {
                    p += 1;
                    k += 1;
                    continue;
                }
                _ => {}
            }
            match backtrack {
                Some((bp, bk)) => {
                    backtrack = Some((bp, bk + 1));
                    p = bp;
                    k = bk + 1;
                }
                None => return false,
            }
        }
        pat[p..].iter().all(|w| *w == Word::Many)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The definition, written as plainly as possible: the oracle for the fast matcher.
    fn reference(pattern: &[&str], key: &[&str]) -> bool {
        match (pattern.split_first(), key.split_first()) {
            (None, None) => true,
            (None, Some(_)) => false,
            (Some((&"#", rest)), _) => {
                reference(rest, key) || (!key.is_empty() && reference(pattern, &key[1..]))
            }
            (Some(_), None) => false,
            (Some((&"*", rest)), Some((_, krest))) => reference(rest, krest),
            (Some((w, rest)), Some((k, krest))) => w == k && reference(rest, krest),
        }
    }

    fn check(pattern: &str, key: &str) -> bool {
        TopicPattern::parse(pattern).matches(key)
    }

    #[test]
    fn rabbitmq_examples() {
        assert!(check("*.orange.*", "quick.orange.rabbit"));
        assert!(check("*.*.rabbit", "lazy.orange.rabbit"));
        assert!(check("lazy.#", "lazy"));
        assert!(check("lazy.#", "lazy.pink.rabbit"));
        assert!(!check("*.orange.*", "quick.orange.male.rabbit"));
        assert!(!check("*.*.rabbit", "quick.brown.fox"));
        assert!(check("#", ""));
        assert!(check("#", "a.b.c"));
        assert!(check("a.#.b", "a.b"));
        assert!(check("a.#.b", "a.x.y.b"));
        assert!(!check("a.#.b", "a.x.y.c"));
        assert!(check("#.#.x", "x"));
        assert!(!check("a", "a.b"));
    }

    fn words() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "c", ""]).prop_map(String::from),
            1..7,
        )
    }

    fn pattern_words() -> impl Strategy<Value = Vec<String>> {
        prop::collection::vec(
            prop::sample::select(vec!["a", "b", "*", "#", ""]).prop_map(String::from),
            1..7,
        )
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn agrees_with_reference(pattern in pattern_words(), key in words()) {
            let p: Vec<&str> = pattern.iter().map(String::as_str).collect();
            let k: Vec<&str> = key.iter().map(String::as_str).collect();
            prop_assert_eq!(check(&p.join("."), &k.join(".")), reference(&p, &k));
        }
    }
}
