"""A corpus of bad and odd inputs through what users run: data check, translate, train, configs, serving.

Each bad input gets one line naming the file, flag or field; no traceback; valid oddities (CMYK, 16-bit,
animated, 1 x 1, a 100000 x 1 strip, a Latin-1 file name, a file with the wrong extension) just work; a
decompression bomb is refused from its header, so memory stays bounded.
"""

import base64
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from badfiles import bomb_png, write_corpus
from PIL import Image
from trainrun import ENV, run_train

EMOJI = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "emoji"
# Peak memory of a process that ends by printing it (a decoded 10000 x 10000 bomb alone takes 1.6 GB as RGBA floats;
# the process measured 0.59 GB with the header check and 4.4 GB without).
# VmHWM, not ru_maxrss: a child started by a big process (a pytest worker holding TensorFlow) inherits its ru_maxrss.
MEASURED = (
    "import runpy, sys\nsys.argv = sys.argv[1:]\ntry:\n    runpy.run_module(sys.argv[0], run_name='__main__')\n"
    "finally:\n    peak = [l for l in open('/proc/self/status') if l.startswith('VmHWM:')][0].split()[1]\n"
    "    print('MAXRSS_MB', int(peak) // 1024, flush=True)"
)
BAD_REASONS = {
    "bomb.png": "10000 x 10000 pixels, above --max_pixels",
    "cut_short.png": "cannot be decoded",
    "empty.png": "empty file",
    "not_an_image.jpg": "cannot be decoded",
}


def measured(module, *args, cwd=None):
    result = subprocess.run(
        [sys.executable, "-c", MEASURED, module, *args], cwd=cwd, env=ENV, capture_output=True, text=True, timeout=600
    )
    peak = int([line for line in result.stdout.splitlines() if line.startswith("MAXRSS_MB")][0].split()[1])
    return result, peak


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    kinds = write_corpus(root / "trainA")
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(exist_ok=True)
        for path in sorted((EMOJI / domain).glob("*.png"))[:6]:
            shutil.copy(path, root / domain / path.name)
    return root, kinds


def test_data_check_names_every_bad_file_and_keeps_memory_bounded(corpus):
    root, kinds = corpus
    result, peak = measured("tf_cyclegan.data", "check", str(root), "--image_size", "32")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for name, reason in BAD_REASONS.items():
        line = [l for l in result.stdout.splitlines() if f"skipped unreadable {name}" in l]
        assert len(line) == 1 and reason in line[0], (name, result.stdout)
    valid = sum(kind == "valid" for kind in kinds.values())
    assert f"trainA    {valid + 6:>6} images  {len(BAD_REASONS)} unreadable" in result.stdout
    assert peak < 1500, peak


def test_translate_skips_bad_files_by_name_and_translates_the_odd_ones(corpus, tiny_run, tmp_path):
    root, kinds = corpus
    result, peak = measured(
        "tf_cyclegan.translate",
        f"--run_dir={tiny_run.path}",
        f"--input={root / 'trainA'}",
        f"--output={tmp_path / 'out'}",
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    for name in BAD_REASONS:
        assert f"skipped {root / 'trainA' / name}:" in result.stdout + result.stderr, name
    for name, kind in kinds.items():
        if kind == "valid":
            written = tmp_path / "out" / name
            assert written.is_file(), name
            assert Image.open(written).size == Image.open(root / "trainA" / name).size, name
    assert f"skipped {len(BAD_REASONS)}" in result.stdout and peak < 1500, peak


@pytest.mark.slow
def test_training_on_the_corpus_skips_the_bad_files_and_trains(corpus, tmp_path):
    root, _ = corpus
    result = run_train(
        [f"--dataset={root}", "--image_size=32", "--load_size=36", "--ngf=4", "--ndf=4", "--steps=3", "--run_dir=run"],
        tmp_path,
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert all(f"skipped unreadable {name}" in result.stdout for name in BAD_REASONS)
    assert "Done: step 3/3" in result.stdout


def test_an_empty_folder_is_one_line(tmp_path):
    (tmp_path / "empty").mkdir()
    result = run_train(
        [f"--domain_a={tmp_path / 'empty'}", f"--domain_b={EMOJI / 'trainB'}", "--steps=1"], tmp_path, timeout=120
    )
    lines = [l for l in result.stderr.splitlines() if "error:" in l]
    assert result.returncode == 1 and len(lines) == 1 and "no images found" in lines[0] and "empty" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "text, needle",
    [
        ("data:\n  image_size: [32\n", "not valid YAML at line"),
        ("model:\n  depth: 3\n", "unknown setting 'model.depth'"),
        ("- just\n- a list\n", "must hold a mapping"),
        ("model: 3\n", "model must be a mapping"),
    ],
)
def test_a_bad_config_file_is_one_line_naming_it(tmp_path, text, needle):
    (tmp_path / "preset.yaml").write_text(text)
    result = run_train(["--config=preset.yaml", "--steps=1"], tmp_path, timeout=60)
    lines = [l for l in result.stderr.splitlines() if "error:" in l]
    assert result.returncode == 2 and len(lines) == 1, result.stderr[-1000:]
    assert "preset.yaml" in lines[0] and needle in lines[0] and "Traceback" not in result.stderr


def test_a_config_file_that_is_not_utf8_is_one_line(tmp_path):
    (tmp_path / "preset.yaml").write_bytes(b"name: caf\xe9\n")
    result = run_train(["--config=preset.yaml", "--steps=1"], tmp_path, timeout=60)
    assert result.returncode == 2 and "preset.yaml: not a UTF-8 text file" in result.stderr


def test_a_bomb_in_a_serving_request_is_refused_before_decoding(tmp_path):
    import tensorflow as tf

    from tf_cyclegan import build_generator
    from tf_cyclegan.exporter import make_serving_archive
    from tf_cyclegan.rest_emulation import predict_rest

    make_serving_archive(build_generator("resnet_1blocks", ngf=4), 3, (1.0, 1.0, 1.0), max_pixels=1_000_000).write_out(
        str(tmp_path / "model"), verbose=False
    )
    loaded = tf.saved_model.load(str(tmp_path / "model"))
    bomb = base64.b64encode(bomb_png(2000, 2000)).decode()
    refused = predict_rest(loaded, {"signature_name": "translate_bytes", "instances": [{"b64": bomb}]})
    assert set(refused) == {"error"} and "more than 1000000 pixels" in refused["error"]
    for body, needle in (
        ("{not json", "JSON Parse error"),
        ("[1, 2]", "must be a JSON object"),
        ('{"instances": [[1, 2]]}', ""),
        ('{"signature_name": "translate_bytes"}', "Missing"),
    ):
        answer = predict_rest(loaded, body)
        assert set(answer) == {"error"} and needle in answer["error"], (body, answer)
