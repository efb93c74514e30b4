"""Deploys vqa's Lambda functions and buckets to a local emulator (what infra/distributed.yaml
does on AWS): the intermediate and results buckets, an IAM role, and the three handler
functions from their `bootstrap` binaries (zipped the way `cargo lambda build` lays them out,
stripped of debug symbols so the upload stays small).

    python deploy.py --converter BIN --detector BIN --aggregator BIN [--bucket B] ...

The state machine is not made here: `vqa deploy` generates and deploys it (aws-sdk-sfn).
Prints, on stdout, the environment to export (function and role ARNs, bucket names).
Idempotent: existing buckets are kept, existing functions get the new code.
"""

import argparse
import io
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile

import boto3

TRUST = """{"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
  "Principal": {"Service": ["lambda.amazonaws.com", "states.amazonaws.com"]},
  "Action": "sts:AssumeRole"}]}"""

# Memory and timeout as in infra/distributed.yaml.
FUNCTIONS = {
    "converter": (2048, 900),
    "detector": (1769, 120),
    "aggregator": (512, 300),
}


def bootstrap_zip(binary: str) -> bytes:
    """The binary as `bootstrap` in a zip, stripped when `strip` is available; a `.zip`
    (scripts/build-lambdas.sh's self-contained bundle) as it is."""
    if binary.endswith(".zip"):
        with open(binary, "rb") as f:
            return f.read()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bootstrap")
        if shutil.which("strip"):
            subprocess.run(["strip", "-o", path, binary], check=True)
        else:
            shutil.copy(binary, path)
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=1) as z:
            info = zipfile.ZipInfo("bootstrap")
            info.external_attr = 0o755 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            with open(path, "rb") as f:
                z.writestr(info, f.read())
        return out.getvalue()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    for name in FUNCTIONS:
        p.add_argument(f"--{name}", required=True,
                       help=f"the vqa-{name} binary, or its bundle (bootstrap.zip)")
    p.add_argument("--bucket", default="vqa-artifacts")
    p.add_argument("--results-bucket", default="vqa-results")
    p.add_argument("--prefix", default="vqa/")
    p.add_argument("--name-prefix", default="vqa-", help="prefix of the function names")
    args = p.parse_args()

    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        print("deploy.py: AWS_ENDPOINT_URL is not set; start the emulator first: "
              'eval "$(scripts/emulators.sh start)"', file=sys.stderr)
        return 1
    s3 = boto3.client("s3", endpoint_url=endpoint)
    sns = boto3.client("sns", endpoint_url=endpoint)
    iam = boto3.client("iam", endpoint_url=endpoint)
    lam = boto3.client("lambda", endpoint_url=endpoint)

    for bucket in (args.bucket, args.results_bucket):
        try:
            s3.head_bucket(Bucket=bucket)
        except Exception:
            s3.create_bucket(Bucket=bucket)

    try:
        role = iam.get_role(RoleName="vqa-emulator")["Role"]["Arn"]
    except iam.exceptions.NoSuchEntityException:
        role = iam.create_role(RoleName="vqa-emulator", AssumeRolePolicyDocument=TRUST)["Role"]["Arn"]

    # The topic the aggregator publishes incidents to (as distributed.yaml's NotifyTopicArn).
    topic = sns.create_topic(Name=f"{args.name_prefix}incidents")["TopicArn"]
    env = {"VQA_BUCKET": args.bucket, "VQA_RESULTS_BUCKET": args.results_bucket,
           "VQA_PREFIX": args.prefix, "RUST_LOG": os.environ.get("RUST_LOG", "info")}
    arns = {}
    for name, (memory, timeout) in FUNCTIONS.items():
        fn = f"{args.name_prefix}{name}"
        fn_env = dict(env, VQA_NOTIFY_TOPIC_ARN=topic) if name == "aggregator" else env
        code = bootstrap_zip(getattr(args, name))
        try:
            lam.get_function(FunctionName=fn)
            lam.update_function_code(FunctionName=fn, ZipFile=code)
            out = lam.update_function_configuration(
                FunctionName=fn, MemorySize=memory, Timeout=timeout,
                Environment={"Variables": fn_env})
        except lam.exceptions.ResourceNotFoundException:
            out = lam.create_function(
                FunctionName=fn, Runtime="provided.al2023", Handler="bootstrap", Role=role,
                Code={"ZipFile": code}, MemorySize=memory, Timeout=timeout,
                Environment={"Variables": fn_env}, Architectures=["x86_64"])
        arns[name] = out["FunctionArn"]

    print(f"export VQA_BUCKET={args.bucket}")
    print(f"export VQA_RESULTS_BUCKET={args.results_bucket}")
    print(f"export VQA_PREFIX={args.prefix}")
    print(f"export VQA_CONVERTER_ARN={arns['converter']}")
    print(f"export VQA_DETECTOR_ARN={arns['detector']}")
    print(f"export VQA_AGGREGATOR_ARN={arns['aggregator']}")
    print(f"export VQA_STATES_ROLE_ARN={role}")
    print(f"export VQA_NOTIFY_TOPIC_ARN={topic}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
