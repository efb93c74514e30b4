//! libFuzzer's entry point for every target: VQA_FUZZ_TARGET names the one to run
//! (`vqa_fuzz::Target::name`). With VQA_FUZZ_SEEDS_TO=DIR it writes the target's seeds
//! into DIR and exits instead. Built and run by scripts/fuzz-structured.sh.
#![no_main]

use std::sync::OnceLock;

use vqa_fuzz::Target;

static TARGET: OnceLock<Target> = OnceLock::new();

fn choose() -> Target {
    let name = std::env::var("VQA_FUZZ_TARGET").unwrap_or_default();
    let Some(target) = Target::from_name(&name) else {
        let names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        eprintln!(
            "VQA_FUZZ_TARGET={name:?}: set it to one of {}",
            names.join(", ")
        );
        std::process::exit(2)
    };
    if let Some(dir) = std::env::var_os("VQA_FUZZ_SEEDS_TO") {
        let dir = std::path::PathBuf::from(dir);
        for (i, seed) in vqa_fuzz::seeds(target).iter().enumerate() {
            let path = dir.join(format!("seed-{i:03}"));
            if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, seed))
            {
                eprintln!("{}: {e}", path.display());
                std::process::exit(1)
            }
        }
        std::process::exit(0)
    }
    target
}

libfuzzer_sys::fuzz_target!(
    init: {
        TARGET.get_or_init(choose);
    },
    |data: &[u8]| {
        TARGET.get_or_init(choose).run(data);
    }
);
