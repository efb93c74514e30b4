//! The S3 [`Transport`]: the distributed topology's handoff and state store.
//!
//! Every artifact is an object under a deterministic key, `{prefix}{stream}/{segment:08}/
//! {artifact}` (state under `{prefix}{stream}/state/{owner}`), so a retried stage overwrites
//! its own output instead of duplicating it, and a [`Handle`] is a short `s3://` locator that
//! travels in a Step Functions payload.
//!
//! What the benchmark varies: [`Granularity`] (one object per segment, or one per picture
//! plus a manifest, as the original design uploaded frames) and [`Encoding`] (the wire form
//! as is, or zstd-compressed). Readers need neither: objects say what they are (zstd magic,
//! manifest tag), so a stage can read what another wrote with other settings.
//!
//! Requests go through the AWS SDK's standard retry strategy (exponential backoff with
//! jitter on throttling such as 503 SlowDown, on 5xx and on connection errors), and are
//! counted into the same [`HandoffMetrics`] as the in-memory transport: one `put`/`get`/
//! `delete` per S3 request, the logical payload, the bytes actually sent or received
//! (`copied_bytes`), and the time spent encoding and moving them.

mod client;

use std::fmt;
use std::io::Read;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use aws_sdk_s3::types::{Delete, ObjectIdentifier};
use bytes::Bytes;
use futures::stream::{self, StreamExt, TryStreamExt};
use serde::{Deserialize, Serialize};
use vqa_core::transport::{nanos_since, ArtifactName, HandoffCounters};
use vqa_core::{
    wire, Artifact, ArtifactKey, Handle, HandoffMetrics, StateKey, Transport, TransportError,
};

pub use client::{aws_config, connect, Endpoint, S3Error, MAX_ATTEMPTS};

/// How a segment is laid out in the bucket.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Granularity {
    /// One object per segment (frames, audio and metadata together).
    #[default]
    Segment,
    /// One object per picture plus a manifest with the rest: the original design's layout.
    Frame,
}

/// How objects are encoded.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Encoding {
    /// The wire form (postcard) and raw luma planes.
    #[default]
    Raw,
    /// The same, compressed with zstd (level 1: fast, lossless).
    Zstd,
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "segment" => Ok(Granularity::Segment),
            "frame" => Ok(Granularity::Frame),
            _ => Err(format!("unknown granularity {s:?}: use segment or frame")),
        }
    }
}

impl FromStr for Encoding {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "raw" => Ok(Encoding::Raw),
            "zstd" => Ok(Encoding::Zstd),
            _ => Err(format!("unknown encoding {s:?}: use raw or zstd")),
        }
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Granularity::Segment => "segment",
            Granularity::Frame => "frame",
        })
    }
}

impl fmt::Display for Encoding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Encoding::Raw => "raw",
            Encoding::Zstd => "zstd",
        })
    }
}

/// Where and how artifacts are stored: small and serialisable, so it travels in the Step
/// Functions payload and every stage of one execution uses the same settings.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct S3Layout {
    pub bucket: String,
    /// Key prefix, e.g. `vqa/`; empty for none.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub granularity: Granularity,
    #[serde(default)]
    pub encoding: Encoding,
}

impl S3Layout {
    pub fn new(bucket: impl Into<String>, prefix: impl Into<String>) -> Self {
        S3Layout {
            bucket: bucket.into(),
            prefix: prefix.into(),
            granularity: Granularity::default(),
            encoding: Encoding::default(),
        }
    }

    /// The object key of an artifact.
    pub fn artifact_key(&self, key: &ArtifactKey) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// The `s3://` locator of an artifact: what a [`Handle`] carries.
    pub fn location(&self, key: &ArtifactKey) -> String {
        format!("s3://{}/{}", self.bucket, self.artifact_key(key))
    }

    /// The object key of a piece of state.
    pub fn state_key(&self, key: &StateKey) -> String {
        format!("{}{}", self.prefix, key)
    }

    /// Where a client uploads a stream's input for the converter.
    pub fn input_key(&self, stream: &vqa_core::StreamId, file_name: &str) -> String {
        format!("{}{}/input/{}", self.prefix, stream, file_name)
    }
}

/// Pictures fetched or stored at once for one per-frame segment.
const FRAME_CONCURRENCY: usize = 8;
/// zstd level: 1 is several hundred MB/s per core and still halves typical luma planes.
const ZSTD_LEVEL: i32 = 1;
const ZSTD_MAGIC: [u8; 4] = [0x28, 0xB5, 0x2F, 0xFD];

/// The most an object may decode to (2 GiB: a second of 4K luma at 120 frames per second is
/// 1 GiB). A few kilobytes of zstd can claim gigabytes; past this an object is refused as
/// malformed rather than exhausting the function's memory.
pub const MAX_OBJECT_BYTES: u64 = 2 << 30;

/// An object as stored: zstd frames (by their magic) are decompressed, anything else is
/// returned as is; `key` names the object in errors. Refuses what decodes past
/// [`MAX_OBJECT_BYTES`].
pub fn decode_object(key: &str, bytes: Bytes) -> Result<Bytes, TransportError> {
    decode_object_within(key, bytes, MAX_OBJECT_BYTES)
}

/// [`decode_object`] with another bound on the decoded size (the fuzz targets use a small
/// one).
pub fn decode_object_within(key: &str, bytes: Bytes, limit: u64) -> Result<Bytes, TransportError> {
    if !bytes.starts_with(&ZSTD_MAGIC) {
        return Ok(bytes);
    }
    let fail = |reason: String| TransportError::Decode {
        key: key.to_string(),
        reason: format!("zstd: {reason}"),
    };
    let too_large = || {
        fail(format!(
            "decodes to more than {limit} bytes; not an object vqa wrote"
        ))
    };
    // A frame that declares its size is refused before anything is decoded; one that
    // declares none, or lies, is stopped by the bounded read below.
    if let Ok(Some(declared)) = zstd::zstd_safe::get_frame_content_size(&bytes) {
        if declared > limit {
            return Err(too_large());
        }
    }
    let mut decoder = zstd::stream::read::Decoder::with_buffer(bytes.as_ref())
        .map_err(|e| fail(e.to_string()))?;
    let mut out = Vec::new();
    (&mut decoder)
        .take(limit.saturating_add(1))
        .read_to_end(&mut out)
        .map_err(|e| fail(e.to_string()))?;
    if out.len() as u64 > limit {
        return Err(too_large());
    }
    Ok(Bytes::from(out))
}

/// Handoff through an S3 bucket (AWS, or an emulator such as moto or LocalStack).
#[derive(Clone)]
pub struct S3Transport {
    client: aws_sdk_s3::Client,
    endpoint: Endpoint,
    layout: S3Layout,
    counters: Arc<HandoffCounters>,
}

impl S3Transport {
    pub fn new(client: aws_sdk_s3::Client, endpoint: Endpoint, layout: S3Layout) -> Self {
        S3Transport {
            client,
            endpoint,
            layout,
            counters: Arc::new(HandoffCounters::default()),
        }
    }

    /// The same client with another layout (one execution's settings) and counters of its
    /// own, so a warm function reports each invocation's handoff alone.
    pub fn with_layout(&self, layout: S3Layout) -> Self {
        S3Transport {
            layout,
            counters: Arc::new(HandoffCounters::default()),
            ..self.clone()
        }
    }

    pub fn layout(&self) -> &S3Layout {
        &self.layout
    }

    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    fn err(&self, e: S3Error) -> TransportError {
        match e {
            S3Error::Unreachable { .. } => TransportError::Unavailable(e.to_string()),
            _ => TransportError::Backend(e.to_string()),
        }
    }

    async fn put_object(&self, key: &str, body: Bytes) -> Result<(), TransportError> {
        client::put(&self.client, &self.endpoint, &self.layout.bucket, key, body)
            .await
            .map_err(|e| self.err(e))
    }

    async fn get_object(&self, key: &str) -> Result<Option<Bytes>, TransportError> {
        client::get(&self.client, &self.endpoint, &self.layout.bucket, key)
            .await
            .map_err(|e| self.err(e))
    }

    fn encode(&self, bytes: Bytes) -> Bytes {
        match self.layout.encoding {
            Encoding::Raw => bytes,
            // Compressing a buffer in memory cannot fail.
            Encoding::Zstd => Bytes::from(
                zstd::bulk::compress(&bytes, ZSTD_LEVEL).expect("in-memory zstd compression"),
            ),
        }
    }

    fn decode(&self, key: &str, bytes: Bytes) -> Result<Bytes, TransportError> {
        decode_object(key, bytes)
    }

    /// Stores a segment as a manifest plus one object per picture. Pictures go first, so a
    /// reader that finds the manifest finds every picture it names.
    async fn put_frames(
        &self,
        base: &str,
        segment: &vqa_core::Segment,
    ) -> Result<HandoffMetrics, TransportError> {
        let t = Instant::now();
        let (manifest, planes) = wire::split_segment(segment);
        let frame_bytes: u64 = planes.iter().map(|p| p.len() as u64).sum();
        let planes: Vec<Bytes> = planes.into_iter().map(|p| self.encode(p)).collect();
        let manifest = self.encode(manifest);
        let encode_nanos = nanos_since(t);
        let sent = manifest.len() as u64 + planes.iter().map(|p| p.len() as u64).sum::<u64>();
        let requests = planes.len() as u64 + 1;

        let t = Instant::now();
        stream::iter(planes.into_iter().enumerate())
            .map(|(i, plane)| async move { self.put_object(&frame_key(base, i), plane).await })
            .buffer_unordered(FRAME_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;
        self.put_object(base, manifest).await?;
        Ok(HandoffMetrics {
            puts: requests,
            copied_bytes: sent,
            frame_bytes_copied: frame_bytes,
            encode_nanos,
            transfer_nanos: nanos_since(t),
            ..Default::default()
        })
    }

    async fn get_frames(
        &self,
        base: &str,
        manifest: &[u8],
        m: &mut HandoffMetrics,
    ) -> Result<vqa_core::Segment, TransportError> {
        let (segment, n) = wire::manifest_planes(base, manifest)?;
        let t = Instant::now();
        let raw: Vec<Bytes> = stream::iter(0..n)
            .map(|i| async move {
                let key = frame_key(base, i);
                match self.get_object(&key).await? {
                    Some(b) => Ok(b),
                    None => Err(TransportError::NotFound(format!("{}/{key}", self.bucket()))),
                }
            })
            .buffered(FRAME_CONCURRENCY)
            .try_collect()
            .await?;
        m.transfer_nanos += nanos_since(t);
        m.gets += n as u64;
        m.copied_bytes += raw.iter().map(|p| p.len() as u64).sum::<u64>();
        let t = Instant::now();
        let planes = raw
            .into_iter()
            .map(|p| self.decode(base, p))
            .collect::<Result<Vec<_>, _>>()?;
        m.frame_bytes_copied += planes.iter().map(|p| p.len() as u64).sum::<u64>();
        let segment = wire::join_segment(base, segment, planes)?;
        m.encode_nanos += nanos_since(t);
        Ok(segment)
    }

    /// Fetches an artifact; a per-picture segment's pictures only when `pictures`.
    async fn fetch(&self, handle: &Handle, pictures: bool) -> Result<Artifact, TransportError> {
        let object = self.object_key(handle);
        let t = Instant::now();
        let body = self
            .get_object(&object)
            .await?
            .ok_or_else(|| TransportError::NotFound(format!("s3://{}/{object}", self.bucket())))?;
        let mut m = HandoffMetrics {
            gets: 1,
            copied_bytes: body.len() as u64,
            transfer_nanos: nanos_since(t),
            ..Default::default()
        };
        let t = Instant::now();
        let bytes = self.decode(&object, body)?;
        let artifact = if wire::is_manifest(&bytes) {
            m.encode_nanos += nanos_since(t);
            let segment = if pictures {
                self.get_frames(&object, &bytes, &mut m).await?
            } else {
                wire::manifest_planes(&object, &bytes)?.0
            };
            Artifact::Segment(Arc::new(segment))
        } else {
            let a = wire::decode_artifact(&object, handle.key.name, &bytes)?;
            if let Artifact::Segment(s) = &a {
                m.frame_bytes_copied += s
                    .lead_in
                    .iter()
                    .chain(&s.video)
                    .map(|f| f.luma.len() as u64)
                    .sum::<u64>();
            }
            m.encode_nanos += nanos_since(t);
            a
        };
        m.payload_bytes_got = payload_bytes(&artifact, Some(&bytes));
        self.counters.add(m);
        Ok(artifact)
    }

    /// Deletes one object and counts the request (timed from `started`).
    async fn delete_counted(&self, object: &str, started: Instant) -> Result<(), TransportError> {
        client::delete(&self.client, &self.endpoint, self.bucket(), object)
            .await
            .map_err(|e| self.err(e))?;
        self.counters.add(HandoffMetrics {
            deletes: 1,
            transfer_nanos: nanos_since(started),
            ..Default::default()
        });
        Ok(())
    }

    fn bucket(&self) -> &str {
        &self.layout.bucket
    }

    /// The object key a handle names: its `s3://` location when it has one (the writer's
    /// layout), else this transport's layout.
    fn object_key(&self, handle: &Handle) -> String {
        handle
            .location
            .strip_prefix("s3://")
            .and_then(|rest| rest.split_once('/'))
            .filter(|(bucket, _)| *bucket == self.bucket())
            .map(|(_, key)| key.to_string())
            .unwrap_or_else(|| self.layout.artifact_key(&handle.key))
    }

    /// Writes an object outside the handoff (an uploaded input, a report): not counted.
    pub async fn write_object(
        &self,
        bucket: &str,
        key: &str,
        body: Bytes,
        content_type: &str,
    ) -> Result<(), S3Error> {
        client::put_typed(
            &self.client,
            &self.endpoint,
            bucket,
            key,
            body,
            content_type,
        )
        .await
    }

    /// Uploads a file outside the handoff (a stream's input), streaming it from disk.
    pub async fn upload_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
    ) -> Result<(), S3Error> {
        client::upload_file(&self.client, &self.endpoint, bucket, key, path).await
    }

    /// Deletes an object outside the handoff (a live stream's chunk file, once analysed).
    pub async fn delete_object(&self, bucket: &str, key: &str) -> Result<(), S3Error> {
        client::delete(&self.client, &self.endpoint, bucket, key).await
    }

    /// Reads an object outside the handoff (a report); `None` when there is none.
    pub async fn read_object(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, S3Error> {
        client::get(&self.client, &self.endpoint, bucket, key).await
    }

    /// Bytes `range` of an object outside the handoff (a chunk's converter reads only its
    /// part of the input), and the object's whole size.
    pub async fn read_range(
        &self,
        bucket: &str,
        key: &str,
        range: std::ops::Range<u64>,
    ) -> Result<(Bytes, u64), S3Error> {
        client::get_range(&self.client, &self.endpoint, bucket, key, range).await
    }

    /// Downloads an object to a file outside the handoff (the converter's input).
    pub async fn download_file(
        &self,
        bucket: &str,
        key: &str,
        path: &std::path::Path,
    ) -> Result<(), S3Error> {
        client::download_file(&self.client, &self.endpoint, bucket, key, path).await
    }

    /// The keys under `prefix` of a bucket outside the handoff (a packager's segments).
    pub async fn list_keys(&self, bucket: &str, prefix: &str) -> Result<Vec<String>, S3Error> {
        client::list(&self.client, &self.endpoint, bucket, prefix).await
    }

    /// Checks that the bucket exists and is reachable with these credentials.
    pub async fn check_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        client::head_bucket(&self.client, &self.endpoint, bucket).await
    }
}

fn frame_key(base: &str, i: usize) -> String {
    // `base` ends in `/segment`: pictures sit beside it, in `frames/`.
    let dir = base.strip_suffix("segment").unwrap_or(base);
    format!("{dir}frames/{i:04}")
}

/// The logical size of an artifact, the same figure every transport reports for it.
fn payload_bytes(artifact: &Artifact, encoded: Option<&Bytes>) -> u64 {
    match (artifact, encoded) {
        (Artifact::Segment(s), _) => s.payload_bytes(),
        (_, Some(e)) => e.len() as u64,
        (a, None) => wire::encode_artifact(a).len() as u64,
    }
}

#[async_trait]
impl Transport for S3Transport {
    async fn put(&self, key: ArtifactKey, artifact: Artifact) -> Result<Handle, TransportError> {
        let object = self.layout.artifact_key(&key);
        let mut m = match (&artifact, self.layout.granularity) {
            (Artifact::Segment(s), Granularity::Frame) => self.put_frames(&object, s).await?,
            _ => {
                let t = Instant::now();
                let wire_form = wire::encode_artifact(&artifact);
                let frame_bytes = match &artifact {
                    Artifact::Segment(s) => s
                        .lead_in
                        .iter()
                        .chain(&s.video)
                        .map(|f| f.luma.len() as u64)
                        .sum(),
                    Artifact::Findings(_) => 0,
                };
                let body = self.encode(wire_form.clone());
                let encode_nanos = nanos_since(t);
                let sent = body.len() as u64;
                let t = Instant::now();
                self.put_object(&object, body).await?;
                HandoffMetrics {
                    puts: 1,
                    payload_bytes_put: payload_bytes(&artifact, Some(&wire_form)),
                    copied_bytes: sent,
                    frame_bytes_copied: frame_bytes,
                    encode_nanos,
                    transfer_nanos: nanos_since(t),
                    ..Default::default()
                }
            }
        };
        if m.payload_bytes_put == 0 {
            m.payload_bytes_put = payload_bytes(&artifact, None);
        }
        self.counters.add(m);
        Ok(Handle {
            location: self.layout.location(&key),
            key,
        })
    }

    async fn get(&self, handle: &Handle) -> Result<Artifact, TransportError> {
        self.fetch(handle, true).await
    }

    /// Per-picture layout: the manifest alone (timestamps, flags, audio), one request.
    async fn get_without_pictures(&self, handle: &Handle) -> Result<Artifact, TransportError> {
        self.fetch(handle, false).await
    }

    async fn delete(&self, handle: &Handle) -> Result<(), TransportError> {
        let object = self.object_key(handle);
        let t = Instant::now();
        if handle.key.name == ArtifactName::Segment && self.layout.granularity == Granularity::Frame
        {
            // One DeleteObjects request for the manifest and its pictures; the count comes
            // from the manifest itself (a segment has at most a few hundred pictures).
            let Some(manifest) = self.get_object(&object).await? else {
                return Ok(()); // already deleted: deleting is idempotent
            };
            let manifest = self.decode(&object, manifest)?;
            let (_, n) = wire::manifest_planes(&object, &manifest)?;
            let keys = std::iter::once(object.clone()).chain((0..n).map(|i| frame_key(&object, i)));
            let objects = keys
                .map(|k| ObjectIdentifier::builder().key(k).build())
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| TransportError::Backend(e.to_string()))?;
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| TransportError::Backend(e.to_string()))?;
            client::delete_many(&self.client, &self.endpoint, self.bucket(), delete)
                .await
                .map_err(|e| self.err(e))?;
            self.counters.add(HandoffMetrics {
                gets: 1,
                deletes: 1,
                transfer_nanos: nanos_since(t),
                ..Default::default()
            });
            return Ok(());
        }
        self.delete_counted(&object, t).await
    }

    async fn load_state(&self, key: &StateKey) -> Result<Option<bytes::Bytes>, TransportError> {
        let object = self.layout.state_key(key);
        let t = Instant::now();
        let body = self.get_object(&object).await?;
        let transfer_nanos = nanos_since(t);
        let sent = body.as_ref().map_or(0, |b| b.len() as u64);
        let t = Instant::now();
        let state = body.map(|b| self.decode(&object, b)).transpose()?;
        self.counters.add(HandoffMetrics {
            state_loads: 1,
            payload_bytes_got: state.as_ref().map_or(0, |b| b.len() as u64),
            copied_bytes: sent,
            encode_nanos: nanos_since(t),
            transfer_nanos,
            ..Default::default()
        });
        Ok(state)
    }

    async fn store_state(&self, key: &StateKey, state: bytes::Bytes) -> Result<(), TransportError> {
        let object = self.layout.state_key(key);
        let payload = state.len() as u64;
        let t = Instant::now();
        let body = self.encode(state);
        let encode_nanos = nanos_since(t);
        let sent = body.len() as u64;
        let t = Instant::now();
        self.put_object(&object, body).await?;
        self.counters.add(HandoffMetrics {
            state_stores: 1,
            payload_bytes_put: payload,
            copied_bytes: sent,
            encode_nanos,
            transfer_nanos: nanos_since(t),
            ..Default::default()
        });
        Ok(())
    }

    async fn clear_state(&self, key: &StateKey) -> Result<(), TransportError> {
        let object = self.layout.state_key(key);
        let t = Instant::now();
        self.delete_counted(&object, t).await
    }

    fn metrics(&self) -> HandoffMetrics {
        self.counters.snapshot()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_documented_layout() {
        let layout = S3Layout::new("b", "vqa/");
        let stream = vqa_core::StreamId::new("cam1");
        assert_eq!(
            layout.artifact_key(&ArtifactKey::segment(&stream, 7)),
            "vqa/cam1/00000007/segment"
        );
        assert_eq!(
            layout.artifact_key(&ArtifactKey::findings_part(&stream, 7, 2)),
            "vqa/cam1/00000007/findings-2"
        );
        assert_eq!(
            layout.state_key(&StateKey::new(&stream, "aggregator")),
            "vqa/cam1/state/aggregator"
        );
        assert_eq!(
            frame_key("vqa/cam1/00000007/segment", 12),
            "vqa/cam1/00000007/frames/0012"
        );
        assert_eq!(layout.input_key(&stream, "a.mp4"), "vqa/cam1/input/a.mp4");
    }

    /// A zstd object of a few kilobytes can decode to gigabytes (fuzzing found
    /// `decode_all` believing it): past the bound it is refused, whether its frame declares
    /// its size or not.
    #[test]
    fn objects_decoding_past_the_bound_are_refused() {
        use std::io::Write;
        let zeros = vec![0u8; 4 << 20];
        let declared = zstd::bulk::compress(&zeros, 1).unwrap();
        let mut streamed = Vec::new();
        let mut encoder = zstd::stream::write::Encoder::new(&mut streamed, 1).unwrap();
        encoder.write_all(&zeros).unwrap();
        encoder.finish().unwrap();
        assert_eq!(
            zstd::zstd_safe::get_frame_content_size(&streamed).ok(),
            Some(None),
            "a streamed frame declares no size"
        );
        for object in [declared, streamed] {
            assert!(object.len() < 4096, "{} bytes", object.len());
            let e = decode_object_within("k", Bytes::from(object.clone()), 1 << 20).unwrap_err();
            assert!(e.to_string().contains("more than 1048576 bytes"), "{e}");
            let whole = decode_object_within("k", Bytes::from(object), 4 << 20).unwrap();
            assert_eq!(whole.len(), 4 << 20);
        }
        let raw = Bytes::from_static(b"\x08\x03not zstd");
        assert_eq!(decode_object("k", raw.clone()).unwrap(), raw);
    }

    #[test]
    fn options_parse_and_print_the_same_names() {
        for g in [Granularity::Segment, Granularity::Frame] {
            assert_eq!(g.to_string().parse::<Granularity>(), Ok(g));
        }
        for e in [Encoding::Raw, Encoding::Zstd] {
            assert_eq!(e.to_string().parse::<Encoding>(), Ok(e));
        }
        assert!("frames".parse::<Granularity>().is_err());
    }
}

/// Splits `s3://bucket/key` into bucket and key (both non-empty).
pub fn parse_s3_uri(uri: &str) -> Option<(&str, &str)> {
    let (bucket, key) = uri.strip_prefix("s3://")?.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty()).then_some((bucket, key))
}

#[cfg(test)]
mod uri_tests {
    use super::parse_s3_uri;

    #[test]
    fn s3_uris_split_into_bucket_and_key() {
        assert_eq!(
            parse_s3_uri("s3://b/vqa/x/input/a.mp4"),
            Some(("b", "vqa/x/input/a.mp4"))
        );
        assert_eq!(parse_s3_uri("s3://b/"), None);
        assert_eq!(parse_s3_uri("https://b/k"), None);
    }
}
