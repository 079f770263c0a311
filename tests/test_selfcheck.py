"""python -m tf_cyclegan.selfcheck: its rows for CPU-only and GPU machines, a failing row, and the whole command on
this CPU (the GPU rows cannot run here: no GPU)."""

import subprocess
import sys

import pytest
from trainrun import ENV

from tf_cyclegan import selfcheck


def test_a_cpu_only_machine_runs_the_cpu_rows_and_says_why_not_the_gpu_rows():
    rows = {row.name: row for row in selfcheck.plan(frozenset({"avx2"}), [])}
    assert not rows["CPU, one device, float32"].skip and not rows["CPU, mirrored over 2 CPU replicas"].skip
    assert "emulated" in rows["CPU, one device, mixed_bfloat16"].skip
    assert all(row.skip == "no GPU visible to TensorFlow" for name, row in rows.items() if name.startswith("GPU"))


def test_a_machine_with_two_ampere_gpus_gets_bf16_and_mirrored_rows():
    rows = {row.name: row for row in selfcheck.plan(frozenset({"avx512_bf16"}), [(8, 0), (8, 6)])}
    assert not rows["CPU, one device, mixed_bfloat16"].skip
    assert not rows["GPU, one device, mixed_bfloat16"].skip
    mirrored = rows["GPU, mirrored over all 2 GPUs"]
    assert not mirrored.skip and "--batch_size=2" in mirrored.flags and "--strategy=mirrored" in mirrored.flags
    one_volta = {row.name: row for row in selfcheck.plan(frozenset(), [(7, 0)])}
    assert not one_volta["GPU, one device, mixed_float16"].skip
    assert one_volta["GPU, mirrored over all 1 GPUs"].skip == "one GPU: nothing to mirror over"


def test_a_row_that_fails_says_why(tmp_path):
    row = selfcheck.Row("bad", ["--precision=float64"])
    selfcheck.run_row(row, tmp_path, selfcheck.train_flags(32, 2, []), 2, 120, lambda line: None)
    assert not row.passed and "--precision: 'float64' is not one of" in row.note


@pytest.mark.slow
def test_the_selfcheck_prints_its_table_on_this_cpu(tmp_path):
    # The paper preset's networks, narrowed (ngf/ndf 8, 2 blocks) so that five trainings fit in a test.
    result = subprocess.run(
        [sys.executable, "-m", "tf_cyclegan.selfcheck", "--image_size=32", "--ngf=8", "--ndf=8", "--n_blocks=2"],
        cwd=tmp_path,
        env=ENV,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("CPU: ") and "native bf16: " in lines[0]
    for name in ("CPU, one device, float32", "CPU, one device, float32, --jit_compile", "CPU, mirrored over 2 CPU"):
        row = next(line for line in lines if line.startswith(f"| {name}"))
        cells = [cell.strip() for cell in row.split("|")]
        assert cells[2] == "yes" and float(cells[3]) > 0, row
    resume = next(line for line in lines if line.startswith("| CPU, resume"))
    assert "| yes |" in resume and "resumed from its checkpoint" in resume
    assert "| GPU, one device, float32 | not run | — | no GPU visible to TensorFlow |" in lines
    assert lines[-1].startswith("all ") and "not run here" in lines[-1]
