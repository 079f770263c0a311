"""Choosing the ``tf.distribute`` strategy and whether this process is the chief."""

import json
import os

import tensorflow as tf

from tf_cyclegan.errors import UserError


class StrategyError(UserError, RuntimeError):
    pass


def split_cpu(replicas):
    """Splits the CPU into ``replicas`` logical devices (before TF initialises devices)."""
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(cpus[0], [tf.config.LogicalDeviceConfiguration()] * replicas)
    except RuntimeError:
        raise StrategyError("--cpu_replicas must be applied before TensorFlow initialises its devices") from None


def make_strategy(name, cpu_replicas=0):
    """``auto`` → MirroredStrategy with >1 GPU (or CPU replicas), else the default strategy."""
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise StrategyError("--strategy=multi_worker needs the TF_CONFIG environment variable (cluster and task)")
        if cpu_replicas:
            split_cpu(cpu_replicas)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if cpu_replicas:
        split_cpu(cpu_replicas)
    gpus = tf.config.list_logical_devices("GPU")
    if name == "mirrored" or (name == "auto" and (len(gpus) > 1 or cpu_replicas > 1)):
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return tf.distribute.MirroredStrategy(devices)
    return tf.distribute.get_strategy()


def has_accelerator():
    """True when a GPU or TPU is visible to this process."""
    return bool(tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("TPU"))


def is_chief(strategy):
    """True for the process that writes checkpoints, logs and samples."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.cluster_spec().as_dict():
        return True
    task_type, task_id = resolver.task_type, resolver.task_id
    return task_type == "chief" or (
        task_type == "worker"
        and task_id == 0
        and "chief" not in json.loads(os.environ.get("TF_CONFIG", "{}")).get("cluster", {})
    )


def is_multi_worker(strategy):
    """True when the strategy spans processes, so a checkpoint save is a collective every worker joins."""
    resolver = getattr(strategy, "cluster_resolver", None)
    return bool(resolver is not None and sum(len(tasks) for tasks in resolver.cluster_spec().as_dict().values()) > 1)


def worker_dir(path, strategy):
    """Where this worker saves: ``path`` on the chief, a private temp dir elsewhere (MWMS needs all to save)."""
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    return os.path.join(path, f".worker_{resolver.task_type}_{resolver.task_id}")


def jit_note(jit_compile):
    """What to tell a user who asked for XLA on a machine without an accelerator (None otherwise)."""
    if jit_compile and not has_accelerator():
        return (
            "note: --jit_compile=true on a CPU compiles the step with XLA, which measured no faster here than "
            "without it; it is meant for GPUs and TPUs"
        )
    return None
