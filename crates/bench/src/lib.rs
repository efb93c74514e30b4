//! What each topology costs, measured rather than argued.
//!
//! - [`compare`]: runs one input through every variant (the single process, Standard and
//!   Express state machines with per-segment or per-picture handoff) and collects what each
//!   used from its own counters; `vqa bench`.
//! - [`cost`]: the cost model (`vqa_core::cost`) and the price table (`prices/aws-us-east-1.toml`), monthly
//!   cost and the Step Functions ceiling per variant.
//! - [`render`]: the comparison as text and as a self-contained HTML page.
//! - [`speed`]: decode speed alone and with the detectors; `vqa bench --speed`.
//! - [`live`]: how many live streams the cores keep up with; `vqa bench --live`.

pub mod compare;
pub mod cost;
pub mod live;
pub mod render;
pub mod speed;

/// Why a benchmark could not run: what failed, naming the input, variant or file.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// The input could not be analysed.
    #[error("{input}: {reason}")]
    Input { input: String, reason: String },
    /// A variant could not run (its deployment is missing, or the execution failed; the
    /// client's error says whether retrying can help).
    #[error("variant {variant}: {source}")]
    Variant {
        variant: String,
        source: vqa_sfn_client::ClientError,
    },
    #[error("variant {0} needs the distributed deployment (--bucket, --results-bucket)")]
    NoDeployment(String),
    #[error("variant {0} is measured on a live stream only: add --live-minutes M")]
    LiveOnly(String),
    #[error("{path}: cannot read the price table: {source}")]
    PricesRead {
        path: String,
        source: std::io::Error,
    },
    #[error("{path}: not a price table ({reason}); start from prices/aws-us-east-1.toml")]
    Prices { path: String, reason: String },
    /// The monitor the live benchmark runs could not start.
    #[error(transparent)]
    Monitor(#[from] vqa_deploy_ecs::ServiceError),
}
