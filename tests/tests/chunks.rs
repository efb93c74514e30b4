//! A chunk's converter sees exactly what one pass over the whole input sees: cutting an input
//! into chunks (each decoded on its own, from a seek) and putting their segments end to end
//! gives the single pass's segments — pictures, lead-in pictures, audio and its lead-in —
//! in every container, whichever keyframe each seek lands on. One thing differs, by FFmpeg's
//! design: AAC bands coded by perceptual noise substitution are filled with noise from a
//! generator the decoder seeds once, so after a seek that noise has other values scaled to
//! the same energy; those blocks are checked for exactly that. (MP2's and AC-3's decoders
//! likewise carry random dither from frame to frame, tests/tests/live.rs.)

use std::path::Path;

use vqa_converter::{ChunkWriter, FfmpegConverter, Read};
use vqa_core::chunk::Chunk;
use vqa_core::{AudioBlock, Converter, PipelineConfig, Segment, StreamId};
use vqa_testkit::{make_clip, ClipSpec, Container, Content};

fn segments(mut converter: FfmpegConverter) -> Vec<Segment> {
    std::iter::from_fn(|| converter.next_segment()).collect()
}

fn chunked(path: &Path, config: &PipelineConfig, windows: u64) -> Vec<(Chunk, Vec<Segment>)> {
    let stream = StreamId::new("chunks");
    let whole = FfmpegConverter::open(path, stream.clone(), config).expect("open");
    let duration = whole.media().duration.map(vqa_core::time::from_secs);
    Chunk::plan(duration, config.segment_length(), windows)
        .into_iter()
        .map(|chunk| {
            let c = FfmpegConverter::open_chunk(path, stream.clone(), config, chunk)
                .expect("open a chunk");
            (chunk, segments(c))
        })
        .collect()
}

fn assert_chunks_equal_one_pass(path: &Path, windows: u64) {
    let config = PipelineConfig::default();
    let chunks = chunked(path, &config, windows);
    assert_equal_one_pass(path, &config, chunks);
}

/// Chunk files cut from the stream's packets as read ([`ChunkWriter`]), each decoded on its
/// own on the stream's timeline.
fn from_chunk_files(
    path: &Path,
    config: &PipelineConfig,
    windows: u64,
) -> Vec<(Chunk, Vec<Segment>)> {
    let stream = StreamId::new("chunks");
    let (mut reader, _) = FfmpegConverter::open(path, stream.clone(), config)
        .expect("open")
        .split();
    let origin = reader.origin();
    let mut writer = ChunkWriter::new(&reader, config, windows);
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    loop {
        match reader.read() {
            Read::Packet(packet, time) => files.extend(
                writer
                    .push(packet, time, dir.path())
                    .expect("write a chunk"),
            ),
            Read::Damaged => {}
            Read::End | Read::Failed(_) => break,
        }
    }
    files.extend(writer.finish(dir.path()).expect("write the last chunk"));
    assert!(files.last().is_some_and(|(c, _)| c.last));
    files
        .into_iter()
        .map(|(chunk, file)| {
            let c = FfmpegConverter::open(&file, stream.clone(), config)
                .expect("open a chunk file")
                .stream_chunk(origin, config, chunk);
            (chunk, segments(c))
        })
        .collect()
}

fn assert_equal_one_pass(path: &Path, config: &PipelineConfig, chunks: Vec<(Chunk, Vec<Segment>)>) {
    assert!(
        config.audio_lead_in() > 0,
        "the lead-in is part of what is compared"
    );
    let stream = StreamId::new("chunks");
    let whole = segments(FfmpegConverter::open(path, stream, config).expect("open"));
    assert!(chunks.len() >= 3, "{} chunks", chunks.len());
    let mut joined = Vec::new();
    let (mut substituted, mut blocks) = (0, 0);
    for (chunk, segs) in chunks {
        for s in &segs {
            assert_eq!(
                s.start,
                s.index as i64 * config.segment_length(),
                "numbered by window"
            );
            // The last chunk runs to the end of the input, however long that is.
            assert!(s.index >= chunk.first_window);
            assert!(chunk.last || s.index < chunk.first_window + chunk.windows);
        }
        joined.extend(segs);
    }
    assert_eq!(joined.len(), whole.len(), "{}", path.display());
    let n = whole.len();
    for (i, (mut c, mut w)) in joined.into_iter().zip(whole).enumerate() {
        c.index = i as u64;
        // TS health needs the input read in one pass from its first byte: chunks have none
        // (docs/ts-health.md). Decoding is what is compared here.
        assert!(c.ts_events.is_empty());
        w.ts_events.clear();
        if i + 1 < n {
            assert!(!w.video.is_empty() && !w.audio.is_empty());
        }
        if i > 0 {
            assert!(w.lead_in.is_some() && !w.audio_lead_in.is_empty());
        }
        blocks += w.audio.len();
        let pns = noise_substituted(&c.audio, &w.audio);
        substituted += pns;
        let pns = pns + noise_substituted(&c.audio_lead_in, &w.audio_lead_in);
        if pns > 0 {
            // Compared above, block by block; the rest must be exact.
            c.audio = w.audio.clone();
            c.audio_lead_in = w.audio_lead_in.clone();
        }
        assert!(
            c == w,
            "{}: segment {i} differs: {} vs {} frames, lead-in {:?} vs {:?}",
            path.display(),
            c.video.len(),
            w.video.len(),
            c.lead_in.as_ref().map(|f| f.pts),
            w.lead_in.as_ref().map(|f| f.pts),
        );
    }
    eprintln!(
        "{}: {substituted} of {blocks} audio blocks carry other noise",
        path.display()
    );
}

/// Blocks that differ between the two passes, checking that each differs only as AAC's
/// perceptual noise substitution makes it differ: FFmpeg's decoder draws the noise of such
/// bands from a generator seeded once per decoder, so after a seek the noise has other
/// values, scaled to the same energy. Anything else that differs fails here.
fn noise_substituted(chunk: &[AudioBlock], whole: &[AudioBlock]) -> usize {
    assert_eq!(chunk.len(), whole.len());
    let mut differ = 0;
    for (a, b) in chunk.iter().zip(whole) {
        assert_eq!(
            (a.pts, a.rate, a.channels, a.skipped, a.lfe, a.samples.len()),
            (b.pts, b.rate, b.channels, b.skipped, b.lfe, b.samples.len())
        );
        if a.samples == b.samples {
            continue;
        }
        differ += 1;
        let energy = |x: &AudioBlock| x.samples.iter().map(|v| f64::from(*v).powi(2)).sum::<f64>();
        let (ea, eb) = (energy(a), energy(b));
        assert!(
            (ea - eb).abs() <= 0.05 * ea.max(eb) + 1e-9,
            "audio at {} µs differs beyond noise substitution: energy {ea} vs {eb}",
            a.pts
        );
    }
    differ
}

/// A small natural-content clip: quick to make and decode, every frame different.
fn small_natural(duration: f64, gop: Option<u32>, container: Container) -> ClipSpec {
    ClipSpec {
        duration,
        width: 160,
        height: 96,
        content: Content::Natural,
        gop,
        container,
        ..ClipSpec::default()
    }
}

#[test]
fn chunks_put_end_to_end_are_one_pass_in_every_container() {
    let dir = tempfile::tempdir().unwrap();
    for container in [Container::Mp4, Container::Mkv, Container::Ts] {
        let spec = small_natural(21.0, Some(50), container);
        let clip = make_clip(dir.path(), &format!("chunks-{container:?}"), &spec).unwrap();
        // Chunk starts fall on keyframes (every 2 s) and between them.
        assert_chunks_equal_one_pass(&clip.path, 6);
        assert_chunks_equal_one_pass(&clip.path, 5);
    }
}

#[test]
fn chunks_of_an_input_with_scene_cut_keyframes_are_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    // x264 places keyframes at scene cuts: seeks land anywhere.
    let spec = small_natural(24.0, None, Container::Mp4);
    let clip = make_clip(dir.path(), "chunks-cuts", &spec).unwrap();
    assert_chunks_equal_one_pass(&clip.path, 7);
}

#[test]
fn chunk_files_cut_from_a_live_stream_decode_as_one_pass() {
    // An MPEG-TS source, as a live stream comes (UDP, SRT, RTP): its packets, as read, cut
    // into chunk files with their lead-ins; each file decoded on its own, on the stream's
    // timeline, gives the one pass's segments.
    let dir = tempfile::tempdir().unwrap();
    let spec = small_natural(21.0, Some(50), Container::Ts);
    let clip = make_clip(dir.path(), "stream", &spec).unwrap();
    let config = PipelineConfig::default();
    for windows in [6, 5] {
        let chunks = from_chunk_files(&clip.path, &config, windows);
        assert_equal_one_pass(&clip.path, &config, chunks);
    }
}
