//! A stream's actor when the stages run in the distributed topology (`vqa monitor
//! --topology distributed`): the monitor only reads. It cuts the stream's packets, as read,
//! into chunk files ([`ChunkWriter`]) and hands each to the [`ChunkSink`], which runs one
//! execution per chunk; while the source is away it hands on chunks of lost input instead,
//! so the stream's `input_loss` incident opens and grows as in the single process. The
//! incidents come back in the stream's order and go to the same notifiers, and the report
//! after the stream's last chunk.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};

use vqa_converter::{ChunkWriter, Read};
use vqa_core::chunk::Chunk;
use vqa_core::cost::Usage;
use vqa_core::live::{Applied, ChunkEvents, ChunkJob, ChunkSink, ChunkStream, LiveChunk, Loss};
use vqa_core::{Micros, StreamReport};

use super::ab::Side;
use super::stream::{compare, notify, Item, Shared};
use super::{lock, Env};

/// A stream's chunking: where its chunk files go and how far it got.
pub(super) struct Chunked {
    stream: Box<dyn ChunkStream>,
    /// The current connection's writer, and where its packets put the stream's 0.
    writer: Option<Box<ChunkWriter>>,
    origin: Micros,
    /// The duration the source declares (a replayed file's).
    duration: Option<f64>,
    dir: PathBuf,
    /// The number of the next chunk to hand on.
    next_chunk: u64,
    /// The newest stream time read.
    timeline: Micros,
    /// While the source is away: until when the loss was handed on, and whether a chunk
    /// of this loss went yet.
    lost: Option<(Micros, bool)>,
    attempts: u64,
    connected: bool,
    last_error: Option<String>,
    length: Micros,
    /// Stream time one chunk spans: while lost, a chunk of lost input goes this often.
    span: Micros,
    pub ended: bool,
    /// Run beside the stages in this process (`--topology ab`).
    shadow: bool,
}

impl Chunked {
    /// Opens the stream's run with the sink; its chunk files go to `dir`.
    pub fn open(
        sink: &dyn ChunkSink,
        shared: &Arc<Shared>,
        env: &Arc<Env>,
        dir: PathBuf,
    ) -> Result<Chunked, String> {
        let spec = &shared.spec;
        std::fs::create_dir_all(&dir).map_err(|e| {
            format!(
                "stream {}: cannot create {} for its chunk files: {e}",
                spec.id,
                dir.display()
            )
        })?;
        let events = Arc::new(LiveEvents {
            shared: Arc::downgrade(shared),
            env: Arc::downgrade(env),
        });
        let stream = sink.open(
            &spec.id,
            &spec.config,
            &vqa_core::redact_url(&spec.url),
            events,
        )?;
        let length = spec.config.segment_length().max(1);
        Ok(Chunked {
            stream,
            writer: None,
            origin: 0,
            duration: None,
            dir,
            next_chunk: 0,
            timeline: 0,
            lost: None,
            attempts: 0,
            connected: false,
            last_error: None,
            length,
            span: length.saturating_mul(sink.windows().max(1) as Micros),
            ended: false,
            shadow: env.ab(),
        })
    }

    /// Handles one item from the reader, taking its chunk writer and its packet (a shadow
    /// copies the packet: the stages in this process decode the item after it). In a shadow
    /// (`--topology ab`), the stream's state and log are the other side's: only the chunks
    /// are handed on.
    pub fn observe(&mut self, item: &mut Item, shared: &Shared) {
        let id = &shared.spec.id;
        let shadow = self.shadow;
        match item {
            Item::Connected {
                decoding,
                writer,
                origin,
                start,
            } => {
                let start = *start;
                self.cut(shared); // a looped file starting again
                if self.lost.is_some() {
                    self.hand_on_loss(start);
                    self.lost = None;
                    if !shadow {
                        shared.stats.reconnects.fetch_add(1, Ordering::Relaxed);
                        tracing::info!("stream {id}: input back at {:.1} s", start as f64 / 1e6);
                    }
                }
                self.writer = writer
                    .take()
                    .map(|w| Box::new(w.starting(self.next_chunk, self.window(start))));
                self.origin = *origin;
                self.duration = decoding.media().duration;
                self.connected = true;
                if !shadow {
                    shared.stats.up.store(true, Ordering::SeqCst);
                }
            }
            Item::Packet(Read::Packet(packet, time), _) => {
                let time = *time;
                if let Some(t) = time {
                    self.timeline = self.timeline.max(t);
                }
                let Some(writer) = self.writer.as_mut() else {
                    return;
                };
                let packet = if shadow {
                    packet.clone()
                } else {
                    std::mem::replace(packet, vqa_converter::Packet::empty())
                };
                match writer.push(packet, time, &self.dir) {
                    Ok(Some((chunk, file))) => self.hand_on(chunk, Some(file), None, Vec::new()),
                    Ok(None) => {}
                    Err(e) => {
                        tracing::error!("stream {id}: {e}; trying again with the next packet")
                    }
                }
            }
            Item::Packet(..) => {}
            Item::Lost(why) => {
                self.cut(shared);
                if !shadow {
                    tracing::warn!("stream {id}: input lost ({why}); reconnecting");
                }
                self.begin_loss(why.clone(), shared);
                self.report_loss(shared, true);
            }
            Item::Unreachable(why) => {
                self.attempts += 1;
                if self.lost.is_none() {
                    if !shadow {
                        tracing::warn!("stream {id}: cannot open the input ({why}); retrying");
                    }
                    self.begin_loss(why.clone(), shared);
                }
                self.report_loss(shared, false);
            }
            Item::Tick => self.report_loss(shared, false),
            Item::End | Item::Stop => self.end(shared),
            Item::Fatal(why) => {
                if !shadow {
                    tracing::error!(
                        "stream {id} ({}): {why}",
                        vqa_core::redact_url(&shared.spec.url)
                    );
                    *lock(&shared.error) = Some(why.clone());
                }
                self.last_error = Some(why.clone());
                self.end(shared);
            }
        }
    }

    /// The segment window holding stream time `t`.
    fn window(&self, t: Micros) -> u64 {
        t.max(0).div_euclid(self.length) as u64
    }

    fn hand_on(
        &mut self,
        chunk: Chunk,
        file: Option<PathBuf>,
        loss: Option<Loss>,
        warnings: Vec<String>,
    ) {
        self.next_chunk = chunk.index + 1;
        self.stream.submit(ChunkJob {
            chunk,
            file,
            live: LiveChunk {
                origin: self.origin,
                loss,
                warnings,
                duration: self.duration,
            },
        });
    }

    /// The connection's last chunk, when it ends and the stream goes on.
    fn cut(&mut self, shared: &Shared) {
        if let Some(mut writer) = self.writer.take() {
            match writer.cut(&self.dir) {
                Ok(Some((chunk, file))) => self.hand_on(chunk, Some(file), None, Vec::new()),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    "stream {}: {e}; what the connection read since its last chunk is not analysed",
                    shared.spec.id
                ),
            }
            self.next_chunk = self.next_chunk.max(writer.next_chunk());
        }
    }

    fn begin_loss(&mut self, why: String, shared: &Shared) {
        self.lost = Some((self.timeline, false));
        self.last_error = Some(why);
        if !self.shadow {
            shared.stats.up.store(false, Ordering::SeqCst);
            shared.stats.losses.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// While the source is away: a chunk of lost input up to the media clock, at once when
    /// the loss begins (`now`), then once a chunk's span of it has passed.
    fn report_loss(&mut self, shared: &Shared, now: bool) {
        let Some((reported, _)) = self.lost else {
            return;
        };
        let until = shared.media_now();
        if until > reported && (now || until - reported >= self.span) {
            self.hand_on_loss(until);
        }
    }

    fn hand_on_loss(&mut self, until: Micros) {
        let Some((reported, began)) = self.lost else {
            return;
        };
        let chunk = Chunk {
            index: self.next_chunk,
            first_window: self.window(reported),
            windows: ((until - reported) / self.length).max(1) as u64,
            last: false,
        };
        let loss = Loss {
            until,
            attempts: self.attempts,
            begins: !began,
        };
        self.hand_on(chunk, None, Some(loss), Vec::new());
        self.lost = Some((until, true));
        self.timeline = self.timeline.max(until);
    }

    /// The stream's last chunk: what was read since the last one, or an empty end.
    fn end(&mut self, shared: &Shared) {
        if self.ended {
            return;
        }
        self.ended = true;
        let mut warnings = Vec::new();
        if let (Some(e), false) = (&self.last_error, self.connected) {
            warnings.push(format!("never analysed: {e}"));
        }
        if let Some(writer) = self.writer.as_mut() {
            match writer.finish(&self.dir) {
                Ok(Some((chunk, file))) => return self.hand_on(chunk, Some(file), None, warnings),
                Ok(None) => {}
                Err(e) => tracing::error!(
                    "stream {}: {e}; its last seconds are not analysed",
                    shared.spec.id
                ),
            }
            self.next_chunk = self.next_chunk.max(writer.next_chunk());
        }
        let chunk = Chunk {
            index: self.next_chunk,
            first_window: self.window(self.timeline),
            windows: 1,
            last: true,
        };
        self.hand_on(chunk, None, None, warnings);
    }
}

/// What a stream hears back from its chunks: incidents to the monitor's notifiers, and the
/// report at the end.
struct LiveEvents {
    shared: Weak<Shared>,
    env: Weak<Env>,
}

impl ChunkEvents for LiveEvents {
    fn applied(&self, applied: &Applied) {
        let (Some(shared), Some(env)) = (self.shared.upgrade(), self.env.upgrade()) else {
            return;
        };
        if env.ab() {
            let analysed = applied.analysed;
            return compare(&shared, Side::Distributed, &applied.events, analysed);
        }
        let stats = &shared.stats;
        stats
            .analysed
            .fetch_max(applied.analysed, Ordering::Relaxed);
        stats
            .segments
            .fetch_add(applied.segments, Ordering::Relaxed);
        if !applied.events.is_empty() {
            notify(&applied.events, &shared, &env);
        }
    }

    fn accounted(&self, _chunk: &Chunk, usage: &Usage) {
        if let (Some(shared), Some(env)) = (self.shared.upgrade(), self.env.upgrade()) {
            let usd = vqa_core::cost::dollars(usage, env.prices());
            shared.stats.cost.add(Side::Distributed, usd);
        }
    }

    fn finished(&self, report: Result<StreamReport, String>) {
        let (Some(shared), Some(env)) = (self.shared.upgrade(), self.env.upgrade()) else {
            return;
        };
        if env.ab() {
            return super::stream::side_finished(&shared, &env, Side::Distributed, report);
        }
        match report {
            Ok(report) => {
                if let Some(path) = &shared.report_path {
                    crate::write_report_or_log(&shared.spec.id, path, &report);
                }
                env.keep_report(report);
            }
            Err(why) => {
                tracing::error!("{why}");
                *lock(&shared.error) = Some(why);
            }
        }
        shared.stats.up.store(false, Ordering::SeqCst);
        shared.stats.finished.store(true, Ordering::SeqCst);
    }
}
