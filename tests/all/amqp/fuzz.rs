//! Replays the saved fuzz inputs through the same harness as the cargo-fuzz targets, so
//! `cargo test` guards them without cargo-fuzz: `fuzz/regressions/<target>/` (inputs that once
//! crashed or hung a target) and `fuzz/seeds/<target>/` (a sample of the corpus reaching deep
//! into the protocol). The harness panics if the server panics or hangs on an input.

use amq_protocol::frame::{parse_frame, AMQPFrame};
use amq_protocol::protocol::{basic, channel, connection, queue, AMQPClass};
use switchyard::amqp::fuzzing::{decode_frames, prelude, Harness};

use crate::support::fuzz::saved_inputs as saved;

/// Every frame in `bytes` (what the server wrote), in order.
fn frames(mut bytes: &[u8]) -> Vec<AMQPFrame> {
    let mut out = Vec::new();
    while let Ok((rest, f)) = parse_frame(bytes) {
        out.push(f);
        bytes = rest;
    }
    out
}

#[test]
fn saved_fuzz_inputs_replay_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::open(dir.path()).unwrap();
    let inputs = saved("amqp_connection");
    assert!(inputs.len() >= 10, "the fuzz seeds are missing");
    for (path, input) in &inputs {
        println!("replaying {}", path.display());
        harness.run(input);
    }
    for (path, input) in saved("amqp_frames") {
        println!("decoding {}", path.display());
        decode_frames(&input);
    }
    // Afterwards the broker still serves a well-behaved client: the richest prelude gets every
    // reply it asks for (the server's own output decodes frame by frame, too).
    let out = harness.connection(&prelude(3));
    decode_frames(&out);
    let got = frames(&out);
    let has = |want: &dyn Fn(&AMQPFrame) -> bool| got.iter().any(want);
    use AMQPClass as C;
    assert!(has(&|f| matches!(
        f,
        AMQPFrame::Method(0, C::Connection(connection::AMQPMethod::OpenOk(_)))
    )));
    assert!(has(&|f| matches!(
        f,
        AMQPFrame::Method(1, C::Channel(channel::AMQPMethod::OpenOk(_)))
    )));
    assert!(has(&|f| matches!(
        f,
        AMQPFrame::Method(1, C::Queue(queue::AMQPMethod::DeclareOk(_)))
    )));
    assert!(has(&|f| matches!(
        f,
        AMQPFrame::Method(1, C::Basic(basic::AMQPMethod::ConsumeOk(_)))
    )));
    let has_queue = || {
        harness
            .broker()
            .queues()
            .list()
            .iter()
            .any(|q| q.as_str() == "fuzz")
    };
    assert!(has_queue(), "the prelude's queue exists");
    // Between inputs the harness empties the broker, so each input runs the same way.
    harness.reset();
    assert!(!has_queue(), "reset left the prelude's queue");
}

#[test]
fn every_prelude_and_plain_garbage_finish() {
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::open(dir.path()).unwrap();
    for level in 0..4u8 {
        for tail in [
            &b""[..],
            b"\x01\x00\x01\x00\x00\x00\x04\x00\x63\x00\x01\xce",
            b"AMQP",
        ] {
            let input = [&[level][..], tail].concat();
            harness.run(&input);
        }
    }
    // No prelude and no protocol header: the server answers with its own header and closes.
    let out = harness.run(&[0, b'H', b'T', b'T', b'P', b'/', b'1', b'.', b'1']);
    assert_eq!(out, b"AMQP\x00\x00\x09\x01");
}

/// amq-protocol parses field tables recursively, at roughly 10-20 KiB of stack per level, so
/// a frame whose table nests 200 levels deep (1.4 KB; well under frame-max) overflowed a 2 MiB
/// thread stack — a tokio worker's in the server — and aborted the whole broker; every frame
/// with a table goes through `FrameReader`, `connection.start-ok` included, before
/// authentication. The fuzz targets could not see it: their connection runs on the 8 MiB main
/// thread, where it takes ~800 levels, more than `-max_len=4096` allows. Now the reader refuses
/// such a frame (501) before parsing it (`amqp::nesting`). This test runs on a 2 MiB test
/// thread, so before the fix it aborted the test process.
#[test]
fn a_deep_field_table_does_not_overflow_the_stack() {
    const LEVELS: usize = 200;
    // Innermost an empty table; each level wraps it as {"h": F(table)}.
    let mut table: Vec<u8> = 0u32.to_be_bytes().to_vec();
    for _ in 0..LEVELS {
        let mut entry = vec![1, b'h', b'F'];
        entry.extend_from_slice(&table);
        let mut t = (entry.len() as u32).to_be_bytes().to_vec();
        t.extend_from_slice(&entry);
        table = t;
    }
    // A content header (class 60, body size 2) with only the headers property.
    let mut payload = vec![0, 60, 0, 0];
    payload.extend_from_slice(&2u64.to_be_bytes());
    payload.extend_from_slice(&0x2000u16.to_be_bytes());
    payload.extend_from_slice(&table);
    let mut frame = vec![2, 0, 1];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    frame.push(0xce);
    decode_frames(&frame);
    // Through a real connection, after the handshake: a 501 connection.close, not an abort.
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::open(dir.path()).unwrap();
    let mut input = vec![3];
    input.extend_from_slice(&frame);
    let out = harness.run(&input);
    let close = frames(&out).into_iter().find_map(|f| match f {
        AMQPFrame::Method(0, AMQPClass::Connection(connection::AMQPMethod::Close(c))) => Some(c),
        _ => None,
    });
    let close = close.expect("the server closes the connection");
    assert_eq!(close.reply_code, 501, "{close:?}");
    assert!(close.reply_text.as_str().contains("nest"), "{close:?}");
}
