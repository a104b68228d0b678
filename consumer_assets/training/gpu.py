"""Run tags that put training on a GPU when a GPU-aware launcher runs it.

The Kubernetes run launcher reads the ``dagster-k8s/config`` tag of a job (one pod per
run) and the k8s executor reads it from each op (one pod per step). Without such a
launcher the tags are inert and training runs on the CPU it lands on, with the same
code. Node selector and toleration come from the environment so that one image fits
any cluster's GPU node pool.
"""

import json

from consumer_assets import environment

GPU_POOL = "gpu"
GPU_RUN_TAG = "consumer-assets/gpu"  # dagster.yaml limits runs with this tag to one at a time

DEFAULT_NODE_SELECTOR = {"nvidia.com/gpu.present": "true"}
DEFAULT_TOLERATIONS = [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]


def k8s_gpu_config(node_selector: dict | None = None, tolerations: list | None = None, gpus: int = 1) -> dict:
    """The ``dagster-k8s/config`` value asking for ``gpus`` NVIDIA GPUs on a matching node."""
    return {
        "container_config": {
            "resources": {"limits": {"nvidia.com/gpu": str(gpus)}, "requests": {"cpu": "4", "memory": "16Gi"}}
        },
        "pod_spec_config": {
            "node_selector": node_selector or DEFAULT_NODE_SELECTOR,
            "tolerations": tolerations or DEFAULT_TOLERATIONS,
        },
    }


def _json(variable: environment.Variable):
    value = variable.value()
    return json.loads(value) if value else None


K8S_GPU_CONFIG = k8s_gpu_config(
    node_selector=_json(environment.GPU_NODE_SELECTOR), tolerations=_json(environment.GPU_TOLERATIONS)
)
GPU_OP_TAGS = {"dagster-k8s/config": K8S_GPU_CONFIG}
GPU_JOB_TAGS = {"dagster-k8s/config": K8S_GPU_CONFIG, GPU_RUN_TAG: "true"}
