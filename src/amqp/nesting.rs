//! A bound on how deeply a frame's field tables and arrays nest, found without parsing them.
//!
//! Why: amq-protocol parses field tables recursively at 10-20 KiB of stack per level, so a
//! 1.4 KB frame nesting 200 tables overflowed a 2 MiB tokio worker stack and aborted the broker
//! — `connection.start-ok` included, before authentication. The frame reader refuses a frame
//! before `parse_frame` when this bound exceeds [`MAX_FRAME_NESTING`].
//!
//! How, without knowing where each method keeps its tables: every nested table or array is a
//! tag byte (`F` or `A`) and a big-endian u32 length that must fit in the frame, and a nested
//! one starts inside its parent's bytes. Every such position is a candidate, and the longest
//! chain of candidates each starting inside the previous one's bytes is at least the real depth.
//! Text cannot fake candidates (its bytes after a tag make a length far past the frame); only
//! binary values shaped like nested tables could, and a bound of 64 leaves room for every real
//! use (`x-death` nests 3).

/// Deepest nesting of field tables and arrays a frame may carry (well inside what amq-protocol
/// parses on a 2 MiB stack, about 150).
pub const MAX_FRAME_NESTING: usize = 64;

/// An upper bound on the nesting of tagged tables and arrays in `payload`, capped at
/// `cap + 1`. Costs one pass when the payload has at most `cap` candidates (every real frame),
/// and O(candidates · log · cap) otherwise.
pub fn nesting_bound(payload: &[u8], cap: usize) -> usize {
    let mut level: Vec<(usize, usize)> = payload
        .windows(5)
        .enumerate()
        .filter(|(_, w)| matches!(w[0], b'F' | b'A'))
        .filter_map(|(start, w)| {
            let len = u32::from_be_bytes([w[1], w[2], w[3], w[4]]) as usize;
            let end = (start + 5).checked_add(len)?;
            (end <= payload.len()).then_some((start, end))
        })
        .collect();
    if level.len() <= cap {
        return level.len();
    }
    // `level` holds the candidates whose chains are at least `depth` long; a candidate's chain
    // is one longer when a candidate of the current level starts inside its bytes.
    let mut depth = 1;
    while depth <= cap {
        let starts: Vec<usize> = level.iter().map(|&(s, _)| s).collect();
        let next: Vec<(usize, usize)> = level
            .iter()
            .copied()
            .filter(|&(start, end)| {
                let i = starts.partition_point(|&q| q < start + 5);
                starts.get(i).is_some_and(|&q| q < end)
            })
            .collect();
        if next.is_empty() {
            break;
        }
        level = next;
        depth += 1;
    }
    depth
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `levels` tables nested as `{"h": F{"h": F{...}}}`, innermost empty, with its length.
    fn nested(levels: usize) -> Vec<u8> {
        let mut table = 0u32.to_be_bytes().to_vec();
        for _ in 0..levels {
            let mut entry = vec![1, b'h', b'F'];
            entry.extend_from_slice(&table);
            let mut t = (entry.len() as u32).to_be_bytes().to_vec();
            t.extend_from_slice(&entry);
            table = t;
        }
        table
    }

    #[test]
    fn real_nesting_is_bounded_from_above() {
        for levels in [0, 1, 3, MAX_FRAME_NESTING, MAX_FRAME_NESTING + 1, 500] {
            let bound = nesting_bound(&nested(levels), MAX_FRAME_NESTING);
            assert!(
                bound >= levels.min(MAX_FRAME_NESTING + 1),
                "{levels} levels: bound {bound}"
            );
            assert_eq!(bound > MAX_FRAME_NESTING, levels > MAX_FRAME_NESTING);
        }
        // Arrays of arrays: 'A' and a length, 5 bytes a level.
        let mut array = vec![b'A', 0, 0, 0, 0];
        for _ in 0..100 {
            let mut a = vec![b'A'];
            a.extend_from_slice(&(array.len() as u32).to_be_bytes());
            a.extend_from_slice(&array);
            array = a;
        }
        assert!(nesting_bound(&array, MAX_FRAME_NESTING) > MAX_FRAME_NESTING);
    }

    #[test]
    fn text_and_siblings_are_not_depth() {
        let text = "FAFAFA AFFA ".repeat(500);
        assert_eq!(nesting_bound(text.as_bytes(), MAX_FRAME_NESTING), 0);
        // 200 empty sibling tables: many candidates, depth 1.
        let siblings: Vec<u8> = (0..200).flat_map(|_| [1, b'k', b'F', 0, 0, 0, 0]).collect();
        assert_eq!(nesting_bound(&siblings, MAX_FRAME_NESTING), 1);
    }
}
