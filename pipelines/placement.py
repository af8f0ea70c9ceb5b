"""Where tasks run: the 2 x T4 placement of the train task and modest requests for CPU steps.

The KFP backend uses the accelerator *type* string as the Kubernetes resource name, so the type is
the resource (`nvidia.com/gpu`), never a GKE accelerator type such as `nvidia-tesla-t4` (a
resource no node has: the pod would never schedule on self-hosted KFP). The T4 is chosen with the
GKE node selector instead, and a toleration admits the pod onto the tainted GPU node pool.
"""

from kfp import dsl, kubernetes

from pipelines.config import PlacementConfig

IMAGE_USER = 1000  # uid and gid the images run as (containers/*.Dockerfile `USER 1000:1000`)


def place_train_task(task: dsl.PipelineTask, placement: PlacementConfig) -> dsl.PipelineTask:
    """Sets the GPUs, node selector, toleration, shared memory, resources, timeout and retries of train."""
    _training_resources(task, placement)
    kubernetes.set_timeout(task, placement.train_timeout_seconds)
    if placement.accelerator_count > 0:
        kubernetes.empty_dir_mount(
            task, volume_name="dshm", mount_path="/dev/shm", medium="Memory", size_limit=placement.shm_size
        )
        task.set_accelerator_type(placement.accelerator_resource)
        task.set_accelerator_limit(placement.accelerator_count)
        if placement.node_selector_value:
            kubernetes.add_node_selector(task, placement.node_selector_key, placement.node_selector_value)
        if placement.toleration_key:
            kubernetes.add_toleration(
                task, key=placement.toleration_key, operator="Exists", effect="NoSchedule"
            )
    if placement.retries:
        task.set_retry(
            num_retries=placement.retries,
            backoff_duration="60s",
            backoff_factor=2.0,
            backoff_max_duration=f"{placement.retry_window_seconds}s",
        )
    task.set_caching_options(placement.caching)
    return _non_root(task)


def place_cpu_task(task: dsl.PipelineTask, placement: PlacementConfig) -> dsl.PipelineTask:
    """Sets modest CPU/memory requests (no GPU) on a non-training step."""
    task.set_cpu_request(placement.step_cpu).set_memory_request(placement.step_memory)
    task.set_memory_limit(placement.step_memory)
    task.set_caching_options(placement.caching)
    return _non_root(task)


def place_featurize_task(task: dsl.PipelineTask, placement: PlacementConfig) -> dsl.PipelineTask:
    """The shared featurize step (CPU-only runs): the train task's CPU and memory, no GPU."""
    _training_resources(task, placement)
    task.set_caching_options(placement.caching)
    return _non_root(task)


def _non_root(task: dsl.PipelineTask) -> dsl.PipelineTask:
    """The images' own user, enforced by Kubernetes.

    The compiler itself adds no privilege escalation, no capabilities and the runtime's seccomp profile.
    """
    return kubernetes.set_security_context(
        task, run_as_user=IMAGE_USER, run_as_group=IMAGE_USER, run_as_non_root=True
    )


def _training_resources(task: dsl.PipelineTask, placement: PlacementConfig) -> None:
    task.set_cpu_request(placement.train_cpu).set_cpu_limit(placement.train_cpu)
    task.set_memory_request(placement.train_memory).set_memory_limit(placement.train_memory)
