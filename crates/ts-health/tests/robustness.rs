//! Property tests: no input makes the analyser panic, its events are in stream order, and
//! how the input is cut into pieces never changes them. Seeded, so a failure repeats;
//! each case prints its seed.

mod common;

use common::*;
use vqa_ts_health::Event;

const CASES: u64 = 400;

fn assert_in_order(events: &[Event], seed: u64) {
    for pair in events.windows(2) {
        assert!(
            pair[0].at() <= pair[1].at(),
            "seed {seed}: events out of order: {pair:?}"
        );
    }
}

/// Analyses `bytes` whole and in random pieces: same events, in order.
fn check(bytes: &[u8], rng: &mut Rng, seed: u64) {
    let (whole, _) = analyse(bytes);
    assert_in_order(&whole, seed);
    let sizes: Vec<usize> = (0..32)
        .map(|_| {
            let scale = 1 + rng.below(5_000);
            1 + rng.below(scale)
        })
        .collect();
    let (chunked, _) = analyse_chunked(bytes, &sizes);
    assert_eq!(chunked, whole, "seed {seed}: pieces {sizes:?}");
}

fn random_bytes(rng: &mut Rng, len: usize) -> Vec<u8> {
    (0..len).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn random_bytes_never_panic() {
    for seed in 1..=CASES {
        let mut rng = Rng(seed);
        let len = rng.below(40_000);
        let mut bytes = random_bytes(&mut rng, len);
        // Half the cases in sync: random packets behind good sync bytes, so the headers,
        // adaptation fields, sections and PES headers behind them are random.
        if seed % 2 == 0 {
            for start in (0..bytes.len()).step_by(PACKET) {
                bytes[start] = 0x47;
            }
        }
        check(&bytes, &mut rng, seed);
    }
}

#[test]
fn mutated_streams_never_panic() {
    let plan = Plan {
        millis: 3_000,
        cat: true,
        scte35: true,
        ..Plan::default()
    };
    let clean = concat(&write(&plan));
    for seed in 1..=CASES {
        let mut rng = Rng(seed * 7919);
        let mut bytes = clean.clone();
        for _ in 0..1 + rng.below(40) {
            if bytes.is_empty() {
                break;
            }
            let at = rng.below(bytes.len());
            let len = 1 + rng.below(600);
            let end = (at + len).min(bytes.len());
            match rng.below(6) {
                0 => bytes[at] ^= 1 << rng.below(8),
                1 => {
                    let noise = random_bytes(&mut rng, end - at);
                    bytes[at..end].copy_from_slice(&noise);
                }
                2 => {
                    bytes.drain(at..end);
                }
                3 => {
                    let noise = random_bytes(&mut rng, len);
                    bytes.splice(at..at, noise);
                }
                4 => {
                    let copy = bytes[at..end].to_vec();
                    bytes.splice(at..at, copy);
                }
                // A header byte of a packet (PID, flags, counter, adaptation length).
                _ => {
                    let packet = at / PACKET * PACKET;
                    let byte = packet + 1 + rng.below(4);
                    if byte < bytes.len() {
                        bytes[byte] = rng.next_u64() as u8;
                    }
                }
            }
        }
        check(&bytes, &mut rng, seed);
    }
}
