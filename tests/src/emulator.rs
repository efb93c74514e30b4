//! The local AWS emulator the distributed tests run against, started by the tests themselves:
//! moto's server with Step Functions executing for real and Lambda functions run as host
//! processes from their `bootstrap` binaries (`scripts/emulator/moto_host.py`).
//!
//! With `VQA_LAMBDA_BUNDLES=1` the functions are the self-contained bundles
//! `scripts/build-lambdas.sh` made, and with `VQA_LAMBDA_CHROOT=1` (root only) the emulator
//! runs each in a root holding nothing but its unzipped bundle (`scripts/test.sh` sets both).
//!
//! With `VQA_TEST_ENDPOINT` set (e.g. `http://localhost:4566` for the LocalStack container),
//! the tests use that endpoint instead of starting their own.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_s3::config::Credentials;
use vqa_core::PipelineConfig;
use vqa_deploy_lambda::state_machine::{self, DetectorGroups, MachineOptions, MachineType};
use vqa_sfn_client::Deployment;
use vqa_transport_s3::{connect, S3Layout, S3Transport};

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Lambda bootstrap binaries (`vqa-converter`, ...), built by `cargo test` next to the
/// test executables because `vqa-deploy-lambda` has integration tests of its own (a
/// package's binaries are built when its integration tests are). `VQA_LAMBDA_BIN_DIR`
/// overrides.
pub fn lambda_binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("VQA_LAMBDA_BIN_DIR") {
        Some(dir) => PathBuf::from(dir),
        // target/<profile>/deps/<test> -> target/<profile>
        None => std::env::current_exe()
            .ok()
            .and_then(|exe| Some(exe.parent()?.parent()?.to_path_buf()))
            .unwrap_or_default(),
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{}: the Lambda binary is missing; build it with `cargo build -p vqa-deploy-lambda` \
         (or set VQA_LAMBDA_BIN_DIR)",
        path.display()
    );
    path
}

/// What the emulator deploys as a function's code: the bundle `scripts/build-lambdas.sh`
/// made (`target/lambda/<name>/bootstrap.zip`, self-contained) when `VQA_LAMBDA_BUNDLES=1`,
/// else the development build's binary ([`lambda_binary`]).
pub fn lambda_code(name: &str) -> PathBuf {
    if std::env::var("VQA_LAMBDA_BUNDLES").is_ok_and(|v| v == "1") {
        let zip = repo_root()
            .join("target/lambda")
            .join(name)
            .join("bootstrap.zip");
        assert!(
            zip.is_file(),
            "{}: the Lambda bundle is missing; build it with `scripts/build-lambdas.sh dev`",
            zip.display()
        );
        return zip;
    }
    lambda_binary(name)
}

/// A running emulator.
pub struct Emulator {
    pub endpoint: String,
    pub port: u16,
    /// Its run directory's parent (`run/faults.json`, `run/invocations.jsonl`); empty for an
    /// emulator this process cannot see into.
    pub dir: PathBuf,
    child: Mutex<Option<Child>>,
    _tmp: Option<tempfile::TempDir>,
    /// LocalStack run on this host by `VQA_EMULATOR=localstack scripts/emulators.sh`.
    host_localstack: bool,
}

/// `scripts/emulators.sh` with `VQA_EMULATOR=localstack`: its stdout, or its error.
fn localstack_script(args: &[&str], env: &[(&str, String)]) -> Result<String, String> {
    let out = Command::new("bash")
        .arg(repo_root().join("scripts/emulators.sh"))
        .args(args)
        .env("VQA_EMULATOR", "localstack")
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run scripts/emulators.sh: {e}"))?;
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).trim().to_string())
    }
}

/// The value of `export NAME=VALUE` in a script's output.
fn exported(exports: &str, name: &str) -> Option<String> {
    exports
        .lines()
        .find_map(|l| l.strip_prefix(&format!("export {name}=")))
        .map(|v| v.trim_matches('\'').to_string())
}

impl Emulator {
    /// Starts a private emulator, on `port` (0: any free port).
    pub fn start_on(port: u16) -> Emulator {
        let root = repo_root();
        let python = root.join("target/emulators/venv/bin/python");
        assert!(
            python.exists(),
            "the emulator's Python environment is missing: run `scripts/emulators.sh install` \
             (scripts/test.sh does it)"
        );
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().to_path_buf();
        let ready = dir.join("ready");
        let log = std::fs::File::create(dir.join("moto_host.log")).expect("log file");
        let child = Command::new(python)
            .arg(root.join("scripts/emulator/moto_host.py"))
            .args(["--port", &port.to_string(), "--dir"])
            .arg(dir.join("run"))
            .arg("--ready-file")
            .arg(&ready)
            // Exits when this test process ends and the pipe closes: never leaked.
            .arg("--exit-with-stdin")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start moto_host.py");
        let deadline = Instant::now() + Duration::from_secs(60);
        let port = loop {
            if let Some(p) = std::fs::read_to_string(&ready)
                .ok()
                .and_then(|s| s.trim().parse::<u16>().ok())
            {
                break p;
            }
            assert!(
                Instant::now() < deadline,
                "the emulator did not start within 60 s; see {}",
                dir.join("moto_host.log").display()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        Emulator {
            endpoint: format!("http://127.0.0.1:{port}"),
            port,
            dir,
            child: Mutex::new(Some(child)),
            _tmp: Some(tmp),
            host_localstack: false,
        }
    }

    /// LocalStack at `VQA_LOCALSTACK_ENDPOINT` (`scripts/test.sh` starts it on this host with
    /// `VQA_EMULATOR=localstack scripts/emulators.sh start` and sets it; a user with Docker
    /// points it at the official container). None when it is not set.
    pub fn localstack() -> Option<Emulator> {
        let endpoint = std::env::var("VQA_LOCALSTACK_ENDPOINT")
            .ok()
            .filter(|e| !e.is_empty())?;
        // The host's own LocalStack, whose executor the tests can see into and which they
        // can stop and start, or another one (a container).
        let host = localstack_script(&["env"], &[])
            .ok()
            .and_then(|env| exported(&env, "AWS_ENDPOINT_URL"))
            .is_some_and(|e| e == endpoint);
        let port = endpoint
            .rsplit(':')
            .next()
            .and_then(|p| p.trim_end_matches('/').parse().ok())
            .unwrap_or(4566);
        Some(Emulator {
            endpoint,
            port,
            dir: if host {
                repo_root().join("target/emulators/localstack")
            } else {
                PathBuf::new()
            },
            child: Mutex::new(None),
            _tmp: None,
            host_localstack: host,
        })
    }

    /// Whether this is LocalStack run on this host by `scripts/emulators.sh`: its executor's
    /// records and fault file are readable, and it can be stopped and started again.
    pub fn is_host_localstack(&self) -> bool {
        self.host_localstack
    }

    /// Starts this host's LocalStack again on the same port, after [`kill`](Self::kill): a
    /// fresh instance that has kept nothing.
    pub fn restart_localstack(&self) {
        assert!(
            self.host_localstack,
            "only the host's LocalStack can be restarted"
        );
        localstack_script(&["start"], &[("VQA_EMULATOR_PORT", self.port.to_string())])
            .unwrap_or_else(|e| panic!("LocalStack did not start again: {e}"));
    }

    /// Deploys `infra/distributed.yaml` as it is, with `parameters`, through the emulator's
    /// CloudFormation, as `VQA_EMULATOR=localstack scripts/emulators.sh deploy` does for a
    /// user (`aws cloudformation package` with the bundles `scripts/build-lambdas.sh` made,
    /// then `aws cloudformation deploy`); the stack's deployment.
    pub fn deploy_template(&self, stack: &str, parameters: &[&str]) -> Deployment {
        let mut args = vec!["deploy"];
        args.extend_from_slice(parameters);
        let exports = localstack_script(
            &args,
            &[
                ("VQA_LOCALSTACK_ENDPOINT", self.endpoint.clone()),
                ("VQA_STACK", stack.to_string()),
                ("VQA_SKIP_BUILD", "1".to_string()),
            ],
        )
        .unwrap_or_else(|e| panic!("the stack did not deploy: {e}"));
        let var = |k: &str| {
            exported(&exports, k)
                .unwrap_or_else(|| panic!("emulators.sh deploy did not export {k}:\n{exports}"))
        };
        Deployment {
            state_machine_arn: var("VQA_STATE_MACHINE_ARN"),
            bucket: var("VQA_BUCKET"),
            prefix: var("VQA_PREFIX"),
            results_bucket: var("VQA_RESULTS_BUCKET"),
        }
    }

    /// The emulator shared by a test binary's tests.
    pub fn shared() -> &'static Emulator {
        static SHARED: OnceLock<Emulator> = OnceLock::new();
        SHARED.get_or_init(|| match std::env::var("VQA_TEST_ENDPOINT") {
            Ok(endpoint) if !endpoint.is_empty() => Emulator {
                port: 0,
                endpoint,
                dir: PathBuf::new(),
                child: Mutex::new(None),
                _tmp: None,
                host_localstack: false,
            },
            _ => Emulator::start_on(0),
        })
    }

    /// Stops it, as a crash would (no clean shutdown); its function processes go with it.
    pub fn kill(&self) {
        if self.host_localstack {
            let pid = std::fs::read_to_string(self.dir.join("localstack.pid"))
                .expect("LocalStack's pid file");
            let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
            // Ends the function processes it left and frees the port.
            localstack_script(&["stop"], &[]).expect("scripts/emulators.sh stop");
            return;
        }
        if let Some(mut child) = self.child.lock().unwrap().take() {
            drop(child.stdin.take()); // moto_host kills its function processes on EOF
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SDK configuration for it: test credentials, us-east-1.
    pub async fn sdk(&self) -> SdkConfig {
        aws_config::defaults(BehaviorVersion::latest())
            .endpoint_url(&self.endpoint)
            .region(Region::new("us-east-1"))
            .credentials_provider(Credentials::new("test", "test", None, None, "vqa-tests"))
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_max_attempts(vqa_transport_s3::MAX_ATTEMPTS),
            )
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .build(),
            )
            .load()
            .await
    }

    /// The environment a subprocess needs to reach it.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
            ("AWS_DEFAULT_REGION", "us-east-1".into()),
        ]
    }

    /// An S3 transport on it, in `bucket` (created if missing).
    pub async fn transport(&self, bucket: &str, prefix: &str) -> S3Transport {
        let sdk = self.sdk().await;
        let (client, endpoint) = connect(&sdk);
        if client.head_bucket().bucket(bucket).send().await.is_err() {
            client
                .create_bucket()
                .bucket(bucket)
                .send()
                .await
                .expect("create bucket");
        }
        S3Transport::new(client, endpoint, S3Layout::new(bucket, prefix))
    }

    /// Deploys the three functions and buckets (with `scripts/emulator/deploy.py`, as
    /// `scripts/emulators.sh deploy` does) and a state machine for `config`.
    pub async fn deploy(
        &self,
        name: &str,
        config: &PipelineConfig,
        groups: &str,
        machine_type: MachineType,
    ) -> Deployment {
        let exports = self.deploy_functions();
        let var = |k: &str| {
            exports
                .lines()
                .find_map(|l| l.strip_prefix(&format!("export {k}=")))
                .unwrap_or_else(|| panic!("deploy.py did not export {k}:\n{exports}"))
                .to_string()
        };
        let options = MachineOptions {
            groups: DetectorGroups::parse(groups, config).expect("groups"),
            map_concurrency: 4,
        };
        let definition = state_machine::substitute(
            &state_machine::definition(&options).to_string(),
            &var("VQA_CONVERTER_ARN"),
            &var("VQA_DETECTOR_ARN"),
            &var("VQA_AGGREGATOR_ARN"),
        );
        let sdk = self.sdk().await;
        let arn = vqa_sfn_client::deploy(
            &sdk,
            name,
            &definition,
            &var("VQA_STATES_ROLE_ARN"),
            machine_type,
        )
        .await
        .expect("deploy the state machine");
        Deployment {
            state_machine_arn: arn,
            bucket: var("VQA_BUCKET"),
            prefix: var("VQA_PREFIX"),
            results_bucket: var("VQA_RESULTS_BUCKET"),
        }
    }

    /// Deploys the functions once per emulator; returns deploy.py's exports.
    fn deploy_functions(&self) -> String {
        static DEPLOYED: Mutex<Vec<(String, String)>> = Mutex::new(Vec::new());
        let mut done = DEPLOYED.lock().unwrap_or_else(|p| p.into_inner());
        // Keyed by the instance (its run directory), not the endpoint: a restarted emulator
        // on the same port has lost everything.
        let instance = format!("{} {}", self.endpoint, self.dir.display());
        if let Some((_, exports)) = done.iter().find(|(e, _)| *e == instance) {
            return exports.clone();
        }
        let root = repo_root();
        let mut cmd = Command::new(root.join("target/emulators/venv/bin/python"));
        cmd.arg(root.join("scripts/emulator/deploy.py"))
            .arg("--converter")
            .arg(lambda_code("vqa-converter"))
            .arg("--detector")
            .arg(lambda_code("vqa-detector"))
            .arg("--aggregator")
            .arg(lambda_code("vqa-aggregator"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("run deploy.py");
        let mut out = String::new();
        child
            .stdout
            .take()
            .expect("stdout")
            .read_to_string(&mut out)
            .expect("read deploy.py output");
        let status = child.wait().expect("deploy.py");
        let mut err = String::new();
        if let Some(mut e) = child.stderr.take() {
            let _ = e.read_to_string(&mut err);
        }
        assert!(status.success(), "deploy.py failed: {err}");
        done.push((instance, out.clone()));
        out
    }

    /// Deploys `template` (a path under the repository) as stack `stack` through the
    /// emulator's CloudFormation (`scripts/emulator/deploy_stack.py`); returns its outputs.
    pub fn deploy_stack(
        &self,
        template: &str,
        stack: &str,
        parameters: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let root = repo_root();
        let mut cmd = Command::new(root.join("target/emulators/venv/bin/python"));
        cmd.arg(root.join("scripts/emulator/deploy_stack.py"))
            .arg(root.join(template))
            .arg(stack)
            .args(parameters.iter().map(|(k, v)| format!("{k}={v}")));
        for (k, v) in self.env() {
            cmd.env(k, v);
        }
        let out = cmd.output().expect("run deploy_stack.py");
        assert!(
            out.status.success(),
            "deploy_stack.py {template}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.strip_prefix("export ")?.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// Makes the next `times` invocations of the function whose name contains `function`
    /// (for the chunk `chunk`, if given) crash, as a bootstrap killed mid-invocation does:
    /// AWS's `Runtime.ExitError`.
    pub fn inject_crash(&self, function: &str, chunk: Option<u64>, times: u32) {
        self.inject_fault(function, chunk, times, "Runtime.ExitError");
    }

    /// Makes the next `times` invocations of the function whose name contains `function`
    /// (for the chunk `chunk`, if given) fail with the function error type `error`.
    pub fn inject_fault(&self, function: &str, chunk: Option<u64>, times: u32, error: &str) {
        let mut rule = serde_json::json!({ "function": function, "times": times, "error": error });
        if let Some(chunk) = chunk {
            rule["chunk"] = chunk.into();
        }
        let path = self.dir.join("run/faults.json");
        let mut rules: Vec<serde_json::Value> = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .unwrap_or_default();
        rules.push(rule);
        std::fs::write(&path, serde_json::to_string(&rules).expect("JSON"))
            .expect("write the faults file");
    }

    /// Subscribes an HTTP endpoint of this process to the topic deploy.py gave the
    /// aggregator (`vqa-incidents`, VQA_NOTIFY_TOPIC_ARN); the notifications it publishes,
    /// as they arrive (each SNS envelope's `Message`, parsed).
    pub async fn incidents_subscription(&self) -> std::sync::mpsc::Receiver<serde_json::Value> {
        let sns = aws_sdk_sns::Client::new(&self.sdk().await);
        // Creating a topic that exists returns it.
        let topic = sns
            .create_topic()
            .name("vqa-incidents")
            .send()
            .await
            .expect("the aggregator's topic")
            .topic_arn()
            .expect("topic arn")
            .to_string();
        let (endpoint, envelopes) = subscriber();
        sns.subscribe()
            .topic_arn(&topic)
            .protocol("http")
            .endpoint(&endpoint)
            .send()
            .await
            .expect("subscribe");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for envelope in envelopes {
                let message = envelope["Message"]
                    .as_str()
                    .and_then(|m| serde_json::from_str(m).ok());
                if let Some(n) = message {
                    if tx.send(n).is_err() {
                        break;
                    }
                }
            }
        });
        rx
    }

    /// How many invocations of the functions whose name contains `function` the emulator
    /// ran, only those that failed with `error` if given.
    pub fn invocations_of(&self, function: &str, error: Option<&str>) -> usize {
        self.invocations()
            .iter()
            .filter(|i| {
                i["function"].as_str().is_some_and(|f| f.contains(function))
                    && error.is_none_or(|e| i["error"] == e)
            })
            .count()
    }

    /// The invocations the emulator ran, one JSON object each (`invocations.jsonl`).
    pub fn invocations(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.dir.join("run/invocations.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

/// Every object key under `prefix` in `bucket`.
pub async fn list_keys(transport: &S3Transport, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token = None;
    loop {
        let page = transport
            .client()
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token)
            .send()
            .await
            .expect("list objects");
        keys.extend(
            page.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_string)),
        );
        token = page.next_continuation_token().map(str::to_string);
        if token.is_none() {
            return keys;
        }
    }
}

/// An HTTP endpoint collecting the JSON bodies POSTed to it (an SNS subscription's
/// deliveries): its URL and the bodies as they arrive.
pub fn subscriber() -> (String, std::sync::mpsc::Receiver<serde_json::Value>) {
    let server = tiny_http::Server::http("127.0.0.1:0").expect("http server");
    let url = format!(
        "http://127.0.0.1:{}/sns",
        server.server_addr().to_ip().expect("ip").port()
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let mut body = String::new();
            let _ = request.as_reader().read_to_string(&mut body);
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&body) {
                let _ = tx.send(v);
            }
            let _ = request.respond(tiny_http::Response::empty(200));
        }
    });
    (url, rx)
}
