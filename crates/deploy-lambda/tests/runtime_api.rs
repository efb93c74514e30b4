//! The Lambda bootstrap binaries behind the Lambda Runtime API, served here by a minimal
//! runtime endpoint (what the Lambda service, moto's host or LocalStack's executor serve):
//! each invocation's failure comes back as the error type the state machine's Retry reads.
//!
//! These are also what makes `cargo test` build the three binaries, which the emulator tests
//! in `tests/` deploy (`vqa_testkit::emulator::lambda_binary`).

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};
use vqa_core::{PipelineConfig, StreamId};
use vqa_deploy_lambda::handlers::{PERMANENT_ERROR, TRANSIENT_ERROR};
use vqa_deploy_lambda::payload::{Job, ResultsLocation};
use vqa_transport_s3::S3Layout;

/// What a function posted back for one invocation.
#[derive(Debug)]
struct Outcome {
    request_id: String,
    /// `response` or `error`.
    kind: String,
    body: Value,
}

/// Serves `events` one per `GET .../invocation/next`, in order, and reports each
/// response or error posted back. Once the events are served, `next` is left unanswered,
/// as the service does while no invocation is waiting.
fn runtime_api(events: Vec<Value>) -> (String, mpsc::Receiver<Outcome>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("runtime API server");
    let addr = server.server_addr().to_ip().expect("ip address");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut events = events.into_iter().enumerate();
        let mut held = Vec::new();
        for mut request in server.incoming_requests() {
            let url = request.url().to_string();
            if url.ends_with("/runtime/invocation/next") {
                match events.next() {
                    Some((i, event)) => {
                        let header = |k: &str, v: String| {
                            tiny_http::Header::from_bytes(k.as_bytes(), v.as_bytes())
                                .expect("header")
                        };
                        let deadline = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .expect("clock")
                            .as_millis()
                            + 60_000;
                        let response = tiny_http::Response::from_string(event.to_string())
                            .with_header(header(
                                "Lambda-Runtime-Aws-Request-Id",
                                format!("req-{i}"),
                            ))
                            .with_header(header("Lambda-Runtime-Deadline-Ms", deadline.to_string()))
                            .with_header(header(
                                "Lambda-Runtime-Invoked-Function-Arn",
                                "arn:aws:lambda:us-east-1:000000000000:function:vqa-test".into(),
                            ))
                            .with_header(header("Content-Type", "application/json".into()));
                        let _ = request.respond(response);
                    }
                    None => held.push(request),
                }
                continue;
            }
            // /2018-06-01/runtime/invocation/{id}/response or /error
            let parts: Vec<&str> = url.trim_end_matches('/').rsplit('/').take(2).collect();
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            let _ = request.respond(tiny_http::Response::empty(202));
            if let [kind, id] = parts[..] {
                let _ = tx.send(Outcome {
                    request_id: id.to_string(),
                    kind: kind.to_string(),
                    body: serde_json::from_str(&body).unwrap_or(Value::Null),
                });
            }
        }
    });
    (addr.to_string(), rx)
}

/// Starts a bootstrap binary on the runtime API at `api`, with S3 at `endpoint`.
fn start(binary: &str, api: &str, endpoint: &str) -> Child {
    Command::new(binary)
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "vqa-test")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1024")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", "us-east-1")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("{binary}: cannot start: {e}"))
}

fn job(input: &str) -> Value {
    let job = Job {
        stream: StreamId::new("clip"),
        input: input.into(),
        input_name: "clip.mp4".into(),
        config: PipelineConfig::default(),
        transport: S3Layout::new("vqa-intermediate", "vqa/run-1/"),
        results: ResultsLocation {
            bucket: "vqa-results".into(),
            key: "reports/clip.json".into(),
        },
        chunk: vqa_core::chunk::Chunk::WHOLE,
        skip: None,
        live: None,
        preroll: Vec::new(),
    };
    serde_json::to_value(job).expect("job as JSON")
}

/// A local port with nothing listening on it.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    drop(listener);
    port
}

#[test]
fn converter_reports_bad_jobs_as_failed_and_an_unreachable_store_as_retryable() {
    let events = vec![
        job("https://example.com/clip.mp4"),
        json!({"not": "a job"}),
        job("s3://vqa-intermediate/vqa/run-1/input/clip.mp4"),
    ];
    let (api, outcomes) = runtime_api(events);
    let endpoint = format!("http://127.0.0.1:{}", closed_port());
    let mut child = start(env!("CARGO_BIN_EXE_vqa-converter"), &api, &endpoint);
    let mut got = Vec::new();
    for _ in 0..3 {
        match outcomes.recv_timeout(Duration::from_secs(120)) {
            Ok(o) => got.push(o),
            Err(_) => break,
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(got.len(), 3, "the converter answered only {got:?}");
    for (i, o) in got.iter().enumerate() {
        assert_eq!(o.request_id, format!("req-{i}"), "{got:?}");
        assert_eq!(o.kind, "error", "invocation {i} should fail: {o:?}");
    }

    // Not an S3 URI: the job itself is wrong, retrying cannot help.
    assert_eq!(got[0].body["errorType"], PERMANENT_ERROR, "{:?}", got[0]);
    let message = got[0].body["errorMessage"].as_str().unwrap_or_default();
    assert!(message.contains("not an s3://bucket/key URI"), "{message}");
    // A payload that is not a job is refused before the handler runs.
    assert_ne!(got[1].body["errorType"], TRANSIENT_ERROR, "{:?}", got[1]);
    assert!(
        !got[1].body["errorMessage"]
            .as_str()
            .unwrap_or_default()
            .is_empty(),
        "{:?}",
        got[1]
    );
    // The store does not answer: worth retrying, and the message says where it looked.
    assert_eq!(got[2].body["errorType"], TRANSIENT_ERROR, "{:?}", got[2]);
    let message = got[2].body["errorMessage"].as_str().unwrap_or_default();
    assert!(
        message.contains(&endpoint) || message.contains("127.0.0.1"),
        "{message}"
    );
}
