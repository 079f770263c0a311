import fcntl
import json
import os
import shutil
import subprocess
import sys
import types

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

# The shared run: the quickstart preset (bundled Fluent data, U-Net, pool 50, identity loss) at 32 px and 4 channels.
# --max_dataset_size=4 only makes an epoch 4 steps long, so that --eval_every=1 evaluates twice in 8 steps.
TINY_RUN_ARGS = [
    "--steps=8",
    "--run_dir=run",
    "--name=tiny",
    "--image_size=32",
    "--load_size=36",
    "--ngf=4",
    "--ndf=4",
    "--max_dataset_size=4",
    "--eval_every=1",
    "--max_eval_images=6",
    "--log_every_steps=2",
    "--sample_every_steps=3",
    "--save_every_steps=2",
    "--num_samples=2",
]


@pytest.fixture(autouse=True)
def _seeded():
    import keras

    keras.utils.set_random_seed(1234)
    yield


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory, worker_id):
    """One small run trained through the CLI, shared by every test that only reads a run
    (its output files, evaluate, translate, export). Its command's stdout and stderr come with it.

    Under pytest-xdist the workers share one run (the first to get the lock trains it, ~40 s saved per
    extra worker): it lives in the session's common temporary folder. The fixture fails if a test wrote into it."""
    common = tmp_path_factory.getbasetemp() if worker_id == "master" else tmp_path_factory.getbasetemp().parent
    root = common / "tiny_run"
    with open(common / "tiny_run.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (root / "output.json").is_file():
            shutil.rmtree(root, ignore_errors=True)  # a worker killed while training left it half-done
            root.mkdir()
            env = {key: value for key, value in os.environ.items() if key != "TF_CPP_MIN_LOG_LEVEL"}  # as users run it
            result = subprocess.run(
                [sys.executable, "-m", "tf_cyclegan.train", *TINY_RUN_ARGS],
                cwd=root,
                env=env,
                capture_output=True,
                text=True,
                timeout=600,
            )
            assert result.returncode == 0, result.stderr[-3000:]
            (root / "output.json").write_text(json.dumps({"stdout": result.stdout, "stderr": result.stderr}))
        output = json.loads((root / "output.json").read_text())
    before = _listing(root / "run")
    yield types.SimpleNamespace(path=root / "run", stdout=output["stdout"], stderr=output["stderr"])
    changed = sorted(set(before.items()) ^ set(_listing(root / "run").items()))
    assert not changed, f"a test wrote into the shared tiny_run (copy it first): {changed[:5]}"


def _listing(folder):
    """{relative path: (size, mtime)} of every file under ``folder``."""
    return {
        str(path.relative_to(folder)): (path.stat().st_size, path.stat().st_mtime_ns)
        for path in folder.rglob("*")
        if path.is_file()
    }
