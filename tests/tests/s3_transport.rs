//! The S3 transport and state store against a real S3-protocol server (the emulator the
//! test starts, or `VQA_TEST_ENDPOINT`).

use std::sync::Arc;

use bytes::Bytes;
use vqa_core::model::{Segment, StreamId};
use vqa_core::step::hand_off_segment;
use vqa_core::transport::get_segment;
use vqa_core::{Artifact, ArtifactKey, Handle, StateKey, Transport, TransportError};
use vqa_testkit::emulator::{list_keys, Emulator};
use vqa_transport_mem::MemTransport;
use vqa_transport_s3::{Encoding, Granularity, S3Layout};

fn segment(stream: &str, index: u64) -> Segment {
    vqa_core::testing::full_segment(stream, index)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_round_trip_exactly_in_every_layout_and_are_counted_like_memory() {
    let emulator = Emulator::shared();
    let base = emulator.transport("vqa-transport-test", "t/").await;
    let original = segment("cam", 3);

    // The in-memory transport's counts for the same handoff: the reference.
    let mem = MemTransport::new(2);
    let h = hand_off_segment(&mem, original.clone()).await.unwrap();
    get_segment(&mem, &h).await.unwrap();
    let mem_counts = mem.metrics();

    let mut copied = Vec::new();
    for granularity in [Granularity::Segment, Granularity::Frame] {
        for encoding in [Encoding::Raw, Encoding::Zstd] {
            let layout = S3Layout {
                bucket: "vqa-transport-test".into(),
                prefix: format!("t/{granularity}-{encoding}/"),
                granularity,
                encoding,
            };
            let t = base.with_layout(layout.clone());
            let handle = hand_off_segment(&t, original.clone()).await.unwrap();
            assert_eq!(
                handle.location,
                format!("s3://vqa-transport-test/t/{granularity}-{encoding}/cam/00000003/segment")
            );
            // The handle is what travels in a Step Functions payload: small.
            assert!(serde_json::to_vec(&handle).unwrap().len() < 200);
            let back = get_segment(&t, &handle).await.unwrap();
            assert_eq!(
                *back, original,
                "{granularity}/{encoding} changed the segment"
            );

            let m = t.metrics();
            let objects = if granularity == Granularity::Frame {
                26 + 1 // lead-in and 25 pictures, and the manifest
            } else {
                1
            };
            assert_eq!(
                (m.puts, m.gets),
                (objects, objects),
                "{granularity}/{encoding}"
            );
            assert_eq!(m.payload_bytes_put, mem_counts.payload_bytes_put);
            assert_eq!(m.payload_bytes_got, mem_counts.payload_bytes_got);
            let luma: u64 = 26 * 80 * 36;
            assert_eq!(
                m.frame_bytes_copied,
                2 * luma,
                "pictures sent once, fetched once"
            );
            copied.push((granularity, encoding, m.copied_bytes));

            // Consumers that read no pixels: per picture, the manifest alone is fetched.
            let before = t.metrics().gets;
            let sparse = vqa_core::transport::get_segment_without_pictures(&t, &handle)
                .await
                .unwrap();
            assert_eq!(t.metrics().gets - before, 1, "one request in either layout");
            assert_eq!(sparse.audio, original.audio);
            assert!(sparse
                .video
                .iter()
                .zip(&original.video)
                .all(|(a, b)| a.pts == b.pts && a.corrupt == b.corrupt && a.width == b.width));
            if granularity == Granularity::Frame {
                assert!(sparse.video.iter().all(|f| f.luma.is_empty()));
            } else {
                assert_eq!(*sparse, original, "one object: all of it comes anyway");
            }

            let keys = list_keys(&t, "vqa-transport-test", &layout.prefix).await;
            assert_eq!(keys.len() as u64, objects);
            t.delete(&handle).await.unwrap();
            let left = list_keys(&t, "vqa-transport-test", &layout.prefix).await;
            assert!(left.is_empty(), "delete left {left:?}");
            assert!(matches!(
                t.get(&handle).await,
                Err(TransportError::NotFound(_))
            ));
        }
    }
    // Compression moves fewer bytes than raw, whatever the granularity.
    for g in [Granularity::Segment, Granularity::Frame] {
        let bytes = |e| {
            copied
                .iter()
                .find(|(cg, ce, _)| *cg == g && *ce == e)
                .unwrap()
                .2
        };
        assert!(bytes(Encoding::Zstd) < bytes(Encoding::Raw), "{copied:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn state_and_findings_round_trip_and_a_rewrite_replaces_not_duplicates() {
    let emulator = Emulator::shared();
    let t = emulator.transport("vqa-state-test", "s/").await;
    let key = StateKey::new(&StreamId::new("cam"), "aggregator");
    assert_eq!(t.load_state(&key).await.unwrap(), None);
    t.store_state(&key, Bytes::from_static(b"one"))
        .await
        .unwrap();
    t.store_state(&key, Bytes::from_static(b"two"))
        .await
        .unwrap();
    assert_eq!(
        t.load_state(&key).await.unwrap().as_deref(),
        Some(&b"two"[..])
    );
    t.clear_state(&key).await.unwrap();
    assert_eq!(t.load_state(&key).await.unwrap(), None);

    // A retried detector writes the same key again: one object, the latest findings.
    let report = vqa_core::stage::detect(&[], &segment("cam", 0));
    let key = ArtifactKey::findings_part(&StreamId::new("cam"), 0, 1);
    for _ in 0..2 {
        t.put(key.clone(), Artifact::Findings(Arc::new(report.clone())))
            .await
            .unwrap();
    }
    let keys = list_keys(&t, "vqa-state-test", "s/cam/").await;
    assert_eq!(keys, vec!["s/cam/00000000/findings-1".to_string()]);
    let m = t.metrics();
    assert_eq!((m.state_stores, m.state_loads, m.puts), (2, 3, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_name_the_bucket_or_endpoint_and_what_to_do() {
    let emulator = Emulator::shared();
    let t = emulator.transport("vqa-errors-test", "e/").await;

    let wrong = t.with_layout(S3Layout::new("no-such-bucket", "e/"));
    let err = hand_off_segment(&wrong, segment("cam", 0))
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("bucket no-such-bucket does not exist") && err.contains("VQA_BUCKET"),
        "{err}"
    );
    assert!(!err.contains('\n'), "one line: {err}");

    let missing = Handle {
        key: ArtifactKey::segment(&StreamId::new("cam"), 9),
        location: String::new(),
    };
    let err = t.get(&missing).await.unwrap_err();
    assert!(matches!(err, TransportError::NotFound(ref k) if k.contains("cam/00000009/segment")));

    // Nothing listens on port 9: the error names the endpoint, and says it is transient.
    let dead = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url("http://127.0.0.1:9")
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "t",
        ))
        .retry_config(aws_config::retry::RetryConfig::standard().with_max_attempts(2))
        .load()
        .await;
    let (client, endpoint) = vqa_transport_s3::connect(&dead);
    let unreachable =
        vqa_transport_s3::S3Transport::new(client, endpoint, S3Layout::new("b", "e/"));
    let err = hand_off_segment(&unreachable, segment("cam", 0))
        .await
        .unwrap_err();
    assert!(matches!(err, TransportError::Unavailable(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.contains("cannot reach S3 at http://127.0.0.1:9") && !text.contains('\n'),
        "{text}"
    );
}

/// A stand-in S3 endpoint that answers the first `throttled` requests with 503 SlowDown (as
/// S3 does under load, and no emulator can be made to) and the rest with success. Returns
/// its endpoint and the number of requests it has seen.
fn throttling_endpoint(throttled: usize) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{BufRead, BufReader, Read, Write};
    use std::sync::atomic::Ordering;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let mut reader = BufReader::new(stream);
            let mut length = 0usize;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                let lower = line.to_ascii_lowercase();
                if let Some(v) = lower.strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0u8; length];
            let _ = reader.read_exact(&mut body);
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            let response = if n <= throttled {
                let xml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Error><Code>SlowDown</Code>\
                           <Message>Please reduce your request rate.</Message><RequestId>r</RequestId></Error>";
                format!(
                    "HTTP/1.1 503 Slow Down\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{xml}",
                    xml.len()
                )
            } else {
                "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    .to_string()
            };
            let mut stream = reader.into_inner();
            let _ = stream.write_all(response.as_bytes());
        }
    });
    (format!("http://127.0.0.1:{port}"), seen)
}

async fn transport_at(endpoint: &str) -> vqa_transport_s3::S3Transport {
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_s3::config::Credentials::new(
            "test", "test", None, None, "t",
        ))
        .retry_config(
            aws_config::retry::RetryConfig::standard()
                .with_max_attempts(vqa_transport_s3::MAX_ATTEMPTS),
        )
        .load()
        .await;
    let (client, endpoint) = vqa_transport_s3::connect(&sdk);
    vqa_transport_s3::S3Transport::new(client, endpoint, S3Layout::new("b", "t/"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_is_retried_with_backoff_and_reported_when_it_persists() {
    use std::sync::atomic::Ordering;
    let report = vqa_core::stage::detect(&[], &segment("cam", 0));
    let key = ArtifactKey::findings(&StreamId::new("cam"), 0);

    // Two SlowDowns, then success: the put succeeds on its third attempt.
    let (endpoint, seen) = throttling_endpoint(2);
    let t = transport_at(&endpoint).await;
    let started = std::time::Instant::now();
    t.put(key.clone(), Artifact::Findings(Arc::new(report.clone())))
        .await
        .expect("retried past the throttling");
    assert_eq!(seen.load(Ordering::SeqCst), 3);
    assert_eq!(
        t.metrics().puts,
        1,
        "one logical PUT, however many attempts"
    );
    // Backoff, not a tight loop (the standard strategy waits with jitter between attempts).
    assert!(started.elapsed() > std::time::Duration::from_millis(10));

    // Throttled throughout: every attempt is made, then one line says why.
    let (endpoint, seen) = throttling_endpoint(usize::MAX);
    let t = transport_at(&endpoint).await;
    let err = t
        .put(key, Artifact::Findings(Arc::new(report)))
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        seen.load(Ordering::SeqCst),
        vqa_transport_s3::MAX_ATTEMPTS as usize
    );
    assert!(
        err.contains("SlowDown") || err.contains("reduce your request rate"),
        "{err}"
    );
    assert!(!err.contains('\n'), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_read_in_ranges_reads_as_the_file_with_seeks_anywhere() {
    use std::io::{Read, Seek, SeekFrom};
    use vqa_deploy_lambda::input::S3Input;
    let emulator = Emulator::shared();
    let t = Arc::new(emulator.transport("vqa-transport-test", "ranges/").await);
    t.check_bucket("vqa-transport-test").await.ok();
    // 2.4 MiB of a pattern: three blocks, the last one short.
    let data: Vec<u8> = (0..(19u32 << 17))
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("input.bin");
    std::fs::write(&path, &data).unwrap();
    t.upload_file("vqa-transport-test", "ranges/input.bin", &path)
        .await
        .unwrap();
    let runtime = tokio::runtime::Handle::current();
    let (t2, expected) = (t.clone(), data.clone());
    let (reads, requests) = tokio::task::spawn_blocking(move || {
        let (mut input, reads) =
            S3Input::open(t2, "vqa-transport-test", "ranges/input.bin", runtime).unwrap();
        assert_eq!(input.size(), expected.len() as u64);
        // Everything, in odd-sized reads.
        let mut all = Vec::new();
        let mut buf = vec![0u8; 100_003];
        loop {
            let n = input.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            all.extend_from_slice(&buf[..n]);
        }
        assert!(all == expected, "the whole object, read in pieces");
        // Seeks from the end, back to the start and across a block boundary.
        for (to, at) in [
            (SeekFrom::End(-10), expected.len() - 10),
            (SeekFrom::Start(0), 0),
            (SeekFrom::Start((1 << 20) - 3), (1 << 20) - 3),
        ] {
            assert_eq!(input.seek(to).unwrap(), at as u64);
            let mut six = [0u8; 6];
            input
                .read_exact(&mut six[..6.min(expected.len() - at)])
                .unwrap();
            assert_eq!(
                &six[..6.min(expected.len() - at)],
                &expected[at..(at + 6).min(expected.len())]
            );
        }
        assert!(input.seek(SeekFrom::Current(-(1 << 40))).is_err());
        let requests = reads.requests.load(std::sync::atomic::Ordering::Relaxed);
        (
            reads.bytes.load(std::sync::atomic::Ordering::Relaxed),
            requests,
        )
    })
    .await
    .unwrap();
    // Each 1 MiB block fetched once (the kept blocks serve the seeks back), nothing more.
    assert_eq!(requests, 3);
    assert_eq!(reads, data.len() as u64);
}
