"""The plux plugin LocalStack finds in the `localstack.lambda.runtime_executor` namespace
(registered by ../vqa_host_executor-0.1.0.dist-info/entry_points.txt). Selected with
LAMBDA_RUNTIME_EXECUTOR=vqa-host."""

from localstack.services.lambda_.invocation.plugins import RuntimeExecutorPlugin


class VqaHostRuntimeExecutorPlugin(RuntimeExecutorPlugin):
    name = "vqa-host"

    def load(self, *args, **kwargs):
        from vqa_host_executor.executor import HostRuntimeExecutor

        return HostRuntimeExecutor
