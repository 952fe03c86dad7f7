//! Replay at open: rebuild the index from the segments, cutting off a torn tail.
//!
//! A segment's frames end at the end of its file or at zero-filled space (see `segment`).

use std::collections::BTreeMap;

use super::index::Index;
use std::fs;
use std::path::Path;
use std::sync::Arc;

use super::frame::{self, Decoded, Op};
use super::{io, segment, Loc, Segment, State};
use crate::store::StoreError;

/// Reads every segment in order and returns the state they describe. An empty directory gets
/// its first segment.
///
/// A bad frame (cut short, checksum mismatch) is a *torn tail* when no later segment holds an
/// intact frame: the crash interrupted a write that was never acknowledged (a segment is only
/// synced after every earlier one), so it is cut off and later, empty segments are removed.
/// Otherwise acknowledged data follows the damage, and the log is reported corrupt, untouched.
pub(super) fn replay(dir: &Path) -> Result<State, StoreError> {
    let ids = segment::list(dir).map_err(io(dir))?;
    let mut st = State {
        index: Index::default(),
        segments: BTreeMap::new(),
        active: 0,
        pending: Vec::new(),
        chunk_hint: super::CHUNK_HINT_MIN,
        inflight: Arc::default(),
        created: false,
        poisoned: None,
        stalled: None,
    };
    for (i, &id) in ids.iter().enumerate() {
        let file = segment::open(dir, id).map_err(io(dir))?;
        let mut frames = segment::Frames::open(dir, id).map_err(io(dir))?;
        st.segments.insert(id, Segment::new(file));
        st.active = id;
        let mut at = 0;
        let mut torn = None;
        while let Some((offset, bytes)) = frames.next_frame().map_err(io(dir))? {
            at = offset as usize;
            match frame::decode(bytes) {
                Decoded::Frame { len, ops } => {
                    for op in ops {
                        match op {
                            Op::Put {
                                key,
                                value_off,
                                value_len,
                            } => st.set(
                                key,
                                Some(Loc {
                                    seg: id,
                                    len: value_len as u32,
                                    off: (at + value_off) as u32,
                                }),
                            ),
                            Op::Del { key } => st.set(key, None),
                        }
                    }
                    at += len;
                }
                Decoded::Bad(why) => {
                    torn = Some(why);
                    break;
                }
            }
        }
        // Zero-filled space ends the frames only if nothing but zeros follows: bytes after it
        // are a torn flush (its pages reach the disk in any order), and a later, shorter frame
        // written at `at` must never make them readable as frames.
        let seg = st.segments.get_mut(&id).expect("segment");
        if torn.is_none()
            && frames.zeros_at().is_some()
            && !segment::is_zero(&seg.file, at as u64, frames.len()).map_err(io(dir))?
        {
            torn = Some("data after zero-filled space");
        }
        seg.len = at as u64;
        seg.allocated = frames.len();
        let Some(why) = torn else { continue };
        let later = &ids[i + 1..];
        if later.iter().any(|&l| holds_a_frame(dir, l)) {
            return Err(StoreError::Corrupt {
                path: dir.to_owned(),
                detail: format!(
                    "message log segment {id} is damaged at byte {at} ({why}) and later \
                     segments hold data; restore the directory from a backup"
                ),
            });
        }
        tracing::warn!(
            segment = id,
            offset = at,
            reason = why,
            discarded = frames.len() - at as u64,
            "cutting off a torn write at the end of the message log"
        );
        seg.file
            .set_len(at as u64)
            .and_then(|_| seg.file.sync_all())
            .map_err(io(dir))?;
        seg.allocated = at as u64;
        for &l in later {
            fs::remove_file(segment::path(dir, l)).map_err(io(dir))?;
        }
        segment::sync_dir(dir).map_err(io(dir))?;
        return Ok(st);
    }
    if st.segments.is_empty() {
        let file = segment::create(dir, 1).map_err(io(dir))?;
        segment::sync_dir(dir).map_err(io(dir))?;
        st.segments.insert(1, Segment::new(file));
        st.active = 1;
    }
    Ok(st)
}

fn holds_a_frame(dir: &Path, id: u32) -> bool {
    let Ok(mut frames) = segment::Frames::open(dir, id) else {
        return false;
    };
    matches!(frames.next_frame(), Ok(Some((_, bytes))) if matches!(frame::decode(bytes), Decoded::Frame { .. }))
}
