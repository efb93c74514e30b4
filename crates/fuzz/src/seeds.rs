//! Valid inputs for each target, made by vqa's own encoders from a short synthetic stream
//! run through the real detectors and aggregator: the fuzzers start from objects as vqa
//! writes them.

use std::sync::{Arc, OnceLock};

use vqa_core::aggregate::{AggregatorState, IncidentAggregator, IncidentEvent};
use vqa_core::chunk::{Chunk, ChunkCursor};
use vqa_core::live::{LiveChunk, Loss};
use vqa_core::notify::Notification;
use vqa_core::testing::{frame, patterned_frame, stereo_frames, video_segment, FRAME};
use vqa_core::{
    wire, Artifact, ArtifactKey, Handle, HandoffMetrics, PipelineConfig, Segment, StreamId,
    StreamReport, StreamSummary,
};
use vqa_deploy_lambda::packager::{PackagerObject, PackagerRun};
use vqa_deploy_lambda::payload::{
    AggregateTask, Aggregated, Converted, DetectTask, Detected, Job, ResultsLocation, TaskError,
};
use vqa_transport_s3::S3Layout;

use crate::Target;

/// What the seeds are made of: a stream of a few seconds with defects, as analysed.
struct Stream {
    small_segments: Vec<Segment>,
    reports: Vec<vqa_core::SegmentReport>,
    states: Vec<AggregatorState>,
    events: Vec<IncidentEvent>,
    report: StreamReport,
}

/// A second of black, still pictures over `samples` of silence (black, freeze and silence
/// findings).
fn black_segment(index: u64, pictures: i64, samples: usize) -> Segment {
    let start = index as i64 * 1_000_000;
    let mut segment = video_segment(
        index,
        None,
        (0..pictures)
            .map(|i| frame(start + i * FRAME, |_, _| 16))
            .collect(),
    );
    segment.has_audio = true;
    segment.audio = vec![stereo_frames(start, samples, 0.0)];
    segment
}

fn stream() -> &'static Stream {
    static STREAM: OnceLock<Stream> = OnceLock::new();
    STREAM.get_or_init(|| {
        let config = PipelineConfig::default();
        let detectors = vqa_detectors::from_config(&config).expect("the default detectors build");
        let aggregator = IncidentAggregator::new(&config);
        let mut state = AggregatorState::default();
        let (mut reports, mut states, mut events) = (Vec::new(), Vec::new(), Vec::new());
        for index in 0..6 {
            let segment = if (2..5).contains(&index) {
                black_segment(index, 25, 48_000)
            } else {
                vqa_core::testing::full_segment("t", index)
            };
            let report = vqa_core::stage::detect(&detectors, &segment);
            reports.push(report.clone());
            events.extend(aggregator.apply(&mut state, report));
            states.push(state.clone());
        }
        let (report, closing) = aggregator.finish(
            state,
            StreamId::new("t"),
            StreamSummary {
                input: "t.ts".into(),
                ..Default::default()
            },
        );
        events.extend(closing);
        // Small segments for the wire seeds: a fuzzer mutates short inputs faster.
        let mut small = video_segment(
            7,
            Some(patterned_frame(7_000_000 - FRAME, 3)),
            vec![patterned_frame(7_000_000, 5), frame(7_040_000, |_, _| 16)],
        );
        small.has_audio = true;
        small.audio = vec![stereo_frames(7_000_000, 8, 0.25)];
        small.audio_lead_in = vec![stereo_frames(6_999_000, 4, 0.5)];
        Stream {
            small_segments: vec![small, black_segment(8, 2, 16)],
            reports,
            states,
            events,
            report,
        }
    })
}

/// Valid inputs for `target`.
pub fn seeds(target: Target) -> Vec<Vec<u8>> {
    match target {
        Target::Wire => wire_seeds(),
        Target::S3Object => wire_seeds()
            .iter()
            .map(|s| zstd::bulk::compress(s, 1).expect("in-memory zstd compression"))
            .collect(),
        Target::SfnPayload => payload_seeds(),
        Target::Config => config_seeds(),
        Target::StreamList => LISTS.iter().map(|s| s.as_bytes().to_vec()).collect(),
        Target::Notification => {
            let id = StreamId::new("news");
            stream()
                .events
                .iter()
                .map(|e| {
                    Notification::from_event(&id, e, Some("s3://b/news.json"))
                        .to_json_line()
                        .into_bytes()
                })
                .collect()
        }
        Target::StreamReport => {
            let one = serde_json::to_vec(&stream().report).expect("a report serialises");
            let mut two = one.clone();
            two.push(0xFF);
            two.extend_from_slice(&one);
            vec![one, two]
        }
    }
}

fn wire_seeds() -> Vec<Vec<u8>> {
    let s = stream();
    let mut seeds = Vec::new();
    for segment in &s.small_segments {
        seeds.push(wire::encode_artifact(&Artifact::Segment(Arc::new(segment.clone()))).to_vec());
        seeds.push(wire::split_segment(segment).0.to_vec());
    }
    for report in &s.reports {
        seeds.push(wire::encode_artifact(&Artifact::Findings(Arc::new(report.clone()))).to_vec());
    }
    for state in &s.states {
        seeds.push(wire::encode_state(state).to_vec());
    }
    seeds.push(wire::encode_state(&s.report.incidents).to_vec());
    let mut cursor = ChunkCursor::new();
    seeds.push(wire::encode_state(&cursor).to_vec());
    cursor.advance(
        6,
        &StreamSummary {
            input: "t.ts".into(),
            warnings: vec!["12 packets could not be decoded".into()],
            ..Default::default()
        },
        12,
    );
    seeds.push(wire::encode_state(&cursor).to_vec());
    seeds.push(
        wire::encode_state(&PackagerRun {
            origin: 1_400_000_000,
            first: 42,
        })
        .to_vec(),
    );
    seeds
}

fn payload_seeds() -> Vec<Vec<u8>> {
    let s = stream();
    let stream = StreamId::new("news");
    let summary = StreamSummary {
        input: "news.ts".into(),
        warnings: vec!["the input ended early".into()],
        ..Default::default()
    };
    let config = PipelineConfig::default();
    let transport = S3Layout::new("vqa-work", "runs/1/");
    let results = ResultsLocation {
        bucket: "vqa-results".into(),
        key: "news.json".into(),
    };
    let handle = |index| Handle {
        key: ArtifactKey::segment(&stream, index),
        location: format!("s3://vqa-work/runs/1/news/{index:08}/segment"),
    };
    let chunk = Chunk {
        index: 1,
        first_window: 4,
        windows: 4,
        last: false,
    };
    let live = LiveChunk {
        origin: 1_400_000_000,
        loss: Some(Loss {
            until: 9_000_000,
            attempts: 3,
            begins: true,
        }),
        warnings: vec!["source lost".into()],
        ..Default::default()
    };
    let job = Job {
        stream: stream.clone(),
        input: "s3://vqa-work/runs/1/input.ts".into(),
        input_name: "news.ts".into(),
        config: config.clone(),
        transport: transport.clone(),
        results: results.clone(),
        chunk,
        skip: None,
        live: Some(live.clone()),
        preroll: vec!["live/news/seg_00041.ts".into()],
    };
    let skip = TaskError {
        error: "vqa.Failed".into(),
        cause: r#"{"errorType":"vqa.Failed","errorMessage":"input unreadable"}"#.into(),
    };
    let json = |v: &dyn erased::Json| v.json();
    let mut seeds = vec![
        json(&job),
        json(&Job {
            skip: Some(skip.clone()),
            live: None,
            ..job.clone()
        }),
        json(&serde_json::json!({ "packager": PackagerObject {
            bucket: "packager".into(),
            key: "live/news/seg_00042.ts".into(),
            prefix: "live/".into(),
            config: Some(config.clone()),
        }})),
        json(&serde_json::json!({ "packager": PackagerObject {
            bucket: "packager".into(),
            key: "live/news/END".into(),
            prefix: "live/".into(),
            config: None,
        }})),
        json(&DetectTask {
            segment: handle(4),
            group: 1,
            detectors: config.detectors.clone(),
            config: config.clone(),
            transport: transport.clone(),
        }),
        json(&AggregateTask {
            stream: stream.clone(),
            segments: vec![handle(4), handle(5)],
            groups: 2,
            summary: Some(summary.clone()),
            decode_errors: 3,
            config: config.clone(),
            transport: transport.clone(),
            results: results.clone(),
            chunk,
            skip: Some(skip.clone()),
            live: Some(live),
        }),
        json(&Converted {
            segments: vec![handle(4)],
            summary: summary.clone(),
            decode_errors: 2,
            handoff: HandoffMetrics {
                puts: 3,
                copied_bytes: 1 << 20,
                ..Default::default()
            },
            stored_at_ms: vec![1_700_000_000_000],
            input_reads: 2,
            input_bytes: 4096,
        }),
        json(&Detected {
            findings: Handle {
                key: ArtifactKey::findings_part(&stream, 4, 1),
                location: "s3://vqa-work/runs/1/news/00000004/findings-1".into(),
            },
            handoff: HandoffMetrics::default(),
        }),
        json(&Aggregated {
            report: results.uri(),
            finished: true,
            incidents: s.report.incidents.len(),
            segments: 6,
            handoff: HandoffMetrics::default(),
            written_at_ms: 1_700_000_000_000,
            events: s.events.clone(),
        }),
        json(&skip),
    ];
    seeds.dedup();
    seeds
}

/// Object-safe JSON serialisation for the seed table.
mod erased {
    pub trait Json {
        fn json(&self) -> Vec<u8>;
    }
    impl<T: serde::Serialize> Json for T {
        fn json(&self) -> Vec<u8> {
            serde_json::to_vec(self).expect("seeds serialise")
        }
    }
}

fn config_seeds() -> Vec<Vec<u8>> {
    let config = PipelineConfig::default();
    let mut seeds = vec![
        config.to_toml().into_bytes(),
        serde_json::to_vec(&config).expect("a configuration serialises"),
        CONFIG.as_bytes().to_vec(),
        vqa_core::cost::DEFAULT_PRICES.as_bytes().to_vec(),
    ];
    if let Ok(broadcast) = PipelineConfig::from_toml("profile = \"broadcast\"\n") {
        seeds.push(broadcast.to_toml().into_bytes());
    }
    seeds
}

const CONFIG: &str = r#"profile = "broadcast"
segment_seconds = 2.0
detectors = ["freeze", "black", "silence", "loudness", "blur", "borders", "captions"]
black = { min_duration = 0.5, clear_after = 2.0 }
loudness = { standard = "ebu_r128", programme_window = 600.0 }
converter = { read_timeout = 3.0, allowed_protocols = ["udp", "srt"] }
"#;

const LISTS: &[&str] = &[
    r#"[monitor]
workers = 0
queue_seconds = 4.0
shed_after = 2.0
shed = ["blockiness", "blur"]
reconnect_min = 0.5
reconnect_max = 30.0
allow_local_files = false
report_every = 60.0

[defaults]
segment_seconds = 1.0
converter = { read_timeout = 3.0 }

[[stream]]
id = "news"
url = "udp://239.0.0.1:5000"
detectors = ["freeze", "black", "silence"]
[stream.config]
black = { min_duration = 0.5 }

[[stream]]
id = "sport"
url = "https://cdn.example/sport/index.m3u8?token=..."
detectors = ["freeze", "black", "silence", "loudness"]
realtime = true
speed = 2.0
loop = true
"#,
    r#"[[shard]]
name = "video"
url = "http://video.vqa.local:9090"
detectors = ["freeze", "black", "blockiness", "blur", "colorbars", "corruption", "frame_drop"]
[[shard]]
name = "audio"
url = "http://audio.vqa.local:9090"
detectors = ["silence", "loudness", "clipping", "av_sync"]
"#,
];
