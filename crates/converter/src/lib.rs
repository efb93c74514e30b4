//! vqa's converter stage: FFmpeg (through `ffmpeg-next`) decodes the best video and audio
//! tracks of an input into [`Segment`]s of luma frames and f32 samples.
//!
//! Architecture invariant: this is the only crate that knows FFmpeg. Opening the input is
//! where bad input fails; after that, damage (unreadable packets, an input that ends early)
//! is recorded as warnings in the [`StreamSummary`] and what could be decoded is analysed.

mod audio;
mod chunk_writer;
mod cutter;
mod ts_tap;
mod url_source;
mod video;

pub use chunk_writer::{ChunkWriter, WriteError};
/// What [`Read::Packet`] carries.
pub use ffmpeg_next::Packet;

use std::collections::VecDeque;
use std::ops::DerefMut;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};

use ffmpeg::media::Type;
use ffmpeg::{Error as FfError, Rational};
use ffmpeg_next as ffmpeg;
use vqa_core::chunk::Chunk;
use vqa_core::model::{AudioInfo, MediaInfo, Segment, StreamId, VideoInfo};
use vqa_core::{time, Converter, DetectorName, Micros, PipelineConfig, StreamSummary};

use crate::audio::AudioTrack;
use crate::cutter::Cutter;
use crate::ts_tap::TsHealth;
use crate::video::VideoTrack;

/// Why an input cannot be analysed at all. Messages say what is wrong and what to do; the
/// caller prefixes the input's name.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("no such file; check the path")]
    NotFound,
    #[error("is a directory; give the path of an audio or video file")]
    IsDirectory,
    #[error("the file is empty (0 bytes); it may still be being written, or a copy failed")]
    Empty,
    #[error("cannot read it: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a media file FFmpeg can read ({0}); check that it is an audio or video file and not damaged")]
    NotMedia(String),
    #[error("protocol {0}: is not allowed for URL inputs (allowed: {1}); add it to converter.allowed_protocols if it should be")]
    ProtocolNotAllowed(String, String),
    #[error("cannot open it ({0}); check the URL and that the source is up")]
    Unreachable(String),
    #[error("has no audio or video track (only {0}); nothing to analyse")]
    NoTracks(String),
    #[error("cannot decode its {track} track ({codec}): {reason}")]
    Decoder {
        track: &'static str,
        codec: String,
        reason: String,
    },
}

/// Converts `time_base` ticks to microseconds.
pub(crate) fn ticks_to_micros(ticks: i64, time_base: Rational) -> Micros {
    let (num, den) = (
        time_base.numerator() as i128,
        time_base.denominator().max(1) as i128,
    );
    let us = ticks as i128 * num * 1_000_000;
    (us.div_euclid(den) + i128::from(us.rem_euclid(den) * 2 >= den)) as Micros
}

/// The codec's name (for messages) and a decoder context for a track, not yet opened.
pub(crate) fn track_codec(
    stream: &ffmpeg::format::stream::Stream,
    track: &'static str,
) -> Result<(String, ffmpeg::codec::context::Context), OpenError> {
    let params = stream.parameters();
    let codec = ffmpeg::decoder::find(params.id())
        .map(|c| c.name().to_string())
        .unwrap_or_else(|| format!("{:?}", params.id()).to_lowercase());
    match ffmpeg::codec::context::Context::from_parameters(params) {
        Ok(ctx) => Ok((codec, ctx)),
        Err(e) => Err(OpenError::Decoder {
            track,
            codec,
            reason: e.to_string(),
        }),
    }
}

/// The error for a track whose decoder FFmpeg could not open.
pub(crate) fn no_decoder(track: &'static str, codec: &str, e: FfError) -> OpenError {
    OpenError::Decoder {
        track,
        codec: codec.to_string(),
        reason: format!("{e}; FFmpeg has no decoder for it"),
    }
}

/// Sends a packet (or, with `None`, end of stream) to a decoder and returns the frames it
/// gives back, with the number of errors it reported.
pub(crate) fn decode_frames<F: DerefMut<Target = ffmpeg::Frame>>(
    decoder: &mut ffmpeg::decoder::Opened,
    packet: Option<&Packet>,
    empty: fn() -> F,
) -> (Vec<F>, u32) {
    let sent = match packet {
        Some(p) => decoder.send_packet(p),
        None => decoder.send_eof(),
    };
    let mut errors = u32::from(sent.is_err());
    let mut frames = Vec::new();
    loop {
        let mut frame = empty();
        match decoder.receive_frame(&mut frame) {
            Ok(()) => frames.push(frame),
            Err(FfError::Eof)
            | Err(FfError::Other {
                errno: ffmpeg::util::error::EAGAIN,
            }) => break,
            Err(_) => {
                errors += 1;
                break;
            }
        }
    }
    (frames, errors)
}

/// Sets FFmpeg up once per process: registers nothing (FFmpeg 5 needs no registration) but
/// silences its own logging, which would interleave with ours; errors reach us as values.
fn init_ffmpeg() {
    static INIT: Once = Once::new();
    INIT.call_once(|| {
        let _ = ffmpeg::init();
        let level = if std::env::var_os("VQA_FFMPEG_LOG").is_some() {
            ffmpeg::util::log::Level::Warning
        } else {
            ffmpeg::util::log::Level::Quiet
        };
        ffmpeg::util::log::set_level(level);
    });
}

/// Consecutive unreadable packets after which the input is given up as unreadable.
const MAX_CONSECUTIVE_INVALID: u32 = 1000;

/// The FFmpeg converter for one input: a [`PacketReader`] (demuxing: the input's I/O) and a
/// [`Decoding`] (decoders and cutter: the CPU work). A file is read and decoded in one go
/// ([`Converter::next_segment`]); a live monitor splits the two ([`FfmpegConverter::split`]),
/// reading on a thread that waits on the network and decoding on its CPU pool.
pub struct FfmpegConverter {
    reader: PacketReader,
    decoding: Decoding,
}

/// Reads an input's packets: I/O only, no decoding.
pub struct PacketReader {
    input: ffmpeg::format::context::Input,
    /// Track index and time base of the video and audio tracks decoded.
    tracks: Vec<(usize, Rational)>,
    origin: Micros,
    /// Read ahead while checking where a seek landed, returned before reading on.
    peeked: VecDeque<Read>,
}

/// What reading one packet gave.
pub enum Read {
    /// A packet of a decoded track, with its stream time (µs) when it has one.
    Packet(Packet, Option<Micros>),
    /// A damaged packet the demuxer skipped.
    Damaged,
    /// The input ended.
    End,
    /// Reading failed: the source stopped sending, or the connection broke.
    Failed(String),
}

/// Decoders and cutter of one input: turns packets into segments.
pub struct Decoding {
    name: String,
    media: MediaInfo,
    origin: Micros,
    video: Option<VideoTrack>,
    audio: Option<AudioTrack>,
    cutter: Cutter,
    eof: bool,
    warnings: Vec<String>,
    read_error: Option<String>,
    decode_errors: u64,
    /// Decoding one chunk of the input: what to keep of it.
    chunk: Option<ChunkBounds>,
    /// The transport stream's health, when the input is an MPEG-TS read through the tee.
    ts: Option<TsHealth>,
}

/// The part of the timeline a chunk's converter hands on, and what it left out.
struct ChunkBounds {
    start: Micros,
    end: Option<Micros>,
    /// The number of the next segment handed on (windows number a chunk's segments).
    next_index: u64,
    /// The chunk's end was reached: nothing more is handed on.
    done: bool,
    /// Decoding errors counted with the segments before the start or past the end (another
    /// chunk's).
    outside_errors: u64,
}

/// Stream time decoded ahead of a chunk's start, on top of the audio lead-in: audio decoders
/// need a few frames to settle after a seek (AAC's overlap), and the keyframe the seek lands
/// on is earlier still.
const CHUNK_PREROLL: Micros = 2_000_000;

/// How much of a stream a chunk's file holds before the chunk's start, for its lead-ins
/// and its decoders to settle ([`ChunkWriter`]'s lead, and what a packager's segments before
/// a chunk must cover).
pub fn chunk_lead(config: &PipelineConfig) -> Micros {
    config.audio_lead_in() + CHUNK_PREROLL
}

impl FfmpegConverter {
    /// Opens `path` and its decoders. Fails on inputs that cannot be analysed at all.
    pub fn open(path: &Path, stream: StreamId, config: &PipelineConfig) -> Result<Self, OpenError> {
        init_ffmpeg();
        let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
            std::io::ErrorKind::NotFound => OpenError::NotFound,
            _ => OpenError::Io(e),
        })?;
        if meta.is_dir() {
            return Err(OpenError::IsDirectory);
        }
        if meta.is_file() && meta.len() == 0 {
            return Err(OpenError::Empty);
        }
        let name = path.display().to_string();
        if ts_health_enabled(config) {
            let mut file = std::fs::File::open(path)?;
            if sniff_ts(&mut file)? {
                return Self::open_tapped(file, &name, stream, config);
            }
        }
        let input = ffmpeg::format::input(&path).map_err(|e| OpenError::NotMedia(describe(&e)))?;
        Self::from_input(input, name, stream, config, None)
    }

    /// Opens an MPEG-TS read through the TS health tee: FFmpeg's demuxer and the analyser
    /// see the same bytes, read once.
    fn open_tapped<R: std::io::Read + std::io::Seek + Send + 'static>(
        source: R,
        name: &str,
        stream: StreamId,
        config: &PipelineConfig,
    ) -> Result<Self, OpenError> {
        let Some((reader, health)) = ts_tap::tap(source, &config.ts_health) else {
            return Err(OpenError::NotMedia(
                "invalid ts_health configuration".into(),
            ));
        };
        let io = ffmpeg::format::context::StreamIo::from_read_seek(reader)
            .map_err(|e| OpenError::NotMedia(describe(&e)))?;
        let input = ffmpeg::format::input_from_stream(io, Some(name), None)
            .map_err(|e| OpenError::NotMedia(describe(&e)))?;
        Self::from_input(input, name.to_string(), stream, config, Some(health))
    }

    /// Opens an input given as a URL (`udp://`, `srt://`, `rtmp://`, `http(s)://` including
    /// HLS playlists): only the configuration's allowed protocols may be opened, for the URL
    /// and for anything it refers to; a source that stops sending for 10 s ends the input.
    /// The URL's credentials never appear in errors or in the summary.
    pub fn open_url(
        url: &str,
        stream: StreamId,
        config: &PipelineConfig,
    ) -> Result<Self, OpenError> {
        Self::open_url_interruptible(url, stream, config, None)
    }

    /// [`open_url`](Self::open_url), abandoning opening and reading as soon as `stop` is set
    /// (FFmpeg's interrupt callback), so a stream being removed never waits on its source.
    pub fn open_url_interruptible(
        url: &str,
        stream: StreamId,
        config: &PipelineConfig,
        stop: Option<Arc<AtomicBool>>,
    ) -> Result<Self, OpenError> {
        init_ffmpeg();
        let allowed = &config.converter.allowed_protocols;
        let scheme = vqa_core::url_scheme(url).unwrap_or_default();
        if !allowed.iter().any(|p| p.eq_ignore_ascii_case(&scheme)) {
            return Err(OpenError::ProtocolNotAllowed(scheme, allowed.join(",")));
        }
        let mut options = ffmpeg::Dictionary::new();
        options.set("protocol_whitelist", &allowed.join(","));
        // Microseconds without data before a read gives up: a dead source is an error.
        let timeout = (config.converter.read_timeout * 1e6).round() as u64;
        options.set("rw_timeout", &timeout.max(1).to_string());
        if config.converter.tls_verify {
            // FFmpeg's TLS protocol checks nothing unless asked; http hands these on to it.
            options.set("tls_verify", "1");
            options.set("ca_file", &ca_file());
        }
        if ["udp", "rtp"].contains(&scheme.to_ascii_lowercase().as_str()) {
            // FFmpeg's UDP reader keeps waiting past rw_timeout; its own `timeout` ends it.
            options.set("timeout", &timeout.max(1).to_string());
        }
        if ts_health_enabled(config)
            && ["udp", "srt"].contains(&scheme.to_ascii_lowercase().as_str())
        {
            // A live transport stream: read here, teed into the TS health analyser.
            let stop = stop.unwrap_or_default();
            let source = url_source::UrlReader::open(url, options, Arc::clone(&stop))
                .map_err(|e| OpenError::Unreachable(describe(&e)))?;
            return Self::open_live(source, &vqa_core::redact_url(url), stream, config, stop);
        }
        let input = match stop {
            Some(stop) => ffmpeg::format::input_with_interrupt_and_dictionary(
                &url,
                move || stop.load(Ordering::Relaxed),
                options,
            ),
            None => ffmpeg::format::input_with_dictionary(&url, options),
        }
        .map_err(|e| {
            let mut why = describe(&e);
            if config.converter.tls_verify
                && ["https", "tls", "rtmps"].contains(&scheme.to_ascii_lowercase().as_str())
            {
                why.push_str(
                    "; or its TLS certificate is not one the CA certificates vouch for \
                     (SSL_CERT_FILE names them; converter.tls_verify = false accepts any)",
                );
            }
            OpenError::Unreachable(why)
        })?;
        Self::from_input(input, vqa_core::redact_url(url), stream, config, None)
    }

    /// Opens a live source read by `source`: through the TS health tee when its first bytes
    /// are an MPEG-TS, as it is otherwise. The bytes read to tell are handed on first.
    fn open_live(
        mut source: url_source::UrlReader,
        name: &str,
        stream: StreamId,
        config: &PipelineConfig,
        stop: Arc<AtomicBool>,
    ) -> Result<Self, OpenError> {
        let mut head = vec![0u8; 3 * vqa_ts_health::PACKET_SIZE];
        let mut filled = 0;
        while filled < head.len() {
            match std::io::Read::read(&mut source, &mut head[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(OpenError::Unreachable(e.to_string())),
            }
        }
        head.truncate(filled);
        let is_ts = ts_tap::looks_like_ts(&head);
        let reader = std::io::Read::chain(std::io::Cursor::new(head), source);
        let stream_io = |io: Result<_, FfError>| io.map_err(|e| OpenError::NotMedia(describe(&e)));
        let (io, health) = if is_ts {
            let Some((tee, health)) = ts_tap::tap(reader, &config.ts_health) else {
                return Err(OpenError::NotMedia(
                    "invalid ts_health configuration".into(),
                ));
            };
            (
                stream_io(ffmpeg::format::context::StreamIo::from_read(tee))?,
                Some(health),
            )
        } else {
            (
                stream_io(ffmpeg::format::context::StreamIo::from_read(reader))?,
                None,
            )
        };
        let input =
            ffmpeg::format::input_from_stream_with_interrupt(io, Some(name), None, move || {
                stop.load(Ordering::Relaxed)
            })
            .map_err(|e| OpenError::NotMedia(describe(&e)))?;
        Self::from_input(input, name.to_string(), stream, config, health)
    }

    fn from_input(
        input: ffmpeg::format::context::Input,
        name: String,
        stream: StreamId,
        config: &PipelineConfig,
        ts: Option<TsHealth>,
    ) -> Result<Self, OpenError> {
        let threads = config.converter.decoder_threads;
        let video = match input.streams().best(Type::Video) {
            Some(s) => Some(VideoTrack::open(&s, threads)?),
            None => None,
        };
        let audio = match input.streams().best(Type::Audio) {
            Some(s) => Some(AudioTrack::open(&s)?),
            None => None,
        };
        if video.is_none() && audio.is_none() {
            let kinds: Vec<String> = input
                .streams()
                .map(|s| format!("{:?}", s.parameters().medium()).to_lowercase())
                .collect();
            let what = if kinds.is_empty() {
                "no tracks at all".to_string()
            } else {
                kinds.join(", ")
            };
            return Err(OpenError::NoTracks(what));
        }
        // SAFETY: reading a plain field of the open format context we own.
        let (start_time, duration) =
            unsafe { ((*input.as_ptr()).start_time, (*input.as_ptr()).duration) };
        let av_us = Rational::new(1, 1_000_000);
        let origin = if start_time == ffmpeg::ffi::AV_NOPTS_VALUE {
            0
        } else {
            ticks_to_micros(start_time, av_us)
        };
        let media = MediaInfo {
            format: input.format().name().to_string(),
            duration: (duration > 0 && duration != ffmpeg::ffi::AV_NOPTS_VALUE)
                .then(|| time::to_secs(ticks_to_micros(duration, av_us))),
            video: video.as_ref().map(|v| VideoInfo {
                codec: v.codec.clone(),
                width: v.width,
                height: v.height,
                frame_rate: v.frame_rate,
            }),
            audio: audio.as_ref().map(|a| AudioInfo {
                codec: a.codec.clone(),
                sample_rate: a.rate,
                channels: a.channels,
                layout: a.layout_name(),
            }),
        };
        let cutter = Cutter::with_audio_lead(
            stream,
            config.segment_length(),
            video.is_some(),
            audio.is_some(),
            config.audio_lead_in(),
        );
        let tracks = [
            video.as_ref().map(|v| v.index),
            audio.as_ref().map(|a| a.index),
        ]
        .into_iter()
        .flatten()
        .filter_map(|i| input.stream(i).map(|s| (i, s.time_base())))
        .collect();
        Ok(FfmpegConverter {
            reader: PacketReader {
                input,
                tracks,
                origin,
                peeked: VecDeque::new(),
            },
            decoding: Decoding {
                name,
                media,
                origin,
                video,
                audio,
                cutter,
                eof: false,
                warnings: Vec::new(),
                read_error: None,
                decode_errors: 0,
                chunk: None,
                ts,
            },
        })
    }

    /// Opens `path` to decode one chunk of it: it seeks to the keyframe before the chunk's
    /// start, less the audio lead-in and a pre-roll, decodes from there so the first
    /// segment's lead-in picture and audio lead-in are what one pass over the whole input
    /// gives, and hands on the segments of the chunk's windows only, numbered by window.
    pub fn open_chunk(
        path: &Path,
        stream: StreamId,
        config: &PipelineConfig,
        chunk: Chunk,
    ) -> Result<Self, OpenError> {
        Ok(Self::open(path, stream, config)?.chunked(config, chunk))
    }

    /// Opens an input read through `source` (any reader that can seek: ranged reads of an
    /// object in a store, say), called `name` in messages and the summary.
    pub fn open_source<R: std::io::Read + std::io::Seek + Send + 'static>(
        source: R,
        name: &str,
        stream: StreamId,
        config: &PipelineConfig,
    ) -> Result<Self, OpenError> {
        init_ffmpeg();
        let mut source = source;
        if ts_health_enabled(config) && sniff_ts(&mut source)? {
            return Self::open_tapped(source, name, stream, config);
        }
        let io = ffmpeg::format::context::StreamIo::from_read_seek(source)
            .map_err(|e| OpenError::NotMedia(describe(&e)))?;
        let input = ffmpeg::format::input_from_stream(io, Some(name), None)
            .map_err(|e| OpenError::NotMedia(describe(&e)))?;
        Self::from_input(input, name.to_string(), stream, config, None)
    }

    /// This input, to decode one chunk of it (see [`open_chunk`](Self::open_chunk)); the
    /// whole input for [`Chunk::WHOLE`].
    pub fn chunked(mut self, config: &PipelineConfig, chunk: Chunk) -> Self {
        let start = chunk.start(config.segment_length());
        if start > 0 {
            self.reader
                .seek_before(start - config.audio_lead_in() - CHUNK_PREROLL);
        }
        self.bounded(config, chunk)
    }

    /// This input as a chunk file of a stream ([`ChunkWriter`]): its packets are placed on
    /// the stream's timeline by the stream's `origin` ([`PacketReader::origin`]), not by
    /// the file's own start; it holds its lead-ins already, so nothing is sought.
    pub fn stream_chunk(mut self, origin: Micros, config: &PipelineConfig, chunk: Chunk) -> Self {
        // The analyser's time starts at the chunk file's first byte, not the stream's.
        self.decoding.abandon_ts();
        self.reader.origin = origin;
        self.decoding.origin = origin;
        // A live stream declares no duration; what MPEG-TS guesses from a chunk's bitrate is
        // the chunk's, not the stream's.
        self.decoding.media.duration = None;
        self.bounded(config, chunk)
    }

    fn bounded(mut self, config: &PipelineConfig, chunk: Chunk) -> Self {
        if chunk.first_window > 0 || !chunk.last {
            // The analyser needs the input from its first byte to its end, in one pass: a
            // chunk sees part of it (docs/ts-health.md), and all chunks alike see none.
            self.decoding.abandon_ts();
        }
        let length = config.segment_length();
        let start = chunk.start(length);
        self.decoding.chunk = Some(ChunkBounds {
            start,
            end: chunk.end(length),
            next_index: chunk.first_window,
            done: false,
            outside_errors: 0,
        });
        self
    }

    /// Seconds of the input decoded so far (for progress).
    pub fn position(&self) -> f64 {
        time::to_secs(self.decoding.cutter.position())
    }

    /// Places this input on a longer timeline, as a reconnected live source continues its
    /// stream: its first moment becomes `start` (µs) and its first segment `next_index`.
    pub fn continue_at(&mut self, start: Micros, next_index: u64) {
        self.reader.continue_at(start);
        self.decoding.continue_at(start, next_index);
    }

    /// How long the input is as its packets say, reading them to the end without decoding
    /// (for an input whose container declares no duration); consumes the input's packets.
    pub fn scan_duration(&mut self) -> Option<f64> {
        let mut end: Option<Micros> = None;
        loop {
            match self.reader.read() {
                Read::Packet(packet, Some(t)) => {
                    let length = self
                        .reader
                        .tracks
                        .iter()
                        .find(|(i, _)| *i == packet.stream())
                        .map_or(0, |(_, tb)| ticks_to_micros(packet.duration().max(0), *tb));
                    end = end.max(Some(t + length));
                }
                Read::Packet(_, None) | Read::Damaged => {}
                Read::End | Read::Failed(_) => break,
            }
        }
        end.map(time::to_secs)
    }

    /// Where the input's media begins and ends on the source's own clock (µs): the start
    /// its container declares, and the earliest of its tracks' ends (a track's last packet
    /// time plus that packet's duration), up to which every decoded track has media. A
    /// function of the input's bytes alone, read without decoding (a packager's segment,
    /// say, whose windows its neighbours' converters must place alike); consumes the
    /// input's packets. `None` when it has no timed packets.
    pub fn span(&mut self) -> Option<(Micros, Micros)> {
        let mut ends: Vec<(usize, Micros)> = Vec::new();
        loop {
            match self.reader.read() {
                Read::Packet(packet, Some(t)) => {
                    let index = packet.stream();
                    let Some(&(_, tb)) = self.reader.tracks.iter().find(|(i, _)| *i == index)
                    else {
                        continue;
                    };
                    let end = t + ticks_to_micros(packet.duration().max(0), tb);
                    match ends.iter_mut().find(|(i, _)| *i == index) {
                        Some((_, e)) => *e = (*e).max(end),
                        None => ends.push((index, end)),
                    }
                }
                Read::Packet(_, None) | Read::Damaged => {}
                Read::End | Read::Failed(_) => break,
            }
        }
        let origin = self.reader.origin;
        let end = ends.iter().map(|(_, e)| *e).min()?;
        Some((origin, end + origin))
    }

    /// What was learnt about the input (or the chunk decoded) without the warning about
    /// undecodable packets, and their count ([`Decoding::chunk_summary`]).
    pub fn chunk_summary(&self) -> (StreamSummary, u64) {
        self.decoding.chunk_summary()
    }

    /// The reading half and the decoding half, to run on different threads.
    pub fn split(self) -> (PacketReader, Decoding) {
        (self.reader, self.decoding)
    }

    /// Reads and decodes one packet; at end of input flushes the decoders.
    fn pump(&mut self) {
        let mut invalid = 0u32;
        loop {
            match self.reader.read() {
                Read::Damaged if invalid < MAX_CONSECUTIVE_INVALID => {
                    invalid += 1;
                    self.decoding.push(Read::Damaged);
                }
                Read::Damaged => {
                    return self
                        .decoding
                        .push(Read::Failed(describe(&FfError::InvalidData)))
                }
                read => return self.decoding.push(read),
            }
        }
    }
}

impl PacketReader {
    /// What is subtracted from the packets' times (µs) to place them on the stream's
    /// timeline: the input's start, moved by [`continue_at`](Self::continue_at).
    pub fn origin(&self) -> Micros {
        self.origin
    }

    /// Seeks to the keyframe at or before stream time `time`. Where the demuxer cannot land
    /// at or before it (no index, no earlier keyframe), reading starts over from the
    /// beginning instead: slower, never wrong.
    fn seek_before(&mut self, time: Micros) {
        let ts = time + self.origin;
        let landed = if self.input.seek(ts, ..ts).is_ok() {
            loop {
                match self.read() {
                    Read::Packet(packet, Some(t)) => {
                        self.peeked.push_back(Read::Packet(packet, Some(t)));
                        break Some(t);
                    }
                    Read::Packet(packet, None) => self.peeked.push_back(Read::Packet(packet, None)),
                    other => {
                        self.peeked.push_back(other);
                        break None;
                    }
                }
            }
        } else {
            None
        };
        // A packet a little past the target is the audio interleaved after the keyframe.
        if landed.is_none_or(|t| t > time + CHUNK_PREROLL / 2) {
            self.peeked.clear();
            let _ = self.input.seek(self.origin, ..self.origin);
        }
    }

    /// Shifts packet times so the input starts at `start` (see [`FfmpegConverter::continue_at`]).
    pub fn continue_at(&mut self, start: Micros) {
        self.origin -= start;
    }

    /// The next packet of a decoded track (blocking on the source).
    pub fn read(&mut self) -> Read {
        if let Some(read) = self.peeked.pop_front() {
            return read;
        }
        let mut packet = Packet::empty();
        loop {
            match packet.read(&mut self.input) {
                Ok(()) => {
                    let index = packet.stream();
                    let Some(&(_, time_base)) = self.tracks.iter().find(|(i, _)| *i == index)
                    else {
                        continue; // a track nobody decodes
                    };
                    let time = packet
                        .pts()
                        .or(packet.dts())
                        .map(|t| ticks_to_micros(t, time_base) - self.origin);
                    return Read::Packet(packet, time);
                }
                Err(FfError::Eof) => return Read::End,
                Err(FfError::InvalidData) => return Read::Damaged,
                Err(e) => return Read::Failed(describe(&e)),
            }
        }
    }
}

impl Decoding {
    /// Shifts the timeline so the input starts at `start` and numbers its first segment
    /// `next_index` (see [`FfmpegConverter::continue_at`]).
    pub fn continue_at(&mut self, start: Micros, next_index: u64) {
        self.origin -= start;
        self.cutter.continue_at(next_index);
        if start != 0 {
            self.abandon_ts();
        }
    }

    /// Stops TS health analysis: the bytes read from here would not be on its timeline.
    fn abandon_ts(&mut self) {
        if let Some(mut ts) = self.ts.take() {
            ts.abandon();
        }
    }

    /// The transport stream's health as the analyser reported it at the end of the input
    /// (counters, programmes, PIDs), when the input is an MPEG-TS that was analysed.
    pub fn ts_report(&self) -> Option<vqa_ts_health::Report> {
        self.ts.as_ref().and_then(TsHealth::report)
    }

    pub fn media(&self) -> &MediaInfo {
        &self.media
    }

    /// Decodes what was read; at the end of the input (or a failed read) flushes the
    /// decoders, after which [`next_segment`](Self::next_segment) cuts what is left.
    pub fn push(&mut self, read: Read) {
        if self.eof {
            return;
        }
        let packet = match read {
            Read::Packet(packet, _) => packet,
            Read::Damaged => {
                // The demuxer resyncs past a damaged packet: skip it and count it.
                self.decode_errors += 1;
                self.cutter.add_errors(1);
                return;
            }
            Read::End => return self.finish_decoding(),
            Read::Failed(e) => {
                self.read_error = Some(e);
                return self.finish_decoding();
            }
        };
        let index = packet.stream();
        let origin = self.origin;
        let errors = if let Some(v) = self.video.as_mut().filter(|v| v.index == index) {
            v.decode(Some(&packet), origin, &mut self.cutter)
        } else if let Some(a) = self.audio.as_mut().filter(|a| a.index == index) {
            a.decode(Some(&packet), origin, &mut self.cutter)
        } else {
            0
        };
        self.decode_errors += u64::from(errors);
        self.cutter.add_errors(errors);
    }

    /// A segment complete with what was decoded so far, if any.
    pub fn next_segment(&mut self) -> Option<Segment> {
        loop {
            let mut segment = self.cutter.cut(self.eof)?;
            if let Some(ts) = self.ts.as_mut() {
                (segment.ts_events, segment.splice_cues) =
                    ts.events_for(segment.start, segment.end);
                // The pre-roll on the stream's timeline (the analyser's is against the PCR,
                // which runs ahead of presentation by the multiplex's delay).
                for cue in &mut segment.splice_cues {
                    if let Some(pts) = cue.splice_pts {
                        cue.pre_roll = Some(vqa_ts_health::scte35::pre_roll_on_timeline(
                            cue.at,
                            self.origin,
                            pts,
                        ));
                    }
                }
            }
            let Some(chunk) = self.chunk.as_mut() else {
                return Some(segment);
            };
            if chunk.done {
                return None;
            }
            // Before the first chunk there is nothing to lead in from: an input whose
            // timeline starts below 0 keeps those segments, as one pass does.
            if segment.start < chunk.start && chunk.start > 0 {
                // Decoded only for the lead-ins: the previous chunk's segment.
                chunk.outside_errors += u64::from(segment.decode_errors);
                continue;
            }
            if chunk.end.is_some_and(|end| segment.start >= end) {
                chunk.outside_errors += u64::from(segment.decode_errors);
                chunk.done = true;
                return None;
            }
            segment.index = chunk.next_index;
            chunk.next_index += 1;
            return Some(segment);
        }
    }

    /// Whether the input ended (or reading failed) and the decoders were flushed.
    pub fn ended(&self) -> bool {
        self.eof
    }

    /// Whether nothing more will be handed on: the input ended, or the chunk did.
    pub fn finished(&self) -> bool {
        self.eof || self.chunk.as_ref().is_some_and(|c| c.done)
    }

    /// The index the next segment gets.
    pub fn next_index(&self) -> u64 {
        self.cutter.next_index()
    }

    fn finish_decoding(&mut self) {
        let origin = self.origin;
        let mut errors = 0;
        if let Some(v) = self.video.as_mut() {
            errors += v.decode(None, origin, &mut self.cutter);
        }
        if let Some(a) = self.audio.as_mut() {
            errors += a.decode(None, origin, &mut self.cutter);
        }
        self.decode_errors += u64::from(errors);
        self.cutter.add_errors(errors);
        self.eof = true;
        if let Some(ts) = self.ts.as_mut() {
            ts.finish();
        }
    }

    /// What was learnt about the input; complete once it ended.
    pub fn summary(&self) -> StreamSummary {
        let (mut summary, errors) = self.chunk_summary();
        summary.warnings.extend(decode_errors_warning(errors));
        summary
    }

    /// What was learnt about the input (or the chunk of it decoded), without the warning
    /// about undecodable packets, and their count: the distributed topology adds up the
    /// chunks' counts and words the warning once, as one pass over the input does.
    pub fn chunk_summary(&self) -> (StreamSummary, u64) {
        let mut warnings = self.warnings.clone();
        let mut complete = self.finished();
        let decoded = time::to_secs(self.cutter.position());
        if let Some(e) = &self.read_error {
            warnings.push(format!(
                "reading stopped at {decoded:.2} s: {e}; the rest of the input was not analysed"
            ));
            complete = false;
        }
        if let Some(declared) = self.media.duration {
            // Containers round their duration and tracks end a little apart: allow 1 s + 1%.
            if self.eof && decoded + 1.0 + 0.01 * declared < declared {
                warnings.push(format!(
                    "the input ends at {decoded:.2} s but declares {declared:.2} s: it is truncated or damaged; \
                     {decoded:.2} s were analysed"
                ));
                complete = false;
            }
        }
        if self.eof && self.cutter.position() == 0 && self.decode_errors > 0 {
            complete = false;
        }
        let errors = match &self.chunk {
            Some(c) => self.decode_errors.saturating_sub(c.outside_errors),
            None => self.decode_errors,
        };
        let summary = StreamSummary {
            input: self.name.clone(),
            media: self.media.clone(),
            complete,
            warnings,
            ts_health: self
                .ts
                .as_ref()
                .and_then(TsHealth::report)
                .map(|r| ts_tap::summary(&r)),
        };
        (summary, errors)
    }
}

/// Whether the configuration reads the transport stream's own packets: TS health or
/// SCTE-35 (either detector on).
fn ts_health_enabled(config: &PipelineConfig) -> bool {
    config.detectors.contains(&DetectorName::TsPriority1)
        || config.detectors.contains(&DetectorName::Scte35)
}

/// Whether `source` starts like an MPEG-TS; leaves it at its start.
fn sniff_ts<R: std::io::Read + std::io::Seek>(source: &mut R) -> Result<bool, OpenError> {
    let mut head = [0u8; 3 * vqa_ts_health::PACKET_SIZE];
    let mut filled = 0;
    while filled < head.len() {
        match source.read(&mut head[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(OpenError::Io(e)),
        }
    }
    source.seek(std::io::SeekFrom::Start(0))?;
    Ok(ts_tap::looks_like_ts(&head[..filled]))
}

/// The summary's warning about `n` packets or frames that could not be decoded, if any.
pub fn decode_errors_warning(n: u64) -> Option<String> {
    let what = if n == 1 {
        "packet or frame"
    } else {
        "packets or frames"
    };
    (n > 0).then(|| format!(
        "{n} {what} could not be decoded (damaged stream); the pictures or sound in them were not analysed"
    ))
}

impl Converter for FfmpegConverter {
    fn media(&self) -> &MediaInfo {
        &self.decoding.media
    }

    fn next_segment(&mut self) -> Option<Segment> {
        loop {
            if let Some(segment) = self.decoding.next_segment() {
                return Some(segment);
            }
            if self.decoding.finished() {
                return None;
            }
            self.pump();
        }
    }

    fn summary(&self) -> StreamSummary {
        self.decoding.summary()
    }
}

/// FFmpeg's description of an error, without its numeric code.
/// The CA certificates a TLS source's certificate is checked against: `SSL_CERT_FILE` when it
/// names a file (as OpenSSL and the AWS SDK read it), else Debian's bundle.
fn ca_file() -> String {
    std::env::var("SSL_CERT_FILE")
        .ok()
        .filter(|f| Path::new(f).is_file())
        .unwrap_or_else(|| "/etc/ssl/certs/ca-certificates.crt".to_string())
}

fn describe(e: &FfError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_convert_to_rounded_microseconds() {
        assert_eq!(ticks_to_micros(1, Rational::new(1, 25)), 40_000);
        assert_eq!(ticks_to_micros(3003, Rational::new(1, 90_000)), 33_367);
        assert_eq!(ticks_to_micros(-1, Rational::new(1, 3)), -333_333);
        assert_eq!(ticks_to_micros(1024, Rational::new(1, 48_000)), 21_333);
    }
}
