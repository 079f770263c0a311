"""Choosing the ``tf.distribute`` strategy and whether this process is the chief."""

import json
import os
import re

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


PORT_ENV = "TF_CYCLEGAN_PORT"  # under SLURM: the first port of a node's workers (task k on a node: PORT + k)


def cluster_resolver():
    """(resolver, where it came from) for ``--strategy=multi_worker``: TF_CONFIG when it is set (a Kubernetes
    operator or manifest sets it, or you do: it is explicit, so it wins), else a SLURM job step (srun, one task per
    worker: SLURM_PROCID, SLURM_STEP_NODELIST, SLURM_STEP_TASKS_PER_NODE; task k on a node listens on
    TF_CYCLEGAN_PORT + k, default 8888)."""
    env = os.environ
    if "SLURM_PROCID" in env and "TF_CONFIG" not in env:
        if "SLURM_STEP_NODELIST" not in env:
            raise StrategyError(
                "--strategy=multi_worker under SLURM: start it with srun (one task per worker), not in the batch "
                "script alone (SLURM_STEP_NODELIST is not set)"
            )
        try:
            port = int(env.get(PORT_ENV, "8888"))
            hosts = expand_hostlist(env["SLURM_STEP_NODELIST"])
            per_node = expand_tasks_per_node(env.get("SLURM_STEP_TASKS_PER_NODE", "1"))
            rank = int(env["SLURM_PROCID"])
        except ValueError as error:
            raise StrategyError(f"--strategy=multi_worker under SLURM: {error}") from None
        if len(per_node) != len(hosts):
            raise StrategyError(
                f"--strategy=multi_worker under SLURM: {len(hosts)} host(s) in SLURM_STEP_NODELIST but "
                f"{len(per_node)} in SLURM_STEP_TASKS_PER_NODE"
            )
        workers = [f"{host}:{port + k}" for host, count in zip(hosts, per_node) for k in range(count)]
        if not 0 <= rank < len(workers):
            raise StrategyError(f"--strategy=multi_worker under SLURM: SLURM_PROCID={rank} but {len(workers)} tasks")
        gpus = len(tf.config.list_physical_devices("GPU"))  # as SLURM bound them to this task (CUDA_VISIBLE_DEVICES)
        resolver = tf.distribute.cluster_resolver.SimpleClusterResolver(
            tf.train.ClusterSpec({"worker": workers}),
            task_type="worker",
            task_id=rank,
            num_accelerators={"GPU": gpus} if gpus else None,
            rpc_layer="grpc",
        )
        return resolver, "SLURM"
    if "TF_CONFIG" in env:
        return tf.distribute.cluster_resolver.TFConfigClusterResolver(), "TF_CONFIG"
    raise StrategyError(
        "--strategy=multi_worker needs a cluster: run it with srun in a SLURM job, or set TF_CONFIG (cluster and task)"
    )


def expand_hostlist(text):
    """SLURM's compressed host list as names: ``node[01-03,7],gpu`` → node01, node02, node03, node7, gpu."""
    hosts = []
    for name, ranges in re.findall(r"([^,\[]+)(?:\[([^\]]*)\])?,?", text.strip()):
        if not ranges:
            hosts.append(name)
            continue
        for part in ranges.split(","):
            low, _, high = part.partition("-")
            if not low.isdigit() or (high and not high.isdigit()):
                raise ValueError(f"cannot read the host list {text!r}")
            hosts += [f"{name}{number:0{len(low)}d}" for number in range(int(low), int(high or low) + 1)]
    if not hosts:
        raise ValueError(f"cannot read the host list {text!r}")
    return hosts


def expand_tasks_per_node(text):
    """SLURM's tasks per node as a list: ``2(x3),1`` → [2, 2, 2, 1]."""
    counts = []
    for part in text.strip().split(","):
        match = re.fullmatch(r"(\d+)(?:\(x(\d+)\))?", part.strip())
        if not match:
            raise ValueError(f"cannot read SLURM_STEP_TASKS_PER_NODE={text!r}")
        counts += [int(match.group(1))] * int(match.group(2) or 1)
    return counts


def cluster_line(resolver, source):
    """The start line naming the cluster: its source, hosts, this task and the chief."""
    spec = resolver.cluster_spec().as_dict()
    hosts = ", ".join(f"{kind} {i} {address}" for kind, tasks in spec.items() for i, address in enumerate(tasks))
    chief = "chief 0" if "chief" in spec else "worker 0"
    return f"cluster from {source}: {hosts}; this task: {resolver.task_type} {resolver.task_id}; chief: {chief}"


def make_strategy(name, cpu_replicas=0, log=print):
    """``auto`` → MirroredStrategy with >1 GPU (or CPU replicas), else the default strategy."""
    if name == "multi_worker":
        resolver, source = cluster_resolver()
        if cpu_replicas:
            split_cpu(cpu_replicas)
        strategy = tf.distribute.MultiWorkerMirroredStrategy(cluster_resolver=resolver)
        log(cluster_line(resolver, source))
        return strategy
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
    """Where this worker saves: ``path`` (a pathlib.Path or fs.RemotePath) on the chief, a private folder in it
    elsewhere (MWMS needs every worker to save)."""
    if is_chief(strategy):
        return path
    resolver = strategy.cluster_resolver
    return path / f".worker_{resolver.task_type}_{resolver.task_id}"


def jit_note(jit_compile):
    """What to tell a user who asked for XLA on a machine without an accelerator (None otherwise)."""
    if jit_compile and not has_accelerator():
        return (
            "note: --jit_compile=true on a CPU compiles the step with XLA, which measured no faster here than "
            "without it; it is meant for GPUs and TPUs"
        )
    return None
