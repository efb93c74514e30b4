//! Cutting a stream's packets into chunk files: what the distributed topology's live reader
//! stores, one object per chunk, for a chunk's converter to decode exactly what one pass
//! over the stream decodes.
//!
//! A chunk file is MPEG-TS holding the packets, as read and in the order read, from the
//! keyframe at or before the chunk's start less the lead-ins and a pre-roll, to a little past
//! its end (so its last window is cut as one pass cuts it). Packets keep their own
//! timestamps: the chunk's converter places them on the stream's timeline with the stream's
//! origin ([`FfmpegConverter::stream_chunk`](crate::FfmpegConverter::stream_chunk)). Sources
//! whose time base divides 90 kHz (MPEG-TS, RTP, FLV's milliseconds) keep them exactly.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};

use ffmpeg::{codec, Packet, Rational};
use ffmpeg_next as ffmpeg;
use vqa_core::chunk::Chunk;
use vqa_core::{Micros, PipelineConfig};

use crate::PacketReader;

/// How far past a chunk's end its file goes: the cutter cuts a window once every track is
/// past its end, or one track is this far ahead of a silent other (its `MAX_SKEW`).
const PAST_END: Micros = 3_000_000;

/// Why a chunk file could not be written.
#[derive(Debug, thiserror::Error)]
#[error("cannot write chunk {chunk} to {path}: {reason}")]
pub struct WriteError {
    pub chunk: u64,
    pub path: PathBuf,
    pub reason: String,
}

struct Buffered {
    packet: Packet,
    time: Option<Micros>,
    /// A point decoding can start from: a video keyframe, or any packet of an audio-only
    /// stream.
    entry: bool,
}

/// Cuts one stream's packets into chunk files of `windows` segment windows.
pub struct ChunkWriter {
    /// Input track index, its time base and codec parameters.
    tracks: Vec<(usize, Rational, codec::Parameters)>,
    video: Option<usize>,
    length: Micros,
    windows: u64,
    lead: Micros,
    /// The next chunk's number and first window.
    next: u64,
    next_window: u64,
    buffer: VecDeque<Buffered>,
}

impl ChunkWriter {
    /// A writer for the packets `reader` reads.
    pub fn new(reader: &PacketReader, config: &PipelineConfig, windows: u64) -> Self {
        let tracks: Vec<(usize, Rational, codec::Parameters)> = reader
            .tracks
            .iter()
            .filter_map(|&(i, tb)| reader.input.stream(i).map(|s| (i, tb, s.parameters())))
            .collect();
        let video = tracks
            .iter()
            .find(|(_, _, p)| p.medium() == ffmpeg::media::Type::Video)
            .map(|(i, _, _)| *i);
        ChunkWriter {
            tracks,
            video,
            length: config.segment_length(),
            windows: windows.max(1),
            lead: crate::chunk_lead(config),
            next: 0,
            next_window: 0,
            buffer: VecDeque::new(),
        }
    }

    /// Numbers this writer's chunks from `index`, the first starting at window
    /// `first_window`: a reconnected live source goes on with its stream's chunks where its
    /// timeline goes on.
    pub fn starting(mut self, index: u64, first_window: u64) -> Self {
        self.next = index;
        self.next_window = first_window;
        self
    }

    /// The number of the chunk this writer writes next.
    pub fn next_chunk(&self) -> u64 {
        self.next
    }

    fn chunk(&self, last: bool) -> Chunk {
        Chunk {
            index: self.next,
            first_window: self.next_window,
            windows: self.windows,
            last,
        }
    }

    fn advance(&mut self) {
        self.next += 1;
        self.next_window += self.windows;
    }

    /// Segment windows a chunk file may hold beyond its chunk's `windows`: a connection's
    /// last chunk stretches over what was read past its end.
    pub fn extra_windows(config: &PipelineConfig) -> u64 {
        (PAST_END / config.segment_length().max(1)) as u64 + 1
    }

    /// Takes the next packet read (with its stream time); returns the chunk it completes,
    /// written into `dir`, if it completes one.
    pub fn push(
        &mut self,
        packet: Packet,
        time: Option<Micros>,
        dir: &Path,
    ) -> Result<Option<(Chunk, PathBuf)>, WriteError> {
        let entry = match self.video {
            Some(v) => packet.stream() == v && packet.is_key(),
            None => true,
        };
        self.buffer.push_back(Buffered {
            packet,
            time,
            entry,
        });
        let chunk = self.chunk(false);
        let Some(end) = chunk.end(self.length) else {
            return Ok(None);
        };
        if time.is_none_or(|t| t < end + PAST_END) {
            return Ok(None);
        }
        let path = self.write(&chunk, dir)?;
        self.advance();
        // Keep what the next chunk's lead-ins need.
        let next_start = self.chunk(false).start(self.length);
        let from = self.entry_before(next_start - self.lead);
        self.buffer.drain(..from);
        Ok(Some((chunk, path)))
    }

    /// The last chunk, at the end of the stream: everything since the last chunk written.
    /// `None` when nothing was read since.
    pub fn finish(&mut self, dir: &Path) -> Result<Option<(Chunk, PathBuf)>, WriteError> {
        self.flush(dir, true)
    }

    /// The connection's last chunk, when its source was lost (the stream goes on): like
    /// [`finish`](Self::finish), but the stream's later chunks follow it.
    pub fn cut(&mut self, dir: &Path) -> Result<Option<(Chunk, PathBuf)>, WriteError> {
        self.flush(dir, false)
    }

    fn flush(&mut self, dir: &Path, last: bool) -> Result<Option<(Chunk, PathBuf)>, WriteError> {
        let Some(newest) = self.buffer.iter().filter_map(|b| b.time).max() else {
            self.buffer.clear();
            return Ok(None);
        };
        let mut chunk = self.chunk(last);
        // What was read past the chunk's end (up to PAST_END of it) is the connection's last
        // media too: the chunk stretches over it.
        let start = chunk.start(self.length);
        let needed = (newest - start).max(0) / self.length.max(1) + 1;
        chunk.windows = chunk.windows.max(needed as u64);
        let path = self.write(&chunk, dir)?;
        self.advance();
        self.buffer.clear();
        Ok(Some((chunk, path)))
    }

    /// Where in the buffer decoding for a chunk starting after `time` starts: the last entry
    /// point at or before `time` (the first packet if there is none).
    fn entry_before(&self, time: Micros) -> usize {
        self.buffer
            .iter()
            .rposition(|b| b.entry && b.time.is_some_and(|t| t <= time))
            .unwrap_or(0)
    }

    fn write(&self, chunk: &Chunk, dir: &Path) -> Result<PathBuf, WriteError> {
        let path = dir.join(format!("chunk-{:08}.ts", chunk.index));
        let fail = |reason: String| WriteError {
            chunk: chunk.index,
            path: path.clone(),
            reason,
        };
        let start = chunk.start(self.length);
        let from = if start > 0 {
            self.entry_before(start - self.lead)
        } else {
            0
        };
        let mut out =
            ffmpeg::format::output_as(&path, "mpegts").map_err(|e| fail(e.to_string()))?;
        let mut map = Vec::new();
        for (index, time_base, parameters) in &self.tracks {
            let mut stream = out
                .add_stream(ffmpeg::encoder::find(codec::Id::None))
                .map_err(|e| fail(e.to_string()))?;
            stream.set_parameters(parameters.clone());
            stream.set_time_base(*time_base);
            // SAFETY: the stream was just created in `out`, which we own; clearing the
            // codec tag lets the muxer pick its own for the codec (a copied MP4 tag is not
            // one MPEG-TS knows).
            unsafe {
                (*(*stream.as_mut_ptr()).codecpar).codec_tag = 0;
            }
            map.push((*index, stream.index(), *time_base));
        }
        let mut options = ffmpeg::Dictionary::new();
        // Timestamps as read, no muxing delay added to them; each packet written as it
        // comes, not held back to fill a PES packet.
        options.set("max_delay", "0");
        options.set("pes_payload_size", "0");
        out.write_header_with(options)
            .map_err(|e| fail(e.to_string()))?;
        // Input track → output stream, input and output time bases (the muxer sets the
        // output's when writing the header).
        let map: Vec<(usize, usize, Rational, Rational)> = map
            .into_iter()
            .map(|(i, o, in_tb)| (i, o, in_tb, out.stream(o).map_or(in_tb, |s| s.time_base())))
            .collect();
        for b in self.buffer.iter().skip(from) {
            let Some(&(_, o, in_tb, out_tb)) = map.iter().find(|(i, ..)| *i == b.packet.stream())
            else {
                continue;
            };
            let mut packet = b.packet.clone();
            packet.set_stream(o);
            packet.rescale_ts(in_tb, out_tb);
            packet.set_position(-1);
            packet.write(&mut out).map_err(|e| fail(e.to_string()))?;
        }
        out.write_trailer().map_err(|e| fail(e.to_string()))?;
        Ok(path)
    }
}
