//! What each topology costs, measured rather than argued.
//!
//! - [`compare`]: runs one input through every variant (the single process, Standard and
//!   Express state machines with per-segment or per-picture handoff) and collects what each
//!   used from its own counters; `vqa bench`.
//! - [`cost`]: the cost model and the price table (`prices/aws-us-east-1.toml`), monthly
//!   cost and the Step Functions ceiling per variant.
//! - [`render`]: the comparison as text and as a self-contained HTML page.
//! - [`speed`]: decode speed alone and with the detectors; `vqa bench --speed`.
//! - [`live`]: how many live streams the cores keep up with; `vqa bench --live`.

pub mod compare;
pub mod cost;
pub mod live;
pub mod render;
pub mod speed;
