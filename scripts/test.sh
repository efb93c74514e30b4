#!/usr/bin/env bash
# Runs every check and test: formatting, clippy, cfn-lint on the infrastructure templates, unit
# tests, the integration tests that decode real clips made with the ffmpeg CLI, and the
# distributed topology's tests against the local AWS emulators: moto (which the tests start
# themselves) and LocalStack on the host (started here), where the real infra/distributed.yaml
# is deployed through CloudFormation. Installs what it needs first (Debian packages, the
# emulators' and cfn-lint's Python venvs).
set -euo pipefail
cd "$(dirname "$0")/.."

bash scripts/install-deps.sh
bash scripts/emulators.sh install
VQA_EMULATOR=localstack bash scripts/emulators.sh install
for component in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$component" || rustup component add "$component" 2>/dev/null || true
done

cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
bash scripts/lint-infra.sh
# The Lambda handlers as they deploy: self-contained bundles (glibc linked in, FFmpeg built
# from Debian's source, trimmed and static; both cached under target/ after the first run),
# each run by the emulator in a root holding nothing but its unzipped bundle (as root).
bash scripts/build-lambdas.sh dev
export VQA_LAMBDA_BUNDLES=1
# The ECS image (vqa linked the same way, on a scratch-style root, as an OCI layout), which
# tests/tests/ecs_image.rs checks and, as root, runs with runc.
bash scripts/build-ecs-image.sh dev
export VQA_ECS_IMAGE=1
# The HTML report's test renders its page in headless Chromium (installed above); here it
# must, rather than skip.
export VQA_CHROMIUM=1
if [ "$(id -u)" -eq 0 ]; then export VQA_LAMBDA_CHROOT=1; fi
# LocalStack for tests/tests/localstack.rs (the stack deployed as a user deploys it) and a
# second run of the S3 transport's tests; on a free port, stopped however this script ends.
trap 'VQA_EMULATOR=localstack bash scripts/emulators.sh stop 2>/dev/null || true' EXIT
VQA_LOCALSTACK_ENDPOINT="$(VQA_EMULATOR=localstack VQA_EMULATOR_PORT=0 bash scripts/emulators.sh start |
  sed -n 's/^export AWS_ENDPOINT_URL=//p')"
[ -n "$VQA_LOCALSTACK_ENDPOINT" ] || { echo "test.sh: LocalStack did not start" >&2; exit 1; }
export VQA_LOCALSTACK_ENDPOINT
cargo test --workspace
VQA_TEST_ENDPOINT="$VQA_LOCALSTACK_ENDPOINT" cargo test --workspace --test s3_transport
