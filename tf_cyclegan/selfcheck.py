"""``python -m tf_cyclegan.selfcheck``: a few training steps on every device path this machine has, as a table.

Before a long run on new hardware: the devices TensorFlow sees, then the paper's networks (the
monet2photo preset: ResNet generator, 70x70 PatchGAN, LSGAN, identity loss, pool of 50) trained a
few steps through ``python -m tf_cyclegan.train`` once per row, each in its own process (precision
and logical devices are per process): one device in float32, each faster precision the hardware
runs natively, ``--jit_compile``, MirroredStrategy (over all GPUs, or two CPU replicas), and a
resume. Prints what passed and the images/s of each; rows the machine cannot run say why.
Exit code 0 when every row that ran passed, 1 otherwise.
"""

import dataclasses
import os
import re
import subprocess
import sys
import tempfile
import time

from tf_cyclegan import cli, fs
from tf_cyclegan.config import PRESET_DIR
from tf_cyclegan.errors import UserError

PROG = "python -m tf_cyclegan.selfcheck"
NO_GPU = {"CUDA_VISIBLE_DEVICES": "-1"}  # CPU rows stay on the CPU on a machine with GPUs


@dataclasses.dataclass
class Row:
    name: str
    flags: list
    env: dict = dataclasses.field(default_factory=dict)
    skip: str = ""  # why the row is not run here ('' = run it)
    resumes: str = ""  # the row whose run directory this one continues
    passed: bool = False
    images_per_second: float | None = None
    note: str = ""


def plan(cpu_flags, gpus):
    """The rows for a machine with CPU ``cpu_flags`` and GPUs ``gpus`` ([(major, minor) compute capability])."""
    from tf_cyclegan.precision import native_bf16_flags  # here, not at the top: TensorFlow stays out of --help

    native = native_bf16_flags(cpu_flags)
    rows = [
        Row("CPU, one device, float32", ["--precision=float32"], NO_GPU),
        Row(
            "CPU, one device, mixed_bfloat16",
            ["--precision=mixed_bfloat16"],
            NO_GPU,
            skip="" if native else "bf16 is emulated on this CPU (no avx512_bf16 or amx_bf16 flag)",
        ),
        Row("CPU, one device, float32, --jit_compile", ["--precision=float32", "--jit_compile=true"], NO_GPU),
        Row(
            "CPU, mirrored over 2 CPU replicas",
            ["--precision=float32", "--strategy=mirrored", "--cpu_replicas=2", "--batch_size=2"],
            NO_GPU,
        ),
        Row("CPU, resume the float32 run", ["--precision=float32"], NO_GPU, resumes="CPU, one device, float32"),
    ]
    no_gpu = "" if gpus else "no GPU visible to TensorFlow"
    oldest = min(gpus) if gpus else (0, 0)
    half = "mixed_bfloat16" if oldest >= (8, 0) else "mixed_float16" if oldest >= (7, 0) else ""
    one_gpu = {"CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", "0").split(",")[0]}
    rows += [
        Row("GPU, one device, float32", ["--strategy=default", "--precision=float32"], one_gpu, skip=no_gpu),
        Row(
            f"GPU, one device, {half or 'half precision'}",
            ["--strategy=default", f"--precision={half}"],
            one_gpu,
            skip=no_gpu or ("" if half else "no GPU of compute capability 7.0 or newer"),
        ),
        Row(
            "GPU, one device, float32, --jit_compile",
            ["--strategy=default", "--precision=float32", "--jit_compile=true"],
            one_gpu,
            skip=no_gpu,
        ),
        Row(
            f"GPU, mirrored over all {len(gpus)} GPUs" if gpus else "GPU, mirrored over all GPUs",
            ["--strategy=mirrored", "--precision=float32", f"--batch_size={max(len(gpus), 1)}"],
            skip=no_gpu or ("" if len(gpus) > 1 else "one GPU: nothing to mirror over"),
        ),
    ]
    return rows


def train_flags(size, steps, network):
    """The train command's flags every row shares: the paper preset on the bundled sample, a few steps."""
    return [
        f"--config={PRESET_DIR / 'monet2photo.yaml'}",
        "--dataset=emoji",
        f"--image_size={size}",
        f"--load_size={size + size // 8}",
        f"--steps={steps}",
        f"--log_every_steps={max(steps // 2, 1)}",  # the second log line times the steps after tracing
        f"--save_every_steps={steps}",
        "--num_samples=0",
        "--health_images=0",  # the check is of device paths; the health probe would only add time
        *network,
    ]


def run_row(row, runs, common, steps, timeout, log):
    """Runs one row's training (or resume) as users run it; fills in passed, images/s and a note."""
    run_dir = runs / re.sub(r"\W+", "_", row.resumes or row.name).strip("_")
    flags = [*common, *row.flags, f"--run_dir={run_dir}"]
    if row.resumes:
        flags = [*flags, f"--steps={2 * steps}"]  # its second log line again times steps after tracing
    started = time.perf_counter()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "tf_cyclegan.train", *flags],
            env={**os.environ, **row.env},
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired:
        row.note = f"no result after {timeout} s"
        return row
    seconds = time.perf_counter() - started
    rates = [float(match) for match in re.findall(r"img/s ([\d.e+-]+)", result.stdout)]
    row.passed = result.returncode == 0 and (not row.resumes or "resuming from" in result.stdout)
    row.images_per_second = rates[-1] if rates else None
    if row.passed:
        row.note = f"{seconds:.0f} s in all" + (", resumed from its checkpoint" if row.resumes else "")
    else:
        errors = [line for line in result.stderr.splitlines() if "error:" in line]
        row.note = (errors or result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1][-200:]
    log(f"  {'ok  ' if row.passed else 'FAIL'} {row.name}: {row.note}")
    return row


def describe_devices():
    """Lines naming the CPU (and its bf16 flags) and every device TensorFlow sees, and the GPUs' capabilities."""
    # Here, not at the top: TensorFlow stays out of --help and flag errors.
    import tensorflow as tf

    from tf_cyclegan.precision import cpu_flags, gpu_capabilities, native_bf16_flags

    model = next(
        (line.split(":", 1)[1].strip() for line in _cpuinfo().splitlines() if line.startswith("model name")), "?"
    )
    native = native_bf16_flags(cpu_flags())
    lines = [
        f"CPU: {model}, {os.cpu_count()} threads, native bf16: {', '.join(native) or 'no'}",
        "TensorFlow "
        + tf.__version__
        + " sees: "
        + ", ".join(f"{d.device_type}:{d.name.rsplit(':', 1)[-1]}" for d in tf.config.list_physical_devices()),
    ]
    gpus = gpu_capabilities()
    lines += [f"GPU {i}: compute capability {major}.{minor}" for i, (major, minor) in enumerate(gpus)]
    return lines, cpu_flags(), gpus


def _cpuinfo():
    try:
        return fs.path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def table(rows):
    lines = ["| check | passed | images/s | note |", "|---|---|---|---|"]
    for row in rows:
        rate = f"{row.images_per_second:.2f}" if row.images_per_second else "—"
        passed = "not run" if row.skip else ("yes" if row.passed else "**no**")
        lines.append(f"| {row.name} | {passed} | {rate} | {row.skip or row.note} |")
    return lines


def parse_args(argv=None):
    parser = cli.OneLineParser(prog=PROG, description=__doc__.splitlines()[0].split(": ", 1)[1])
    parser.add_argument("--steps", type=int, default=6, help="training steps per row (default 6)")
    parser.add_argument("--image_size", type=int, default=64, help="px (default 64; the networks are the paper's)")
    parser.add_argument("--ngf", type=int, default=0, help="generator width (default: the preset's, 64)")
    parser.add_argument("--ndf", type=int, default=0, help="discriminator width (default: the preset's, 64)")
    parser.add_argument("--n_blocks", type=int, default=0, help="ResNet blocks (default: the preset's, 9)")
    parser.add_argument("--timeout", type=int, default=600, help="seconds a row may take")
    cli.add_verbose_flag(parser)
    args = parser.parse_args(argv)
    if args.steps < 2 or args.image_size < 8 or min(args.ngf, args.ndf, args.n_blocks) < 0 or args.timeout <= 0:
        cli.fail(PROG, "--steps must be >= 2, --image_size >= 8, --ngf/--ndf/--n_blocks >= 0, --timeout > 0")
    return args


def selfcheck(args, log=print):
    lines, flags, gpus = describe_devices()
    for line in lines:
        log(line)
    network = [f"--{name}={getattr(args, name)}" for name in ("ngf", "ndf", "n_blocks") if getattr(args, name)]
    common = train_flags(args.image_size, args.steps, network)
    rows = plan(flags, gpus)
    log(f"training {args.steps} steps per row at {args.image_size} px (monet2photo preset's networks and pool):")
    with tempfile.TemporaryDirectory(prefix="tf_cyclegan_selfcheck_") as folder:
        for row in rows:
            if not row.skip:
                run_row(row, fs.path(folder), common, args.steps, args.timeout, log)
    log("")
    for line in table(rows):
        log(line)
    failed = [row.name for row in rows if not row.skip and not row.passed]
    if failed:
        raise UserError(f"{len(failed)} check(s) failed: {'; '.join(failed)} (rerun one with the train command)")
    not_run = [row.name for row in rows if row.skip]
    log(
        f"all {len(rows) - len(not_run)} checks that ran passed" + (f"; {len(not_run)} not run here" if not_run else "")
    )


def main(argv=None):
    args = parse_args(argv)
    cli.quiet_tensorflow(args.verbose)
    return cli.run_command(PROG, lambda: selfcheck(args))


if __name__ == "__main__":
    sys.exit(main())
