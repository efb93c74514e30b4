//! The ECS image `scripts/build-ecs-image.sh` writes (target/ecs-image): it holds nothing but
//! the self-contained `vqa` and what it needs, is configured to run as nobody, and `vqa
//! analyze` run in it (unpacked by umoci, run by runc) reports on a clip exactly what the
//! development build reports on the host.
//!
//! Needs the image, so it runs only with `VQA_ECS_IMAGE=1` (scripts/test.sh builds the image
//! and sets it); the run needs root (else it is skipped), runc and umoci
//! (scripts/install-deps.sh).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use vqa_testkit::{make_clip, ClipSpec, Defect};

/// The image's OCI layout and its tag, as the script writes them.
fn layout() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ecs-image/oci")
}
const TAG: &str = "latest";
const ENTRYPOINT: &str = "/usr/local/bin/vqa";

fn image_or_skip() -> bool {
    let wanted = std::env::var("VQA_ECS_IMAGE").is_ok_and(|v| v == "1");
    if !wanted {
        eprintln!(
            "skipping: the ECS image test runs with VQA_ECS_IMAGE=1 after \
             `scripts/build-ecs-image.sh dev` (scripts/test.sh does both; the run needs root, \
             runc and umoci)"
        );
    }
    wanted
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}; build the image with `scripts/build-ecs-image.sh dev`",
            path.display()
        )
    });
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn blob(digest: &Value) -> PathBuf {
    let digest = digest.as_str().expect("a digest is a string");
    let (algorithm, hex) = digest.split_once(':').expect("algorithm:hex");
    layout().join("blobs").join(algorithm).join(hex)
}

/// The tagged image's manifest and configuration.
fn manifest_and_config() -> (Value, Value) {
    let index = read_json(&layout().join("index.json"));
    let descriptor = index["manifests"]
        .as_array()
        .expect("index.json lists manifests")
        .iter()
        .find(|m| m["annotations"]["org.opencontainers.image.ref.name"] == TAG)
        .unwrap_or_else(|| panic!("no manifest tagged {TAG} in index.json: {index}"));
    let manifest = read_json(&blob(&descriptor["digest"]));
    let config = read_json(&blob(&manifest["config"]["digest"]));
    (manifest, config)
}

fn run(command: &mut Command) -> Output {
    let output = command
        .output()
        .unwrap_or_else(|e| panic!("{command:?}: {e}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn require_tool(tool: &str) {
    let found = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        found,
        "{tool} is missing; run scripts/install-deps.sh (apt-get install {tool})"
    );
}

#[test]
fn image_holds_only_a_self_contained_vqa_and_runs_it_as_nobody() {
    if !image_or_skip() {
        return;
    }
    let (manifest, config) = manifest_and_config();
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    assert_eq!(config["architecture"], arch);
    assert_eq!(config["os"], "linux");
    let run_config = &config["config"];
    assert_eq!(run_config["User"], "65534:65534");
    assert_eq!(run_config["Entrypoint"], json!([ENTRYPOINT]));
    assert_eq!(run_config["Cmd"], json!(["--help"]));
    let revision = run_config["Labels"]["org.opencontainers.image.revision"]
        .as_str()
        .expect("a revision label");
    assert!(
        revision.len() == 40 && revision.bytes().all(|b| b.is_ascii_hexdigit()),
        "the revision label is not a commit: {revision}"
    );

    // One layer; every entry in it, with its mode and owner.
    let layers = manifest["layers"].as_array().expect("layers");
    assert_eq!(layers.len(), 1, "one layer: {manifest}");
    let listing = run(Command::new("tar")
        .args(["--numeric-owner", "-tvzf"])
        .arg(blob(&layers[0]["digest"])));
    let entries: BTreeMap<String, (String, String)> = String::from_utf8_lossy(&listing.stdout)
        .lines()
        .map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let name = fields.last().expect("a tar entry's name");
            let name = name.trim_start_matches("./").trim_end_matches('/');
            (
                name.to_owned(),
                (fields[0].to_owned(), fields[1].to_owned()),
            )
        })
        .filter(|(name, _)| !name.is_empty() && name != ".")
        .collect();
    let files: Vec<&str> = entries
        .iter()
        .filter(|(_, (mode, _))| !mode.starts_with('d'))
        .map(|(name, _)| name.as_str())
        .collect();
    assert_eq!(
        files,
        [
            "etc/group",
            "etc/passwd",
            "etc/ssl/certs/ca-certificates.crt",
            "usr/local/bin/vqa"
        ],
        "the image's files (no shared libraries, no shell): {entries:?}"
    );
    assert_eq!(
        entries["tmp"].0, "drwxrwxrwt",
        "/tmp is world-writable and sticky"
    );
    assert_eq!(entries["usr/local/bin/vqa"].0, "-rwxr-xr-x");
    assert!(
        entries.values().all(|(_, owner)| owner == "0/0"),
        "everything owned by root: {entries:?}"
    );

    // The binary needs no program interpreter (ld.so) and no shared library.
    let dir = tempfile::tempdir().expect("tempdir");
    run(Command::new("tar")
        .arg("-xzf")
        .arg(blob(&layers[0]["digest"]))
        .arg("-C")
        .arg(dir.path())
        .args(["usr/local/bin/vqa", "etc/passwd"]));
    let headers = run(Command::new("readelf")
        .arg("-ld")
        .arg(dir.path().join("usr/local/bin/vqa")));
    let headers = String::from_utf8_lossy(&headers.stdout);
    assert!(
        !headers.contains("program interpreter") && !headers.contains("(NEEDED)"),
        "vqa in the image is not self-contained:\n{headers}"
    );
    let passwd = std::fs::read_to_string(dir.path().join("etc/passwd")).expect("passwd");
    assert!(
        passwd
            .lines()
            .any(|l| l.starts_with("nobody:x:65534:65534:")),
        "/etc/passwd names nobody: {passwd}"
    );
}

/// The clip's directory is mounted at its own path, read-only, so the report's `input` (the
/// path as given) is the same inside and out.
fn runc_spec(bundle: &Path, clip: &Path) {
    let path = bundle.join("config.json");
    let mut spec = read_json(&path);
    let dir = clip.parent().expect("the clip is in a directory");
    let process = &mut spec["process"];
    // umoci made the process from the image's configuration: it must be nobody running vqa.
    assert_eq!(process["user"]["uid"], 65534, "runtime spec: {process}");
    assert_eq!(process["args"][0], ENTRYPOINT, "runtime spec: {process}");
    process["terminal"] = json!(false);
    process["args"] = json!([
        ENTRYPOINT,
        "analyze",
        clip,
        "--format",
        "json",
        "--no-progress"
    ]);
    spec["mounts"]
        .as_array_mut()
        .expect("mounts")
        .push(json!({"destination": dir, "type": "bind", "source": dir,
                     "options": ["rbind", "ro", "nosuid", "nodev"]}));
    // No cgroup limits: runc would need this machine's cgroup set-up for them, and a test
    // does not need them.
    if let Some(linux) = spec["linux"].as_object_mut() {
        linux.remove("resources");
    }
    std::fs::write(&path, spec.to_string()).expect("write config.json");
}

/// `runc run`, killed if it takes longer than `limit`.
fn runc_run(bundle: &Path, id: &str, limit: Duration) -> Output {
    let child = Command::new("runc")
        .args(["run", "--bundle"])
        .arg(bundle)
        .arg(id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start runc");
    let pid = child.id();
    let (done, waited) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = done.send(child.wait_with_output());
    });
    let output = match waited.recv_timeout(limit) {
        Ok(output) => output.expect("runc's output"),
        Err(_) => {
            let _ = Command::new("runc").args(["kill", id, "KILL"]).status();
            let _ = Command::new("kill").arg(pid.to_string()).status();
            panic!("runc run did not finish within {limit:?}");
        }
    };
    let _ = Command::new("runc")
        .args(["delete", "--force", id])
        .stderr(Stdio::null())
        .status();
    output
}

#[test]
fn vqa_in_the_image_reports_what_the_host_build_reports() {
    if !image_or_skip() || !vqa_testkit::ffmpeg_or_skip() {
        return;
    }
    let uid = run(Command::new("id").arg("-u"));
    if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
        eprintln!(
            "skipping the run: runc runs the image as root only here (rootless runc needs a \
             user namespace set-up); run this test as root"
        );
        return;
    }
    require_tool("runc");
    require_tool("umoci");

    let dir = tempfile::tempdir().expect("tempdir");
    // The container's process is nobody: it must reach the clip.
    chmod(dir.path(), 0o755);
    let spec = ClipSpec {
        duration: 10.0,
        defects: vec![
            Defect::freeze(1.0, 3.0),
            Defect::black(4.0, 5.5),
            Defect::silence(6.0, 8.0),
        ],
        ..ClipSpec::default()
    };
    let clip = make_clip(dir.path(), "ecs", &spec).expect("clip");
    chmod(&clip.path, 0o644);

    let host_started = Instant::now();
    let host = run(Command::new(vqa_binary())
        .arg("analyze")
        .arg(&clip.path)
        .args(["--format", "json", "--no-progress"]));
    let host_time = host_started.elapsed();
    let host: Value = serde_json::from_slice(&host.stdout).expect("host report is JSON");
    let kinds: Vec<&str> = host["incidents"]
        .as_array()
        .expect("incidents")
        .iter()
        .filter_map(|i| i["kind"].as_str())
        .collect();
    for kind in ["freeze", "black", "silence"] {
        assert!(
            kinds.contains(&kind),
            "the host report has no {kind}: {host}"
        );
    }

    let bundle = tempfile::tempdir().expect("bundle dir");
    let bundle = bundle.path().join("bundle");
    let image = format!("{}:{TAG}", layout().display());
    run(Command::new("umoci")
        .args(["unpack", "--image", &image])
        .arg(&bundle));
    runc_spec(&bundle, &clip.path);
    let id = format!("vqa-ecs-test-{}", std::process::id());
    let started = Instant::now();
    let output = runc_run(&bundle, &id, Duration::from_secs(300));
    let image_time = started.elapsed();
    assert!(
        output.status.success(),
        "vqa in the image failed ({}): {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| {
        panic!(
            "the image's report is not JSON ({e}): {}",
            String::from_utf8_lossy(&output.stdout)
        )
    });
    eprintln!(
        "vqa analyze on a {} s clip: {:.2} s in the image (runc, including its start), \
         {:.2} s on the host",
        spec.duration,
        image_time.as_secs_f64(),
        host_time.as_secs_f64()
    );
    // The same FFmpeg source and the same Rust code decode and measure the same samples: the
    // reports are equal to the last digit, audio figures included.
    assert_eq!(report, host, "the image's report differs from the host's");
}

/// The development build's `vqa` (target/<profile>/vqa beside this test's target/<profile>/deps).
fn vqa_binary() -> PathBuf {
    let path = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.join("vqa")))
        .unwrap_or_default();
    assert!(
        path.is_file(),
        "{}: vqa is missing; build it with `cargo build --workspace --all-targets`",
        path.display()
    );
    path
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}
