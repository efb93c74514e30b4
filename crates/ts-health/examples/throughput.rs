//! Runs the analyser over a transport stream file, in pieces as an AVIO read callback would
//! hand them over (64 KiB, or `--piece BYTES`: 1316 is a UDP datagram of 7 packets), and
//! prints its errors, what it found and its speed.
//!
//! `cargo run --release -p vqa-ts-health --example throughput -- FILE.ts [--quiet] [--piece BYTES]`

use std::time::Instant;

use vqa_core::model::SpliceCue;
use vqa_ts_health::{Analyser, Config, Event};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let usage = "usage: throughput FILE.ts [--quiet] [--piece BYTES]";
    let mut args = std::env::args().skip(1);
    let path = args.next().ok_or(usage)?;
    let (mut quiet, mut piece) = (false, 64 << 10);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quiet" => quiet = true,
            "--piece" => piece = args.next().ok_or(usage)?.parse::<usize>()?.max(1),
            _ => return Err(usage.into()),
        }
    }
    let bytes = std::fs::read(&path)?;
    let start = Instant::now();
    let mut analyser = Analyser::new(Config::default())?;
    let mut events = Vec::new();
    for piece in bytes.chunks(piece) {
        analyser.push(piece, None);
        events.extend(analyser.take_events());
    }
    let mut report = analyser.finish();
    events.append(&mut report.events);
    let elapsed = start.elapsed().as_secs_f64();
    if !quiet {
        for event in &events {
            match event {
                Event::Error(e) => println!(
                    "{:>10.3} s  {:<34} pid {:<7} {}",
                    e.at as f64 / 1e6,
                    e.kind.indicator(),
                    e.pid.map_or("-".to_string(), |p| format!("{p:#x}")),
                    e.detail
                ),
                Event::Cleared(c) => println!(
                    "{:>10.3} s  {:<34} pid {:<7} cleared",
                    c.at as f64 / 1e6,
                    c.kind.indicator(),
                    c.pid.map_or("-".to_string(), |p| format!("{p:#x}")),
                ),
                Event::Splice(cue) => println!(
                    "{:>10.3} s  {:<34} pid {:<7} {:?}",
                    cue.at as f64 / 1e6,
                    SpliceCue::command_name(cue.command),
                    format!("{:#x}", cue.pid),
                    cue
                ),
            }
        }
        for programme in &report.programmes {
            println!("{programme:?}");
        }
        println!("pids {:?}", report.pids);
    }
    let errors = events
        .iter()
        .filter(|e| matches!(e, Event::Error(_)))
        .count();
    let mb = bytes.len() as f64 / 1e6;
    println!(
        "{path}: {mb:.1} MB, {} packets, {errors} errors in {:.3} s: {:.0} MB/s",
        report.counters.packets,
        elapsed,
        mb / elapsed
    );
    Ok(())
}
