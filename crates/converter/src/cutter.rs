//! Cutting decoded frames and samples into fixed windows of stream time.
//!
//! Pure bookkeeping, separate from FFmpeg so it can be tested on synthetic timelines. Window
//! `k` covers `[k * length, (k + 1) * length)`; a frame belongs to the window holding its pts,
//! audio blocks are split at window edges to the sample. A window is cut once every track has
//! decoded past its end (or one track is `MAX_SKEW` ahead, so a track that stops early cannot
//! make the other pile up in memory), or at end of input. Empty windows (gaps in the input)
//! are skipped; segment indices count the segments actually produced.

use std::collections::VecDeque;

use vqa_core::model::{AudioBlock, Segment, StreamId, VideoFrame};
use vqa_core::Micros;

/// How far one track may run ahead of a silent other track before windows are cut anyway.
const MAX_SKEW: Micros = 3_000_000;

pub(crate) struct Cutter {
    stream: StreamId,
    length: Micros,
    has_video: bool,
    has_audio: bool,
    video: VecDeque<VideoFrame>,
    audio: VecDeque<AudioBlock>,
    video_pos: Option<Micros>,
    audio_pos: Option<Micros>,
    window: i64,
    next_index: u64,
    lead_in: Option<VideoFrame>,
    /// How much audio before a segment's start goes with it.
    audio_lead: Micros,
    /// The latest cut audio, at least `audio_lead` of it.
    recent_audio: VecDeque<AudioBlock>,
    pending_errors: u32,
}

impl Cutter {
    #[cfg(test)]
    pub fn new(stream: StreamId, length: Micros, has_video: bool, has_audio: bool) -> Self {
        Self::with_audio_lead(stream, length, has_video, has_audio, 0)
    }

    /// A cutter that hands each segment the audio of the `audio_lead` before its start too.
    pub fn with_audio_lead(
        stream: StreamId,
        length: Micros,
        has_video: bool,
        has_audio: bool,
        audio_lead: Micros,
    ) -> Self {
        Cutter {
            stream,
            length,
            has_video,
            has_audio,
            video: VecDeque::new(),
            audio: VecDeque::new(),
            video_pos: None,
            audio_pos: None,
            window: 0,
            next_index: 0,
            lead_in: None,
            audio_lead,
            recent_audio: VecDeque::new(),
            pending_errors: 0,
        }
    }

    pub fn push_video(&mut self, frame: VideoFrame) {
        self.video_pos = Some(self.video_pos.map_or(frame.end(), |p| p.max(frame.end())));
        self.video.push_back(frame);
    }

    pub fn push_audio(&mut self, block: AudioBlock) {
        if block.frames() == 0 {
            return;
        }
        self.audio_pos = Some(self.audio_pos.map_or(block.end(), |p| p.max(block.end())));
        self.audio.push_back(block);
    }

    /// Numbers the next segment `index` (a reconnected source continuing a stream).
    pub fn continue_at(&mut self, index: u64) {
        self.next_index = index;
    }

    /// The index the next segment gets.
    pub fn next_index(&self) -> u64 {
        self.next_index
    }

    /// Decoder errors to report with the next segment.
    pub fn add_errors(&mut self, n: u32) {
        self.pending_errors += n;
    }

    /// How far decoding has got, for progress.
    pub fn position(&self) -> Micros {
        self.video_pos
            .into_iter()
            .chain(self.audio_pos)
            .max()
            .unwrap_or(0)
    }

    /// The earliest timestamp still queued.
    fn earliest_queued(&self) -> Option<Micros> {
        let v = self.video.front().map(|f| f.pts);
        let a = self.audio.front().map(|b| b.time_of(0));
        v.into_iter().chain(a).min()
    }

    /// The next complete segment, if one can be cut; at end of input (`eof`) cuts whatever is
    /// left.
    pub fn cut(&mut self, eof: bool) -> Option<Segment> {
        let earliest = self.earliest_queued()?;
        if earliest >= (self.window + 1) * self.length {
            self.window = earliest.div_euclid(self.length);
        }
        let start = self.window * self.length;
        let end = start + self.length;
        let positions = [
            (self.has_video, self.video_pos),
            (self.has_audio, self.audio_pos),
        ];
        let lagging = positions
            .iter()
            .filter(|(has, _)| *has)
            .map(|(_, p)| p.unwrap_or(Micros::MIN))
            .min();
        let leading = positions
            .iter()
            .filter_map(|(_, p)| *p)
            .max()
            .unwrap_or(Micros::MIN);
        let ready = eof || lagging.is_some_and(|p| p >= end) || leading >= end + MAX_SKEW;
        if !ready {
            return None;
        }

        let mut video = Vec::new();
        while self.video.front().is_some_and(|f| f.pts < end) {
            video.extend(self.video.pop_front());
        }
        let mut audio = Vec::new();
        while let Some(block) = self.audio.pop_front() {
            if block.time_of(0) >= end {
                self.audio.push_front(block);
                break;
            }
            let (head, tail) = split_at_time(block, end);
            audio.push(head);
            if let Some(tail) = tail {
                self.audio.push_front(tail);
                break;
            }
        }

        let content_end = video
            .iter()
            .map(|f| f.end())
            .chain(audio.iter().map(|b| b.end()))
            .max()
            .unwrap_or(end);
        let drained = self.video.is_empty() && self.audio.is_empty();
        let segment_end = if eof && drained {
            content_end.clamp(start + 1, end)
        } else {
            end
        };
        let lead_in = match video.last() {
            Some(last) => self.lead_in.replace(last.clone()),
            None => self.lead_in.clone(),
        };
        let audio_lead_in = if self.audio_lead > 0 {
            let from = start - self.audio_lead;
            self.recent_audio.retain(|b| b.end() > from);
            let lead: Vec<AudioBlock> = self.recent_audio.iter().cloned().collect();
            self.recent_audio.extend(audio.iter().cloned());
            lead
        } else {
            Vec::new()
        };
        let segment = Segment {
            stream: self.stream.clone(),
            index: self.next_index,
            start,
            end: segment_end,
            has_video: self.has_video,
            has_audio: self.has_audio,
            lead_in,
            video,
            audio,
            audio_lead_in,
            decode_errors: std::mem::take(&mut self.pending_errors),
            ts_events: Vec::new(),
            splice_cues: Vec::new(),
        };
        self.next_index += 1;
        self.window += 1;
        Some(segment)
    }
}

/// Splits a block into the samples before `at` and the rest.
fn split_at_time(block: AudioBlock, at: Micros) -> (AudioBlock, Option<AudioBlock>) {
    let frames = block.frames();
    if block.end() <= at {
        return (block, None);
    }
    // First instant at or after `at`: estimate, then correct for rounding.
    let estimate =
        ((at - block.time_of(0)).max(0) as u128 * block.rate as u128).div_ceil(1_000_000) as usize;
    let mut n = estimate.min(frames);
    while n > 0 && block.time_of(n - 1) >= at {
        n -= 1;
    }
    while n < frames && block.time_of(n) < at {
        n += 1;
    }
    let channels = block.channels as usize;
    let head = AudioBlock {
        samples: block.samples[..n * channels].into(),
        ..block.clone()
    };
    let tail = AudioBlock {
        skipped: block.skipped + n as u32,
        samples: block.samples[n * channels..].into(),
        ..block
    };
    (head, (tail.frames() > 0).then_some(tail))
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use vqa_core::model::LumaRange;

    const L: Micros = 1_000_000;

    fn frame(pts: Micros) -> VideoFrame {
        VideoFrame {
            pts,
            duration: 40_000,
            width: 2,
            height: 2,
            stride: 2,
            range: LumaRange::Limited,
            keyframe: false,
            corrupt: false,
            format: Default::default(),
            captions: Default::default(),
            luma: Bytes::from_static(&[0; 4]),
        }
    }

    fn block(pts: Micros, frames: usize) -> AudioBlock {
        AudioBlock {
            pts,
            skipped: 0,
            rate: 48_000,
            channels: 2,
            lfe: None,
            samples: vec![0.1; frames * 2].into(),
        }
    }

    fn drain(c: &mut Cutter, eof: bool) -> Vec<Segment> {
        std::iter::from_fn(|| c.cut(eof)).collect()
    }

    #[test]
    fn frames_and_samples_land_in_their_window_with_a_lead_in() {
        let mut c = Cutter::new(StreamId::new("s"), L, true, true);
        for n in 0..60 {
            c.push_video(frame(n * 40_000));
        }
        // 2.4 s of audio in 1024-sample blocks, timestamped as a decoder would (exact ticks)
        for k in 0..(48_000 * 12 / 5) / 1024 {
            c.push_audio(block((k * 1024 * 1_000_000 + 24_000) / 48_000, 1024));
        }
        c.push_audio(block(
            (112 * 1024 * 1_000_000 + 24_000) / 48_000,
            115_200 - 112 * 1024,
        ));
        let segs = drain(&mut c, false);
        assert_eq!(segs.len(), 2, "the third window is not complete yet");
        let s0 = &segs[0];
        assert_eq!((s0.index, s0.start, s0.end, s0.video.len()), (0, 0, L, 25));
        assert_eq!(s0.audio_frames(), 48_000);
        assert!(s0.lead_in.is_none());
        assert_eq!(segs[1].lead_in.as_ref().map(|f| f.pts), Some(960_000));
        assert_eq!(segs[1].audio.first().map(|b| b.time_of(0)), Some(L));
        let rest = drain(&mut c, true);
        assert_eq!(rest.len(), 1);
        assert_eq!(
            (rest[0].start, rest[0].end, rest[0].video.len()),
            (2 * L, 2_400_000, 10)
        );
        assert_eq!(rest[0].audio_frames(), 48_000 * 2 / 5);
    }

    #[test]
    fn gaps_skip_empty_windows_and_indices_stay_consecutive() {
        let mut c = Cutter::new(StreamId::new("s"), L, true, false);
        for pts in [0, 40_000, 5_000_000, 5_040_000] {
            c.push_video(frame(pts));
        }
        let segs = drain(&mut c, true);
        let spans: Vec<_> = segs
            .iter()
            .map(|s| (s.index, s.start, s.video.len()))
            .collect();
        assert_eq!(spans, vec![(0, 0, 2), (1, 5 * L, 2)]);
    }

    #[test]
    fn a_track_that_stops_early_does_not_hold_back_the_other() {
        let mut c = Cutter::new(StreamId::new("s"), L, true, true);
        c.push_audio(block(0, 4800)); // 0.1 s of audio, then nothing
        for n in 0..125 {
            c.push_video(frame(n * 40_000)); // 5 s of video
        }
        let segs = drain(&mut c, false);
        assert_eq!(
            segs.len(),
            2,
            "windows more than 3 s behind the video are cut"
        );
    }

    #[test]
    fn segments_carry_the_audio_before_their_start_as_lead_in() {
        let mut c = Cutter::with_audio_lead(StreamId::new("s"), L, false, true, 2_900_000);
        // 5 s of audio in 100 ms blocks.
        for k in 0..50 {
            c.push_audio(block(k * 100_000, 4800));
        }
        let segs = drain(&mut c, true);
        assert_eq!(segs.len(), 5);
        assert!(segs[0].audio_lead_in.is_empty());
        let lead = |s: &Segment| {
            let b = &s.audio_lead_in;
            (
                b.first().map(|b| b.time_of(0)),
                b.last().map(|b| b.end()),
                b.iter().map(|b| b.frames()).sum::<usize>(),
            )
        };
        assert_eq!(lead(&segs[1]), (Some(0), Some(L), 48_000));
        assert_eq!(lead(&segs[4]), (Some(1_100_000), Some(4 * L), 139_200));
    }

    #[test]
    fn audio_is_split_at_the_window_edge_to_the_sample() {
        let (head, tail) = split_at_time(block(990_000, 1024), L);
        // 10 ms at 48 kHz = 480 samples before the edge.
        assert_eq!(head.frames(), 480);
        let tail = tail.unwrap();
        assert_eq!((tail.time_of(0), tail.frames()), (L, 544));
    }
}
