"""Runs, data, presets and exports on a TensorFlow file system that is not the local disk (gs://, s3://, hdfs://, ...).

``ram://`` is TensorFlow's in-memory file system: the same ``tf.io.gfile`` layer as ``gs://``, no network,
one process. ``ram_session.py`` runs train, resume, evaluate, translate, export and export --web there
through the commands' ``main()``; these tests read what it did.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
from trainrun import ENV

from tf_cyclegan import fs

SESSION = Path(__file__).resolve().parent / "ram_session.py"


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("cwd")
    out = tmp_path_factory.mktemp("out") / "session.json"
    result = subprocess.run(
        [sys.executable, str(SESSION), str(out)], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=900
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(out.read_text())
    report["local_files"] = sorted(str(p.relative_to(cwd)) for p in cwd.rglob("*"))
    return report


def test_every_command_runs_on_ram_paths_and_writes_nothing_locally(session):
    for name, step in session["steps"].items():
        assert step["code"] == 0, f"{name} {step['argv']}: {step['stdout'][-1500:]}"
        assert "Traceback" not in step["stdout"]
    assert session["local_files"] == []  # no runs/ or export/ folder appeared in the working folder


def test_a_run_directory_on_ram_holds_the_whole_run_and_resumes(session):
    files, run = session["files"], "ram://bucket/runs/tiny"
    for name in ("config.yaml", "health.json", "eval.json", "best/best.json", "checkpoints/checkpoint"):
        assert f"{run}/{name}" in files, name
    assert {f"{run}/checkpoints/ckpt-{s}.index" for s in (2, 4, 6)} <= set(files)
    assert {f"{run}/samples/step_{s:07d}_{d}.png" for s in (2, 4, 6) for d in ("a2b", "b2a")} <= set(files)
    assert any(name.startswith(f"{run}/logs/train/events.out.tfevents") for name in files)
    assert session["config"].count("# end of config\n") == 1  # rewritten on resume: replaced, not appended to
    assert "pool_size: 50" in session["config"] and "lambda_identity: 0.5" in session["config"]
    assert f"resuming from {run}/checkpoints/ckpt-4 at step 4/6" in session["steps"]["resume"]["stdout"]
    assert "Done: step 6/6" in session["steps"]["resume"]["stdout"]
    assert "not on a local disk, where the trainer lock works" in session["steps"]["train"]["stdout"]
    assert "notes.txt" in session["steps"]["train"]["stdout"]  # the data folder was listed on ram://, file by file
    assert (
        "checkpoint ram://bucket/runs/tiny/checkpoints/ckpt-4 on ram://bucket/data/emoji"
        in (session["steps"]["evaluate"]["stdout"])
    )


def test_translate_and_export_read_and_write_ram(session):
    files = session["files"]
    inputs = sorted(name.rsplit("/", 1)[1] for name in files if name.startswith("ram://bucket/data/emoji/testA/"))
    for output in ("translated", "served"):  # from the run, then from the SavedModel exported to ram://
        assert sorted(n.rsplit("/", 1)[1] for n in files if n.startswith(f"ram://bucket/{output}/")) == inputs
    assert "ram://bucket/data/emoji/testA/moving.gif: 4 frames" in session["steps"]["translate"]["stdout"]
    for version in ("tiny_a2b/1", "tiny_b2a/1", "tiny_a2b/2"):
        for name in ("saved_model.pb", "variables/variables.index", "assets.extra/tf_cyclegan.json"):
            assert f"ram://bucket/export/{version}/{name}" in files
    assert "ram://bucket/export/tflite/tiny_a2b_fp32.tflite" in files
    for name in ("index.html", "manifest.json", "a2b.tflite", "b2a.tflite"):
        assert f"ram://bucket/export/web/tiny/{name}" in files
    assert not [name for name in files if "/." in name]  # no temporary or staging names left behind


def test_remote_paths_keep_their_scheme_and_names():
    location = fs.path("gs://bucket//runs/h2z/")
    assert str(location) == "gs://bucket/runs/h2z"
    assert str(location / "checkpoints" / "ckpt-3.index") == "gs://bucket/runs/h2z/checkpoints/ckpt-3.index"
    assert (location.name, str(location.parent), (location / "a.png").suffix) == ("h2z", "gs://bucket/runs", ".png")
    assert str((location / ".." / "other").resolve()) == "gs://bucket/runs/other"
    assert isinstance(fs.path("runs/h2z"), Path) and not fs.is_remote("runs/h2z")


def test_remote_listing_writing_and_errors_behave_like_local_ones():
    import tensorflow as tf

    from tf_cyclegan.data.sources import list_folder

    root = "ram://unit/data"
    tf.io.gfile.makedirs(f"{root}/sub")
    for name in ("a.png", "sub/b.jpg", ".hidden.png", "notes.txt"):
        tf.io.gfile.GFile(f"{root}/{name}", "wb").write(b"1")
    domain = list_folder(root)
    assert (domain.items, domain.labels) == ([f"{root}/a.png", f"{root}/sub/b.jpg"], ["a.png", "sub/b.jpg"])
    assert domain.skipped == [f"{root}/notes.txt"]
    fs.write_atomic(f"{root}/config.yaml", "first version, longer\n")
    fs.write_atomic(f"{root}/config.yaml", "second\n")  # ram:// appends when a file is reopened: replaced here
    assert fs.path(f"{root}/config.yaml").read_text() == "second\n"
    assert sorted(p.name for p in fs.path(root).iterdir()) == [
        ".hidden.png",
        "a.png",
        "config.yaml",
        "notes.txt",
        "sub",
    ]
    with pytest.raises(FileNotFoundError) as missing:
        fs.path(f"{root}/gone.yaml").read_text()
    assert missing.value.filename == f"{root}/gone.yaml"
