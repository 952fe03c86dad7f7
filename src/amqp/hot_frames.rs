//! The frames every message brings besides its content header, read without nom: content
//! bodies, `basic.publish` and `basic.ack`.
//!
//! Why: amq-protocol collects a body byte by byte and builds an `AMQPFlags` (a `String` per
//! flag name) for every publish and ack. These readers produce the same [`AMQPFrame`] values —
//! a test checks them against amq-protocol on random frames and random damage — and return
//! `None` for anything else, including anything malformed, which then goes through
//! amq-protocol and gets its errors.

use amq_protocol::frame::AMQPFrame;
use amq_protocol::protocol::{basic, AMQPClass};
use amq_protocol::types::ShortString;

use super::codec::{FRAME_BODY, FRAME_METHOD};
use super::content::CLASS_BASIC;
use super::reader::Reader;

const METHOD_PUBLISH: u16 = 40;
const METHOD_ACK: u16 = 80;

/// The frame of type `kind` on `channel` with this payload, if it is one of ours.
pub fn parse(kind: u8, channel: u16, payload: &[u8]) -> Option<AMQPFrame> {
    match kind {
        FRAME_BODY => Some(AMQPFrame::Body(channel, payload.to_vec())),
        FRAME_METHOD => method(payload).map(|m| AMQPFrame::Method(channel, AMQPClass::Basic(m))),
        _ => None,
    }
}

fn method(payload: &[u8]) -> Option<basic::AMQPMethod> {
    let mut r = Reader(payload);
    if r.u16()? != CLASS_BASIC {
        return None;
    }
    let m = match r.u16()? {
        METHOD_PUBLISH => {
            let _ticket = r.u16()?;
            let exchange = ShortString::from(r.short()?);
            let routing_key = ShortString::from(r.short()?);
            let flags = r.u8()?;
            basic::AMQPMethod::Publish(basic::Publish {
                exchange,
                routing_key,
                mandatory: flags & 1 != 0,
                immediate: flags & 2 != 0,
            })
        }
        METHOD_ACK => {
            let delivery_tag = r.u64()?;
            let flags = r.u8()?;
            basic::AMQPMethod::Ack(basic::Ack {
                delivery_tag,
                multiple: flags & 1 != 0,
            })
        }
        _ => return None,
    };
    r.is_empty().then_some(m)
}

#[cfg(test)]
mod tests {
    use amq_protocol::frame::parse_frame;
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};

    use super::*;
    use crate::amqp::codec::encode;
    use crate::amqp::convert::short;
    use crate::amqp::reader::damage;

    fn text(rng: &mut StdRng) -> String {
        let len = rng.random_range(0..12);
        (0..len)
            .map(|_| char::from(rng.random_range(b'a'..=b'z')))
            .collect()
    }

    fn frame(rng: &mut StdRng) -> AMQPFrame {
        let channel = rng.random_range(0..4);
        match rng.random_range(0..3) {
            0 => AMQPFrame::Body(
                channel,
                (0..rng.random_range(0..64)).map(|_| rng.random()).collect(),
            ),
            1 => AMQPFrame::Method(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Publish(basic::Publish {
                    exchange: short(text(rng)),
                    routing_key: short(text(rng)),
                    mandatory: rng.random(),
                    immediate: rng.random(),
                })),
            ),
            _ => AMQPFrame::Method(
                channel,
                AMQPClass::Basic(basic::AMQPMethod::Ack(basic::Ack {
                    delivery_tag: rng.random(),
                    multiple: rng.random(),
                })),
            ),
        }
    }

    /// Ours on a whole encoded frame (header, payload, frame-end).
    fn ours(bytes: &[u8]) -> Option<AMQPFrame> {
        let channel = u16::from_be_bytes([bytes[1], bytes[2]]);
        parse(bytes[0], channel, &bytes[7..bytes.len() - 1])
    }

    #[test]
    fn reads_what_amq_protocol_reads_or_declines() {
        let mut rng = StdRng::seed_from_u64(21);
        let (mut same, mut declined) = (0, 0);
        for i in 0..20_000 {
            let f = frame(&mut rng);
            let mut bytes = Vec::new();
            encode(&f, &mut bytes).unwrap();
            assert_eq!(ours(&bytes).as_ref(), Some(&f), "frame {i} as encoded");
            // Damage the payload (the envelope stays valid: the reader checked it already).
            let mut payload = bytes[7..bytes.len() - 1].to_vec();
            damage(&mut rng, &mut payload, 1);
            let mut damaged = bytes[..3].to_vec();
            damaged.extend_from_slice(&(payload.len() as u32).to_be_bytes());
            damaged.extend_from_slice(&payload);
            damaged.push(0xCE);
            match ours(&damaged) {
                None => declined += 1,
                Some(f) => {
                    let theirs = parse_frame(&damaged[..]).map(|(_, f)| f);
                    assert_eq!(theirs.ok(), Some(f), "damaged frame {i}");
                    same += 1;
                }
            }
        }
        assert!(same > 1000 && declined > 1000, "{same} / {declined}");
    }
}
