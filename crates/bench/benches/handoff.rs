//! Micro-benchmarks of the handoff alone: one 1080p25 segment (25 pictures of 1920x1080
//! luma, 1 s of 48 kHz stereo) through the wire encoding, through the in-memory transport,
//! and through the S3 transport in each layout against an S3 endpoint.
//!
//!   cargo bench -p vqa-bench --bench handoff
//!
//! The S3 cases run when `AWS_ENDPOINT_URL` names an endpoint (e.g. after
//! `eval "$(scripts/emulators.sh start)"`); they use the bucket `vqa-bench`, made if missing.

use std::sync::Arc;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use vqa_core::model::{Segment, StreamId};
use vqa_core::step::hand_off_segment;
use vqa_core::testing::{stereo_block, textured_frame, video_segment, FRAME};
use vqa_core::transport::get_segment;
use vqa_core::{wire, Artifact, Transport};
use vqa_transport_mem::MemTransport;
use vqa_transport_s3::{Encoding, Granularity, S3Layout, S3Transport};

/// A 1080p25 segment with texture and noise, so compression sees something like camera
/// content.
fn segment_1080p() -> Segment {
    let mut seed = 0x2545_f491_u32;
    let lead_in = textured_frame(-FRAME, 1920, 1080, &mut seed);
    let video = (0..25)
        .map(|i| textured_frame(i * FRAME, 1920, 1080, &mut seed))
        .collect();
    Segment {
        stream: StreamId::new("bench"),
        has_audio: true,
        audio: vec![stereo_block(0, 0.5)],
        ..video_segment(1, Some(lead_in), video)
    }
}

fn codecs(c: &mut Criterion) {
    let segment = segment_1080p();
    let bytes = segment.payload_bytes();
    let artifact = Artifact::Segment(Arc::new(segment.clone()));
    let encoded = wire::encode_artifact(&artifact);
    let mut g = c.benchmark_group("wire");
    g.throughput(Throughput::Bytes(bytes));
    g.bench_function("encode 1080p segment", |b| {
        b.iter(|| wire::encode_artifact(&artifact))
    });
    g.bench_function("decode 1080p segment", |b| {
        b.iter(|| {
            wire::decode_artifact(
                "bench",
                vqa_core::transport::ArtifactName::Segment,
                &encoded,
            )
            .expect("decodes")
        })
    });
    g.bench_function("zstd-1 compress 1080p segment", |b| {
        b.iter(|| zstd::bulk::compress(&encoded, 1).expect("compresses"))
    });
    let compressed = zstd::bulk::compress(&encoded, 1).expect("compresses");
    g.bench_function("zstd decompress 1080p segment", |b| {
        b.iter(|| zstd::stream::decode_all(compressed.as_slice()).expect("decompresses"))
    });
    g.finish();
}

fn handoffs(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let segment = segment_1080p();
    let mut g = c.benchmark_group("handoff put+get+delete");
    g.throughput(Throughput::Bytes(segment.payload_bytes()));
    g.sample_size(10);

    let mem = MemTransport::new(2);
    g.bench_function("memory", |b| {
        b.to_async(&rt).iter(|| async {
            let h = hand_off_segment(&mem, segment.clone()).await.expect("put");
            get_segment(&mem, &h).await.expect("get");
            mem.delete(&h).await.expect("delete");
        })
    });

    if let Ok(endpoint) = std::env::var("AWS_ENDPOINT_URL") {
        let base = rt.block_on(async {
            let sdk = vqa_transport_s3::aws_config(Some(&endpoint)).await;
            let (client, endpoint) = vqa_transport_s3::connect(&sdk);
            let _ = client.create_bucket().bucket("vqa-bench").send().await;
            S3Transport::new(client, endpoint, S3Layout::new("vqa-bench", "bench/"))
        });
        for (granularity, encoding) in [
            (Granularity::Segment, Encoding::Raw),
            (Granularity::Segment, Encoding::Zstd),
            (Granularity::Frame, Encoding::Raw),
        ] {
            let t = base.with_layout(S3Layout {
                granularity,
                encoding,
                ..S3Layout::new("vqa-bench", "bench/")
            });
            let id = BenchmarkId::new("s3", format!("{granularity} {encoding}"));
            g.bench_function(id, |b| {
                b.to_async(&rt).iter(|| async {
                    let h = hand_off_segment(&t, segment.clone()).await.expect("put");
                    get_segment(&t, &h).await.expect("get");
                    t.delete(&h).await.expect("delete");
                })
            });
        }
    } else {
        eprintln!("handoff: AWS_ENDPOINT_URL is not set; S3 cases skipped");
    }
    g.finish();
}

criterion_group!(benches, codecs, handoffs);
criterion_main!(benches);
