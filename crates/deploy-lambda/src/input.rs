//! The converter function's input, read from S3 in ranges as the demuxer asks for them: a
//! chunk's converter fetches the container's index and its own part of the input, not the
//! whole file (a two-hour input is read once over all its chunks, not once per chunk).

use std::collections::VecDeque;
use std::io::{self, Read, Seek, SeekFrom};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use vqa_transport_s3::{S3Error, S3Transport};

/// Bytes fetched per request.
const BLOCK: u64 = 1 << 20;
/// Blocks kept (the demuxer returns to the index and interleaves tracks).
const KEPT: usize = 16;

/// What reading the input cost, and the first failure (which FFmpeg only sees as an I/O
/// error: the handler reports it as what it was).
#[derive(Debug, Default)]
pub struct InputReads {
    pub requests: AtomicU64,
    pub bytes: AtomicU64,
    failure: Mutex<Option<S3Error>>,
}

impl InputReads {
    /// The first failure, if reading failed.
    pub fn take_failure(&self) -> Option<S3Error> {
        self.failure
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

/// An S3 object — or several, one after the other, as one stream of bytes (a packager's
/// segments: the one to analyse after those before it) — as a `Read + Seek`, for FFmpeg's
/// custom I/O. Blocking: use it on a blocking thread (it waits on `runtime` for each
/// request).
pub struct S3Input {
    transport: Arc<S3Transport>,
    bucket: String,
    /// Each object's key, where its bytes begin in the whole, and its size.
    parts: Vec<(String, u64, u64)>,
    size: u64,
    pos: u64,
    /// Blocks kept, by where they begin in the whole; a block never crosses two objects.
    blocks: VecDeque<(u64, Bytes)>,
    runtime: tokio::runtime::Handle,
    reads: Arc<InputReads>,
}

impl S3Input {
    /// Opens the object (its first block, which also tells its size).
    pub fn open(
        transport: Arc<S3Transport>,
        bucket: &str,
        key: &str,
        runtime: tokio::runtime::Handle,
    ) -> Result<(Self, Arc<InputReads>), Box<S3Error>> {
        Self::open_all(transport, bucket, &[key.to_string()], runtime)
    }

    /// Opens the objects `keys` as one input, in that order (each one's first block, which
    /// also tells its size).
    pub fn open_all(
        transport: Arc<S3Transport>,
        bucket: &str,
        keys: &[String],
        runtime: tokio::runtime::Handle,
    ) -> Result<(Self, Arc<InputReads>), Box<S3Error>> {
        let reads = Arc::new(InputReads::default());
        let mut input = S3Input {
            transport,
            bucket: bucket.to_string(),
            parts: Vec::new(),
            size: 0,
            pos: 0,
            blocks: VecDeque::new(),
            runtime,
            reads: reads.clone(),
        };
        for key in keys {
            let start = input.size;
            let (first, size) = input.fetch(key, 0, BLOCK)?;
            input.parts.push((key.clone(), start, size));
            input.size += size;
            if !first.is_empty() {
                input.blocks.push_front((start, first));
            }
        }
        input.blocks.truncate(KEPT);
        Ok((input, reads))
    }

    /// The input's size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Bytes `start..end` of the object `key` (at least one byte is asked for: S3 refuses
    /// an empty range), and its size.
    fn fetch(&self, key: &str, start: u64, end: u64) -> Result<(Bytes, u64), Box<S3Error>> {
        let got = self.runtime.block_on(self.transport.read_range(
            &self.bucket,
            key,
            start..end.max(start + 1),
        ))?;
        self.reads.requests.fetch_add(1, Ordering::Relaxed);
        self.reads
            .bytes
            .fetch_add(got.0.len() as u64, Ordering::Relaxed);
        Ok(got)
    }

    /// The block holding `pos`, and where it begins, fetched if not kept.
    fn block(&mut self, pos: u64) -> io::Result<(u64, Bytes)> {
        let Some((key, part_start, part_size)) = self
            .parts
            .iter()
            .find(|(_, start, size)| pos >= *start && pos < start + size)
            .cloned()
        else {
            return Ok((pos, Bytes::new()));
        };
        let local = (pos - part_start) / BLOCK * BLOCK;
        let start = part_start + local;
        if let Some(i) = self.blocks.iter().position(|(s, _)| *s == start) {
            let kept = self.blocks.remove(i).map(|(_, b)| b).unwrap_or_default();
            self.blocks.push_front((start, kept.clone()));
            return Ok((start, kept));
        }
        match self.fetch(&key, local, (local + BLOCK).min(part_size)) {
            Ok((bytes, _)) => {
                self.blocks.push_front((start, bytes.clone()));
                self.blocks.truncate(KEPT);
                Ok((start, bytes))
            }
            Err(e) => {
                let message = e.to_string();
                let mut failure = self.reads.failure.lock().unwrap_or_else(|p| p.into_inner());
                failure.get_or_insert(*e);
                Err(io::Error::other(message))
            }
        }
    }
}

impl Read for S3Input {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.pos >= self.size || buf.is_empty() {
            return Ok(0);
        }
        let (start, block) = self.block(self.pos)?;
        let offset = (self.pos - start) as usize;
        let available = block.get(offset..).unwrap_or_default();
        let n = available.len().min(buf.len());
        buf[..n].copy_from_slice(&available[..n]);
        self.pos += n as u64;
        Ok(n)
    }
}

impl Seek for S3Input {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let target = match to {
            SeekFrom::Start(n) => Some(n),
            SeekFrom::End(d) => self.size.checked_add_signed(d),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
        };
        let target = target
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seek before the start"))?;
        self.pos = target;
        Ok(target)
    }
}
