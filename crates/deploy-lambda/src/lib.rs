//! The distributed topology: the stages as AWS Lambda functions under a Step Functions
//! state machine, handing artifacts over through S3 (`vqa-transport-s3`).
//!
//! - [`handlers`]: the converter, detector and aggregator handlers' bodies, thin adapters
//!   around the same stage code the single process runs; `src/bin/` connects each to the
//!   Lambda runtime (`bootstrap` binaries, laid out by `scripts/build-lambdas.sh` the way
//!   `cargo lambda build` does).
//! - [`state_machine`]: the state machine definition, generated from the pipeline
//!   configuration.
//! - [`payload`]: what travels in Step Functions payloads.
//! - [`input`]: the converter's input read from S3 in ranges.
//! - [`packager`]: segments an existing packager writes into a bucket, each one chunk of
//!   its stream.
//!
//! The client that deploys the state machine and starts executions is `vqa-sfn-client`;
//! notifications go through `vqa-notify`. With the default `runtime` feature off (as the
//! client depends on this crate), neither `lambda_runtime` nor the binaries are built.

pub mod handlers;
pub mod input;
pub mod packager;
pub mod payload;
pub mod state_machine;

/// Sets up logging for a handler binary: plain lines to stderr (CloudWatch adds times),
/// level from `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .with_writer(std::io::stderr)
        .try_init();
}

/// The S3 transport a handler starts with: configuration from the function's environment
/// (credentials, region, `AWS_ENDPOINT_URL` for an emulator); each invocation takes its
/// bucket and layout from its payload.
pub async fn handler_transport() -> vqa_transport_s3::S3Transport {
    use_bundled_certificates();
    let config = vqa_transport_s3::aws_config(None).await;
    let (client, endpoint) = vqa_transport_s3::connect(&config);
    let bucket = std::env::var("VQA_BUCKET").unwrap_or_default();
    let prefix = std::env::var("VQA_PREFIX").unwrap_or_else(|_| "vqa/".into());
    vqa_transport_s3::S3Transport::new(
        client,
        endpoint,
        vqa_transport_s3::S3Layout::new(bucket, prefix),
    )
}

/// The CA certificates a self-contained bundle carries (`ca-certificates.crt` beside
/// `bootstrap`, scripts/build-lambdas.sh), used for HTTPS where the root has none of its own
/// and `SSL_CERT_FILE` names none that exists: a handler then starts in a root holding nothing but its
/// bundle. Called first in a handler's `main`, before anything reads the environment.
fn use_bundled_certificates() {
    let named = std::env::var_os("SSL_CERT_FILE").map(std::path::PathBuf::from);
    if named.is_some_and(|f| f.is_file()) || std::path::Path::new("/etc/ssl/certs").exists() {
        return;
    }
    // The task root (Lambda's /var/task), else the working directory (Lambda starts the
    // bootstrap in its task root; a root of the bundle alone is its own).
    let candidates = [
        std::env::var_os("LAMBDA_TASK_ROOT")
            .map(|r| std::path::PathBuf::from(r).join(BUNDLED_CERTIFICATES)),
        Some(std::path::PathBuf::from(BUNDLED_CERTIFICATES)),
    ];
    if let Some(path) = candidates.into_iter().flatten().find(|p| p.is_file()) {
        std::env::set_var("SSL_CERT_FILE", path);
    }
}

const BUNDLED_CERTIFICATES: &str = "ca-certificates.crt";
