"""Deploys a CloudFormation template of infra/ to the local emulator, through its
CloudFormation (as `aws cloudformation deploy` would on AWS), and prints the stack's
outputs as `export NAME=VALUE` lines.

    python deploy_stack.py TEMPLATE STACK [Key=Value ...]

Needs AWS_ENDPOINT_URL (the emulator). Creates the stack, or updates it when it exists;
fails, with the failed resources' reasons, unless it completes.
"""

import sys
import os
import time

import boto3


def main() -> int:
    if len(sys.argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    template, stack, pairs = sys.argv[1], sys.argv[2], sys.argv[3:]
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    if not endpoint:
        print("deploy_stack.py: AWS_ENDPOINT_URL is not set; start the emulator first",
              file=sys.stderr)
        return 1
    params = []
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep:
            print(f"deploy_stack.py: {pair!r} is not Key=Value", file=sys.stderr)
            return 2
        params.append({"ParameterKey": key, "ParameterValue": value})
    cfn = boto3.client("cloudformation", endpoint_url=endpoint)
    with open(template, encoding="utf-8") as f:
        body = f.read()
    args = dict(StackName=stack, TemplateBody=body, Parameters=params,
                Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    try:
        cfn.describe_stacks(StackName=stack)
        cfn.update_stack(**args)
    except cfn.exceptions.ClientError as e:
        if "does not exist" not in str(e):
            raise
        cfn.create_stack(**args)
    deadline = time.monotonic() + 120
    while True:
        desc = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = desc["StackStatus"]
        if status.endswith("_COMPLETE") and "ROLLBACK" not in status:
            break
        if status.endswith("FAILED") or "ROLLBACK" in status or time.monotonic() > deadline:
            events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
            reasons = [f"{e['LogicalResourceId']}: {e.get('ResourceStatusReason', '')}"
                       for e in events if "FAILED" in e.get("ResourceStatus", "")]
            print(f"deploy_stack.py: stack {stack} ended {status}: {reasons}", file=sys.stderr)
            return 1
        time.sleep(0.2)
    for output in desc.get("Outputs", []):
        print(f"export {output['OutputKey']}={output['OutputValue']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
