//! Unit tests of the message log: reads, replay, torn tails, corruption, compaction.

use super::*;

fn put(k: &str, v: &str) -> WriteOp {
    (k.as_bytes().to_vec(), Some(v.as_bytes().to_vec()))
}

fn del(k: &str) -> WriteOp {
    (k.as_bytes().to_vec(), None)
}

fn value(log: &MessageLog, k: &str) -> Option<String> {
    log.get(k.as_bytes())
        .unwrap()
        .map(|v| String::from_utf8(v).unwrap())
}

const SMALL: u64 = 1 << 16;

#[test]
fn writes_are_readable_at_once_and_durable_after_flush() {
    let dir = tempfile::tempdir().unwrap();
    let log = MessageLog::open(dir.path(), SMALL).unwrap();
    log.write(&[put("a1", "x"), put("a2", "y"), put("b1", "z")])
        .unwrap();
    assert_eq!(value(&log, "a2").as_deref(), Some("y"), "read from memory");
    log.flush().unwrap();
    log.write(&[del("a1"), put("a3", "w")]).unwrap();
    let keys: Vec<_> = log.scan_prefix(b"a").map(|r| r.unwrap().0).collect();
    assert_eq!(keys, [b"a2".to_vec(), b"a3".to_vec()]);
    assert_eq!(log.scan_keys(b"a").count(), 2);
    let (k, v) = log.first_in(b"a", b"a\xff").unwrap().unwrap();
    assert_eq!((k.as_slice(), v.as_slice()), (&b"a2"[..], &b"y"[..]));
    drop(log); // the second frame was never flushed: lost, as a crash would lose it

    let log = MessageLog::open(dir.path(), SMALL).unwrap();
    assert_eq!(value(&log, "a1").as_deref(), Some("x"));
    assert_eq!(value(&log, "a3"), None);
    assert_eq!(log.stats().keys, 3);
}

#[test]
fn frames_beyond_a_chunk_start_the_next_one_and_all_read_back() {
    let dir = tempfile::tempdir().unwrap();
    let log = MessageLog::open(dir.path(), 16 << 20).unwrap();
    // 3 KiB frames against a first chunk of CHUNK_HINT_MIN (4 KiB): each needs a chunk of its
    // own, and none may be copied into a grown one.
    let big = |i: usize| format!("{i:03}").repeat(1024);
    for i in 0..40 {
        log.write(&[put(&format!("k{i:02}"), &big(i))]).unwrap();
    }
    {
        let st = log.state.lock();
        // Two frames never share a 4 KiB chunk: one grown to hold them would make fewer chunks.
        assert_eq!(st.pending.len(), 40, "a chunk per frame");
        let whole = st
            .pending
            .windows(2)
            .all(|w| w[0].off + w[0].buf.len() as u64 == w[1].off);
        assert!(whole, "each chunk starts where the one before ends");
    }
    for i in 0..40 {
        assert_eq!(
            value(&log, &format!("k{i:02}")),
            Some(big(i)),
            "from memory"
        );
    }
    log.flush().unwrap();
    drop(log);
    let log = MessageLog::open(dir.path(), 16 << 20).unwrap();
    for i in 0..40 {
        assert_eq!(value(&log, &format!("k{i:02}")), Some(big(i)), "replayed");
    }
}

#[test]
fn a_torn_tail_is_cut_off_and_earlier_frames_survive() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = MessageLog::open(dir.path(), SMALL).unwrap();
        log.write(&[put("k", "kept")]).unwrap();
        log.flush().unwrap();
    }
    let seg = segment::path(dir.path(), 1);
    let good = frame::size(&[put("k", "kept")]) as u64;
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&[0x20, 0, 0, 0, 1, 2, 3], good) // a frame header cut short
        .unwrap();

    let log = MessageLog::open(dir.path(), SMALL).unwrap();
    assert_eq!(value(&log, "k").as_deref(), Some("kept"));
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), good, "tail cut off");
    log.write(&[put("after", "ok")]).unwrap();
    log.flush().unwrap();
    drop(log);
    let log = MessageLog::open(dir.path(), SMALL).unwrap();
    assert_eq!(value(&log, "after").as_deref(), Some("ok"));
}

#[test]
fn damage_before_acknowledged_data_is_reported_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = MessageLog::open(dir.path(), SMALL).unwrap();
        let big = "v".repeat(1000);
        for i in 0..200 {
            log.write(&[put(&format!("k{i:03}"), &big)]).unwrap();
        }
        log.flush().unwrap();
        assert!(log.stats().segments >= 3, "{:?}", log.stats());
    }
    let first = segment::path(dir.path(), 1);
    let mut bytes = std::fs::read(&first).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&first, &bytes).unwrap();
    let err = MessageLog::open(dir.path(), SMALL).unwrap_err();
    assert!(matches!(err, StoreError::Corrupt { .. }), "{err}");
    assert_eq!(std::fs::read(&first).unwrap(), bytes, "untouched");
}

#[test]
fn compaction_gives_disk_back_and_never_resurrects_removed_keys() {
    let dir = tempfile::tempdir().unwrap();
    let big = "v".repeat(1000);
    {
        let log = MessageLog::open(dir.path(), SMALL).unwrap();
        // The first segment stays mostly live (never compacted) and holds "doomed", whose
        // removal lands in a later segment that is compacted: the removal must move forward.
        log.write(&[put("doomed", &big)]).unwrap();
        for i in 0..60 {
            log.write(&[put(&format!("pin{i:02}"), &big)]).unwrap();
        }
        for i in 0..300 {
            log.write(&[put(&format!("k{i:03}"), &big)]).unwrap();
        }
        log.write(&[del("doomed")]).unwrap();
        for i in 0..300 {
            log.write(&[del(&format!("k{i:03}"))]).unwrap();
        }
        log.write(&[put("k001", "again")]).unwrap(); // removed, then written anew
        log.flush().unwrap();
        let before = log.stats();
        while log.compact_once().unwrap() {}
        let after = log.stats();
        assert!(after.bytes < before.bytes / 2, "{before:?} -> {after:?}");
        assert!(after.segments < before.segments, "{before:?} -> {after:?}");
        assert_eq!(after.keys, 61);
        assert!(
            segment::path(dir.path(), 1).exists(),
            "the mostly live first segment is kept"
        );
    }
    let log = MessageLog::open(dir.path(), SMALL).unwrap();
    assert_eq!(log.stats().keys, 61, "nothing resurrected after replay");
    assert_eq!(value(&log, "doomed"), None);
    assert_eq!(value(&log, "pin07").as_deref(), Some(big.as_str()));
    assert_eq!(value(&log, "k001").as_deref(), Some("again"));
    assert_eq!(value(&log, "k002"), None);
}

#[test]
fn compaction_holds_a_bounded_amount_of_carried_data_in_memory() {
    let dir = tempfile::tempdir().unwrap();
    let log = MessageLog::open(dir.path(), 24 << 20).unwrap();
    let value = "v".repeat(1024);
    // ~25 MiB: the first segment fills at 24 MiB, then half of its keys are removed, so it is
    // a victim with ~12 MiB still live.
    for i in 0..25_000 {
        log.write(&[put(&format!("k{i:05}"), &value)]).unwrap();
    }
    for i in (0..24_000).step_by(2) {
        log.write(&[del(&format!("k{i:05}"))]).unwrap();
    }
    log.flush().unwrap();
    log.take_unflushed_peak();
    assert!(
        log.compact_once().unwrap(),
        "the half-dead first segment is compacted"
    );
    let peak = log.take_unflushed_peak();
    let bound = compact::CARRY_FLUSH_BYTES + 2 * 256 * 1100;
    assert!(
        peak <= bound,
        "compaction held {peak} bytes unflushed (bound {bound})"
    );
    assert_eq!(log.stats().keys, 13_000);
    drop(log);
    let log = MessageLog::open(dir.path(), 24 << 20).unwrap();
    assert_eq!(
        log.stats().keys,
        13_000,
        "everything carried forward was made durable"
    );
}

#[test]
fn flushes_overwrite_zero_filled_space_and_replay_stops_at_it() {
    let dir = tempfile::tempdir().unwrap();
    let seg = segment::path(dir.path(), 1);
    // Writes and flushes one key; returns the segment file's length after it.
    let put_flushed = |log: &MessageLog, k: &str, v: &str| {
        log.write(&[put(k, v)]).unwrap();
        log.flush().unwrap();
        std::fs::metadata(&seg).unwrap().len()
    };
    let log = MessageLog::open(dir.path(), 8 << 20).unwrap();
    let filled = frame::size(&[put("a", "1")]) as u64 + ZERO_FILL;
    assert_eq!(
        put_flushed(&log, "a", "1"),
        filled,
        "zeros ahead of the frame"
    );
    assert_eq!(
        put_flushed(&log, "b", "2"),
        filled,
        "the second flush overwrote zeros"
    );
    drop(log);

    let log = MessageLog::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(value(&log, "a").as_deref(), Some("1"));
    assert_eq!(value(&log, "b").as_deref(), Some("2"));
    assert_eq!(
        put_flushed(&log, "c", "3"),
        filled,
        "writes resume where the frames end"
    );
    drop(log);
    let log = MessageLog::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(log.stats().keys, 3);

    // Segments smaller than the zero-fill step are filled to their size, not past it.
    let small = tempfile::tempdir().unwrap();
    let log = MessageLog::open(small.path(), SMALL).unwrap();
    log.write(&[put("a", "1")]).unwrap();
    log.flush().unwrap();
    let len = std::fs::metadata(segment::path(small.path(), 1))
        .unwrap()
        .len();
    assert_eq!(len, SMALL);
}

#[test]
fn a_frame_beyond_zero_filled_space_is_a_torn_tail_and_never_replayed() {
    // A crash during a flush can leave a later frame on disk and an earlier one still zeros
    // (pages reach the disk in any order). Replay must cut it off: otherwise the next frame
    // written at the end of the log, if it happened to end where the stale one starts, would
    // make it readable.
    let dir = tempfile::tempdir().unwrap();
    let seg = segment::path(dir.path(), 1);
    {
        let log = MessageLog::open(dir.path(), 8 << 20).unwrap();
        log.write(&[put("k", "kept")]).unwrap();
        log.flush().unwrap();
    }
    let end = frame::size(&[put("k", "kept")]) as u64;
    let next = [put("next", &"n".repeat(80))];
    assert_eq!(frame::size(&next), 100);
    let mut ghost = Vec::new();
    frame::encode(&[put("ghost", "boo")], &mut ghost);
    std::fs::OpenOptions::new()
        .write(true)
        .open(&seg)
        .unwrap()
        .write_all_at(&ghost, end + 100)
        .unwrap();

    let log = MessageLog::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(value(&log, "ghost"), None);
    assert_eq!(std::fs::metadata(&seg).unwrap().len(), end, "tail cut off");
    log.write(&next).unwrap();
    log.flush().unwrap();
    drop(log);
    let log = MessageLog::open(dir.path(), 8 << 20).unwrap();
    assert_eq!(value(&log, "k").as_deref(), Some("kept"));
    assert!(value(&log, "next").is_some());
    assert_eq!(value(&log, "ghost"), None, "the stale frame stays dead");
}
