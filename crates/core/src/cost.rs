//! The cost model: turns what a topology measurably used to analyse a stretch of one stream
//! into dollars per stream-hour, a line per billing dimension, and the number of concurrent
//! streams the services' quotas allow. Prices and quotas come from a table in the repository
//! (`prices/aws-us-east-1.toml`, dated and sourced), which a user can replace (reading the
//! file is the edges' business: `vqa-bench` loads it).
//!
//! Pure arithmetic on counters: the bench prices a whole run with [`cost`], and the monitor
//! accrues each chunk's or each second's [`dollars`] as a live stream goes.

use serde::{Deserialize, Serialize};

pub use crate::topology::Orchestration;

/// The price table vqa ships (us-east-1, collected Nov 2026).
pub const DEFAULT_PRICES: &str = include_str!("../../../prices/aws-us-east-1.toml");

pub const HOURS_PER_MONTH: f64 = 730.0;
const SECONDS_PER_MONTH: f64 = HOURS_PER_MONTH * 3600.0;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriceTable {
    pub region: String,
    pub collected: String,
    pub source: String,
    pub step_functions: StepFunctionsPrices,
    pub lambda: LambdaPrices,
    pub s3: S3Prices,
    pub fargate: FargatePrices,
    pub quotas: Quotas,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StepFunctionsPrices {
    pub standard_per_transition: f64,
    pub express_per_request: f64,
    pub express_per_gb_second: f64,
    pub express_billing_mb: f64,
    pub express_billing_ms: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LambdaPrices {
    pub per_gb_second: f64,
    pub per_request: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct S3Prices {
    pub storage_per_gb_month: f64,
    pub put_per_request: f64,
    pub get_per_request: f64,
    pub delete_per_request: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FargatePrices {
    pub per_vcpu_hour: f64,
    pub per_gb_hour: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quotas {
    pub standard_transitions_per_second: f64,
    pub standard_start_execution_per_second: f64,
    pub express_start_execution_per_second: f64,
    pub lambda_concurrency: f64,
}

impl PriceTable {
    /// The shipped table.
    pub fn shipped() -> Self {
        // Checked by a test: the shipped file always parses.
        toml::from_str(DEFAULT_PRICES).expect("prices/aws-us-east-1.toml parses")
    }

    /// A table from its TOML text; the error names the field.
    pub fn parse(text: &str) -> Result<Self, PricesError> {
        toml::from_str(text).map_err(|e| PricesError(e.message().to_string()))
    }
}

/// Why a text is not a price table (the field that is missing, unknown or mistyped).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PricesError(pub String);

/// What analysing `stream_seconds` of one stream used, as measured in a run.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Usage {
    pub orchestration: Orchestration,
    pub stream_seconds: f64,
    pub state_transitions: u64,
    pub executions: u64,
    /// Sum over executions of each one's duration (Express bills it, rounded up).
    pub execution_seconds: Vec<f64>,
    pub lambda_invocations: u64,
    /// Sum over invocations of billed seconds × configured memory in GB.
    pub lambda_gb_seconds: f64,
    /// Sum over invocations of billed seconds: the average concurrency it implies.
    pub lambda_seconds: f64,
    pub s3_puts: u64,
    pub s3_gets: u64,
    pub s3_deletes: u64,
    /// Bytes stored × seconds they stayed stored (handoff objects until deleted).
    pub s3_byte_seconds: f64,
    /// CPU time of the single process.
    pub cpu_seconds: f64,
    /// Peak memory of the single process, GB.
    pub peak_memory_gb: f64,
}

/// One billing dimension's share.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct LineItem {
    pub dimension: &'static str,
    /// How much of it one stream uses per hour, in `unit`s.
    pub quantity_per_stream_hour: f64,
    pub unit: &'static str,
    pub usd_per_stream_hour: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Cost {
    pub items: Vec<LineItem>,
    pub usd_per_stream_hour: f64,
}

impl Cost {
    /// Dollars per month (730 h) for `streams` streams watched around the clock.
    pub fn usd_per_month(&self, streams: u64) -> f64 {
        self.usd_per_stream_hour * HOURS_PER_MONTH * streams as f64
    }
}

impl Usage {
    /// Counts one Lambda invocation that ran `seconds` with `memory_mb` configured: Lambda
    /// bills the duration rounded up to the millisecond, times the memory.
    pub fn add_lambda(&mut self, seconds: f64, memory_mb: f64) {
        let billed = (seconds.max(0.0) * 1000.0).ceil() / 1000.0;
        self.lambda_invocations += 1;
        self.lambda_seconds += billed;
        self.lambda_gb_seconds += billed * memory_mb / 1024.0;
    }
}

/// One billing dimension of a usage, unscaled: how much of it, and its unit price.
struct Priced {
    dimension: &'static str,
    quantity: f64,
    unit: &'static str,
    unit_price: f64,
}

/// Prices a run's usage, scaled to one hour of one stream.
pub fn cost(usage: &Usage, prices: &PriceTable) -> Cost {
    let per_hour = if usage.stream_seconds > 0.0 {
        3600.0 / usage.stream_seconds
    } else {
        0.0
    };
    let items: Vec<LineItem> = priced(usage, prices)
        .into_iter()
        .map(|p| {
            let quantity_per_stream_hour = p.quantity * per_hour;
            LineItem {
                dimension: p.dimension,
                quantity_per_stream_hour,
                unit: p.unit,
                usd_per_stream_hour: quantity_per_stream_hour * p.unit_price,
            }
        })
        .collect();
    let usd_per_stream_hour = items.iter().map(|i| i.usd_per_stream_hour).sum();
    Cost {
        items,
        usd_per_stream_hour,
    }
}

/// What `usage` costs as counted, not scaled to an hour: the dollars a stretch of a live
/// stream accrued (a chunk's executions, or a few seconds of a process).
pub fn dollars(usage: &Usage, prices: &PriceTable) -> f64 {
    priced(usage, prices)
        .iter()
        .map(|p| p.quantity * p.unit_price)
        .sum()
}

/// Each billing dimension `usage` touches, with its quantity and unit price.
fn priced(usage: &Usage, prices: &PriceTable) -> Vec<Priced> {
    let mut items = Vec::new();
    let mut item = |dimension, quantity: f64, unit, unit_price: f64| {
        items.push(Priced {
            dimension,
            quantity,
            unit,
            unit_price,
        });
    };
    let sfn = &prices.step_functions;
    // The single process is a Fargate task; so is a live stream's reader in the
    // distributed topology (its CPU and memory measured when there is one).
    if usage.orchestration == Orchestration::SingleProcess || usage.cpu_seconds > 0.0 {
        let f = &prices.fargate;
        item(
            "Fargate vCPU",
            usage.cpu_seconds / 3600.0,
            "vCPU-hours",
            f.per_vcpu_hour,
        );
        item(
            "Fargate memory",
            usage.peak_memory_gb * usage.stream_seconds / 3600.0,
            "GB-hours",
            f.per_gb_hour,
        );
    }
    match usage.orchestration {
        Orchestration::SingleProcess => {}
        Orchestration::StepFunctionsStandard => item(
            "Step Functions transitions",
            usage.state_transitions as f64,
            "transitions",
            sfn.standard_per_transition,
        ),
        Orchestration::StepFunctionsExpress => {
            item(
                "Step Functions requests",
                usage.executions as f64,
                "requests",
                sfn.express_per_request,
            );
            let step = sfn.express_billing_ms / 1000.0;
            let billed: f64 = usage
                .execution_seconds
                .iter()
                .map(|s| (s / step).ceil() * step)
                .sum();
            item(
                "Step Functions duration",
                billed * sfn.express_billing_mb / 1024.0,
                "GB-seconds",
                sfn.express_per_gb_second,
            );
        }
    }
    if usage.orchestration != Orchestration::SingleProcess {
        let (l, s3) = (&prices.lambda, &prices.s3);
        item(
            "Lambda requests",
            usage.lambda_invocations as f64,
            "requests",
            l.per_request,
        );
        item(
            "Lambda duration",
            usage.lambda_gb_seconds,
            "GB-seconds",
            l.per_gb_second,
        );
        item(
            "S3 PUT requests",
            usage.s3_puts as f64,
            "requests",
            s3.put_per_request,
        );
        item(
            "S3 GET requests",
            usage.s3_gets as f64,
            "requests",
            s3.get_per_request,
        );
        item(
            "S3 DELETE requests",
            usage.s3_deletes as f64,
            "requests",
            s3.delete_per_request,
        );
        item(
            "S3 storage",
            usage.s3_byte_seconds / 1e9 / SECONDS_PER_MONTH,
            "GB-months",
            s3.storage_per_gb_month,
        );
    }
    items
}

/// How many streams a topology can watch at once before a quota stops it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Ceiling {
    /// `None` when no service quota is in the path (the single process scales with tasks).
    pub max_concurrent_streams: Option<u64>,
    /// The quota that binds first, or why there is none.
    pub limited_by: String,
}

/// The stream ceiling each quota implies for this usage; the lowest binds.
pub fn ceiling(usage: &Usage, prices: &PriceTable) -> Ceiling {
    let q = &prices.quotas;
    let d = usage.stream_seconds.max(f64::MIN_POSITIVE);
    let mut limits: Vec<(f64, String)> = Vec::new();
    let mut limit = |quota: f64, per_stream: f64, what: String| {
        if per_stream > 0.0 {
            limits.push((quota / per_stream, what));
        }
    };
    match usage.orchestration {
        Orchestration::SingleProcess => {
            let per_vcpu = d / usage.cpu_seconds.max(f64::MIN_POSITIVE);
            return Ceiling {
                max_concurrent_streams: None,
                limited_by: format!(
                    "no service quota in the path: add tasks ({per_vcpu:.1} streams per vCPU)"
                ),
            };
        }
        Orchestration::StepFunctionsStandard => {
            limit(
                q.standard_transitions_per_second,
                usage.state_transitions as f64 / d,
                format!(
                    "Step Functions state transitions ({} per second)",
                    q.standard_transitions_per_second
                ),
            );
            limit(
                q.standard_start_execution_per_second,
                usage.executions as f64 / d,
                format!(
                    "StartExecution rate ({} per second)",
                    q.standard_start_execution_per_second
                ),
            );
        }
        Orchestration::StepFunctionsExpress => limit(
            q.express_start_execution_per_second,
            usage.executions as f64 / d,
            format!(
                "StartExecution rate ({} per second)",
                q.express_start_execution_per_second
            ),
        ),
    }
    limit(
        q.lambda_concurrency,
        usage.lambda_seconds / d,
        format!("Lambda concurrency ({} at once)", q.lambda_concurrency),
    );
    match limits.into_iter().min_by(|a, b| a.0.total_cmp(&b.0)) {
        Some((streams, what)) => Ceiling {
            max_concurrent_streams: Some(streams.floor() as u64),
            limited_by: what,
        },
        None => Ceiling {
            max_concurrent_streams: None,
            limited_by: "nothing measured".into(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() <= 1e-12_f64.max(b.abs() * 1e-9)
    }

    fn item(c: &Cost, dimension: &str) -> f64 {
        c.items
            .iter()
            .find(|i| i.dimension == dimension)
            .unwrap_or_else(|| panic!("no {dimension}"))
            .usd_per_stream_hour
    }

    #[test]
    fn the_shipped_table_parses_with_the_notes_prices() {
        let p = PriceTable::shipped();
        assert_eq!(p.step_functions.standard_per_transition, 0.025 / 1000.0);
        assert_eq!(p.s3.put_per_request, 0.005 / 1000.0);
        assert_eq!(p.quotas.standard_transitions_per_second, 1500.0);
    }

    #[test]
    fn standard_distributed_usage_is_priced_per_dimension() {
        // 60 s of stream: 735 transitions, 673 invocations using 1,000 GB-s, 793 PUTs,
        // 1,404 GETs, 733 DELETEs, 1 GB held for 30 s.
        let usage = Usage {
            orchestration: Orchestration::StepFunctionsStandard,
            stream_seconds: 60.0,
            state_transitions: 735,
            executions: 1,
            lambda_invocations: 673,
            lambda_gb_seconds: 1000.0,
            lambda_seconds: 600.0,
            s3_puts: 793,
            s3_gets: 1404,
            s3_deletes: 733,
            s3_byte_seconds: 1e9 * 30.0,
            ..Usage::default()
        };
        let c = cost(&usage, &PriceTable::shipped());
        // × 60 per hour.
        assert!(close(
            item(&c, "Step Functions transitions"),
            735.0 * 60.0 * 0.000025
        ));
        assert!(close(item(&c, "Lambda requests"), 673.0 * 60.0 * 0.0000002));
        assert!(close(
            item(&c, "Lambda duration"),
            1000.0 * 60.0 * 0.0000166667
        ));
        assert!(close(item(&c, "S3 PUT requests"), 793.0 * 60.0 * 0.000005));
        assert!(close(
            item(&c, "S3 GET requests"),
            1404.0 * 60.0 * 0.0000004
        ));
        assert_eq!(item(&c, "S3 DELETE requests"), 0.0);
        // 30 GB-s per minute = 1,800 GB-s per hour = 1800 / (730 × 3600) GB-months.
        assert!(close(item(&c, "S3 storage"), 1800.0 / 2_628_000.0 * 0.023));
        // 1.1025 + 0.008076 + 1.000002 + 0.2379 + 0.033696 + 0 + 0.0000157534 (by hand)
        assert!(
            close(c.usd_per_stream_hour, 2.3821897534),
            "{}",
            c.usd_per_stream_hour
        );
        assert!(close(c.usd_per_month(10), c.usd_per_stream_hour * 7300.0));

        // Ceilings: 735/60 = 12.25 transitions/s per stream → 1500/12.25 = 122.4 streams;
        // 600/60 = 10 Lambdas busy per stream → 100 streams: Lambda binds.
        let ceil = ceiling(&usage, &PriceTable::shipped());
        assert_eq!(ceil.max_concurrent_streams, Some(100));
        assert!(
            ceil.limited_by.starts_with("Lambda concurrency"),
            "{ceil:?}"
        );
        let few_lambdas = Usage {
            lambda_seconds: 60.0,
            ..usage
        };
        let ceil = ceiling(&few_lambdas, &PriceTable::shipped());
        assert_eq!(ceil.max_concurrent_streams, Some(122));
        assert!(ceil
            .limited_by
            .starts_with("Step Functions state transitions"));
    }

    #[test]
    fn express_bills_requests_and_rounded_duration_at_64_mb() {
        let usage = Usage {
            orchestration: Orchestration::StepFunctionsExpress,
            stream_seconds: 3600.0,
            executions: 2,
            // 0.25 s → 0.3 s billed, 1.0 s → 1.0 s: 1.3 s × 64/1024 GB = 0.08125 GB-s.
            execution_seconds: vec![0.25, 1.0],
            ..Usage::default()
        };
        let c = cost(&usage, &PriceTable::shipped());
        assert!(close(item(&c, "Step Functions requests"), 2.0 * 0.000001));
        assert!(close(
            item(&c, "Step Functions duration"),
            0.08125 * 0.00001667
        ));
        assert!(c
            .items
            .iter()
            .all(|i| i.dimension != "Step Functions transitions"));
    }

    #[test]
    fn the_single_process_pays_for_cpu_and_memory_only() {
        // 60 s of stream took 6 CPU-seconds and 0.25 GB: 0.1 vCPU, 0.25 GB all hour.
        let usage = Usage {
            orchestration: Orchestration::SingleProcess,
            stream_seconds: 60.0,
            cpu_seconds: 6.0,
            peak_memory_gb: 0.25,
            ..Usage::default()
        };
        let c = cost(&usage, &PriceTable::shipped());
        assert_eq!(c.items.len(), 2);
        assert!(close(item(&c, "Fargate vCPU"), 0.1 * 0.04048));
        assert!(close(item(&c, "Fargate memory"), 0.25 * 0.004445));
        let ceil = ceiling(&usage, &PriceTable::shipped());
        assert_eq!(ceil.max_concurrent_streams, None);
        assert!(
            ceil.limited_by.contains("10.0 streams per vCPU"),
            "{ceil:?}"
        );
    }

    #[test]
    fn a_table_with_a_mistake_is_named() {
        let err = PriceTable::parse(&DEFAULT_PRICES.replace("per_gb_second =", "per_gb_secnd ="))
            .unwrap_err()
            .to_string();
        assert!(err.contains("per_gb_secnd"), "{err}");
    }

    #[test]
    fn a_chunk_of_a_live_stream_accrues_its_counters_dollars() {
        // One Standard execution: 40 transitions, 12 invocations of 0.4004 s (billed 0.401 s)
        // at 1,024 MB, 30 PUTs, 50 GETs, 20 DELETEs.
        let mut usage = Usage {
            orchestration: Orchestration::StepFunctionsStandard,
            state_transitions: 40,
            executions: 1,
            s3_puts: 30,
            s3_gets: 50,
            s3_deletes: 20,
            ..Usage::default()
        };
        for _ in 0..12 {
            usage.add_lambda(0.4004, 1024.0);
        }
        assert_eq!(usage.lambda_invocations, 12);
        assert!(close(usage.lambda_gb_seconds, 12.0 * 0.401));
        let p = PriceTable::shipped();
        let expected = 40.0 * 0.000025
            + 12.0 * 0.0000002
            + 12.0 * 0.401 * 0.0000166667
            + 30.0 * 0.000005
            + 50.0 * 0.0000004;
        assert!(
            close(dollars(&usage, &p), expected),
            "{}",
            dollars(&usage, &p)
        );
        // Stream time does not change what was used, only the hourly rate.
        let hour = Usage {
            stream_seconds: 3600.0,
            ..usage.clone()
        };
        assert!(close(cost(&hour, &p).usd_per_stream_hour, expected));
    }

    #[test]
    fn a_process_share_accrues_fargate_cpu_and_memory() {
        // 10 s of a process: 2.5 CPU-seconds and 0.5 GB held throughout.
        let usage = Usage {
            orchestration: Orchestration::SingleProcess,
            stream_seconds: 10.0,
            cpu_seconds: 2.5,
            peak_memory_gb: 0.5,
            ..Usage::default()
        };
        let expected = 2.5 / 3600.0 * 0.04048 + 0.5 * 10.0 / 3600.0 * 0.004445;
        assert!(close(dollars(&usage, &PriceTable::shipped()), expected));
    }
}
