//! The short run of every fuzz target under `cargo test`: each target's seeds, its kept
//! regressions (`regressions/<target>/`: inputs the campaign found that failed once), and
//! mutations of them. The coverage-guided campaign is `scripts/fuzz-structured.sh`.

use std::path::PathBuf;
use std::time::Instant;

use vqa_fuzz::{seeds, Mutator, Target};

/// Mutated inputs per target: a few seconds in all.
const MUTATIONS: usize = 10_000;

fn regressions(target: Target) -> Vec<(PathBuf, Vec<u8>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("regressions")
        .join(target.name());
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok()).map(|e| e.path()).collect();
    files.sort();
    files
        .into_iter()
        .filter(|p| p.is_file())
        .map(|p| {
            let data = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p, data)
        })
        .collect()
}

fn short_run(target: Target) {
    let started = Instant::now();
    let seeds = seeds(target);
    assert!(!seeds.is_empty(), "{} has seeds", target.name());
    for seed in &seeds {
        target.run(seed);
    }
    for (path, data) in regressions(target) {
        eprintln!("{}: {}", target.name(), path.display());
        target.run(&data);
    }
    let mut mutator = Mutator::new(0x5EED ^ target.name().len() as u64);
    for _ in 0..MUTATIONS {
        target.run(&mutator.mutate(&seeds));
    }
    eprintln!(
        "{}: {} seeds and {MUTATIONS} mutations in {:.1} s",
        target.name(),
        seeds.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn every_target_is_run() {
    let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
    for name in &names {
        assert_eq!(Target::from_name(name).map(|t| t.name()), Some(*name));
    }
    // A folder of regressions names a target, so none is silently skipped.
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("regressions");
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        assert!(
            names.contains(&name.as_str()) || !entry.path().is_dir(),
            "regressions/{name} names no target"
        );
    }
}

/// Seeds are what vqa itself writes, so every one parses: a seed that fails would start
/// the fuzzer at the surface.
#[test]
fn seeds_are_valid_inputs() {
    use vqa_core::{transport::ArtifactName, wire};
    for seed in seeds(Target::Wire) {
        let parsed = wire::decode_artifact("k", ArtifactName::Segment, &seed).is_ok()
            || wire::decode_artifact("k", ArtifactName::Findings, &seed).is_ok()
            || wire::manifest_planes("k", &seed).is_ok()
            || wire::decode_state::<vqa_core::AggregatorState>("k", &seed).is_ok();
        assert!(
            parsed || seed.get(1) == Some(&3),
            "a wire seed decodes: {:?}",
            &seed[..seed.len().min(16)]
        );
    }
    for seed in seeds(Target::Config) {
        let text = String::from_utf8(seed).expect("UTF-8");
        assert!(
            vqa_core::PipelineConfig::from_toml(&text).is_ok()
                || vqa_core::PipelineConfig::from_json(&text).is_ok()
                || vqa_core::cost::PriceTable::parse(&text).is_ok(),
            "a config seed parses: {text}"
        );
    }
    for seed in seeds(Target::StreamList) {
        let text = String::from_utf8(seed).expect("UTF-8");
        let base = vqa_core::PipelineConfig::default();
        assert!(
            vqa_deploy_ecs::monitor::StreamList::parse(&text, &base).is_ok()
                || vqa_deploy_ecs::router::parse_shards(&text).is_ok(),
            "a list seed parses: {text}"
        );
    }
    for seed in seeds(Target::SfnPayload) {
        assert!(
            serde_json::from_slice::<serde_json::Value>(&seed).is_ok(),
            "JSON seed"
        );
    }
}

#[test]
fn wire() {
    short_run(Target::Wire);
}

#[test]
fn s3_object() {
    short_run(Target::S3Object);
}

#[test]
fn sfn_payload() {
    short_run(Target::SfnPayload);
}

#[test]
fn config() {
    short_run(Target::Config);
}

#[test]
fn stream_list() {
    short_run(Target::StreamList);
}

#[test]
fn notification() {
    short_run(Target::Notification);
}

#[test]
fn stream_report() {
    short_run(Target::StreamReport);
}
