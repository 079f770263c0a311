"""Hostile but realistic inputs, through the commands users run, each ending in a correct output or one line.

Small files that declare huge images, photos with EXIF orientation, animated GIFs with hundreds of large frames,
colour-keyed PNGs, YAML bombs, non-finite settings, sizes that cannot fit, signals and concurrent runs on one
output folder, hostile REST bodies. Peak memory is read from each process's VmHWM (see test_bad_inputs.MEASURED).
"""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from badfiles import (
    BILLION_LAUGHS,
    bomb_png,
    declaring_jpeg,
    jpeg_bytes,
    keyed_png,
    many_frame_gif,
    png_bytes,
    rotated_jpeg,
)
from PIL import Image, ImageOps
from test_bad_inputs import measured
from trainrun import ENV, cli, run_train

EMOJI = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "emoji"
PEAK_MB = 2000  # the bound for every hostile file on this 24 GB machine (#26)
ROTATED = np.random.default_rng(0).integers(0, 255, (40, 80, 3), dtype=np.uint8)  # stored 80 wide, 40 high


def one_error_line(result, needle, code):
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert result.returncode == code and len(lines) == 1 and needle in lines[0], (
        result.returncode,
        result.stderr[-2000:],
    )
    assert "Traceback" not in result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory):
    """A folder of hostile files and two ordinary ones; {name: what it is}."""
    folder = tmp_path_factory.mktemp("hostile")
    progressive = jpeg_bytes(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8), progressive=True)
    files = {
        "declares_7000.jpg": declaring_jpeg(7000, 7000),  # 630 bytes that libjpeg would "decode" as 49 MP of gray
        "declares_4000.jpg": declaring_jpeg(4000, 4000),  # 16 MP: under every default pixel limit
        "cut_progressive.jpg": progressive[: len(progressive) * 7 // 10],  # libjpeg returns the scans it has
        "phone.jpg": rotated_jpeg(ROTATED, 6),
        "frames.gif": many_frame_gif(2000, 300),  # 1.2 MB; every frame decoded would be 4.8 GB
        "key_gray.png": keyed_png("L"),
        "key_rgb.png": keyed_png("RGB"),
        "scan.tif": b"II*\0" + b"\0" * 100,  # a format translate does not read: named, not dropped in silence
        "z_ordinary.png": png_bytes(np.full((24, 24, 3), 90, np.uint8)),
    }
    for name, contents in files.items():
        (folder / name).write_bytes(contents)
    return folder


def test_translate_turns_every_hostile_file_into_an_output_or_one_line(hostile, tiny_run, tmp_path):
    out = tmp_path / "out"
    result, peak = measured(
        "tf_cyclegan.translate", f"--run_dir={tiny_run.path}", f"--input={hostile}", f"--output={out}"
    )
    text = result.stdout + result.stderr
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "Corrupt JPEG data" not in result.stderr  # refused before libjpeg sees it
    assert f"skipped {hostile / 'declares_7000.jpg'}: cut short (630 bytes cannot hold 7000 x 7000 pixels)" in text
    assert f"skipped {hostile / 'cut_progressive.jpg'}: cut short" in text
    assert "ignored 1 file(s) that are not" in text and "scan.tif" in text
    upright = ImageOps.exif_transpose(Image.open(hostile / "phone.jpg"))
    assert Image.open(out / "phone.jpg").size == upright.size == (40, 80)  # saved upright, as the photo shows
    # An animation is translated frame by frame and written whole: 300 frames of 2000 x 2000 are refused, not held.
    assert f"skipped {hostile / 'frames.gif'}: 300 frames of 2000 x 2000 would hold 4.5 GB until the animation" in text
    for name in ("key_gray.png", "key_rgb.png"):
        alpha = np.asarray(Image.open(out / name).convert("RGBA"))[..., 3]
        assert alpha.tolist() == [[0, 255], [255, 0]], name  # the key colour is transparent, as in the input
    assert (out / "z_ordinary.png").is_file()  # the files after the hostile ones are translated too
    assert f"skipped {hostile / 'declares_4000.jpg'}: cut short (630 bytes cannot hold 4000 x 4000 pixels)" in text
    assert "translated 4 file(s)" in result.stdout and "skipped 4" in result.stdout
    assert peak < PEAK_MB, peak


def test_data_check_names_hostile_files_and_keeps_memory_bounded(hostile, tmp_path):
    root = tmp_path / "data"
    for domain in ("trainA", "trainB"):
        (root / domain).mkdir(parents=True)
        for path in sorted((EMOJI / domain).glob("*.png"))[:4]:
            (root / domain / path.name).write_bytes(path.read_bytes())
    for path in hostile.iterdir():
        (root / "trainA" / path.name).write_bytes(path.read_bytes())
    result, peak = measured("tf_cyclegan.data", "check", str(root), "--image_size", "32")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "skipped unreadable declares_7000.jpg: 7000 x 7000 pixels, above --max_pixels=25000000" in result.stdout
    assert "skipped unreadable declares_4000.jpg: cut short (630 bytes cannot hold 4000 x 4000 pixels)" in result.stdout
    assert "skipped unreadable cut_progressive.jpg: cut short" in result.stdout
    assert f"{'trainA':<9} {4 + 5:>6} images  3 unreadable" in result.stdout, result.stdout
    assert peak < PEAK_MB, peak


def test_a_valid_image_too_large_for_memory_is_translated_in_tiles(tiny_run, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "big.png").write_bytes(bomb_png(6000, 6000))  # 36 MP of valid gray in ~35 KB
    result, peak = measured(
        "tf_cyclegan.translate",
        f"--run_dir={tiny_run.path}",
        f"--input={tmp_path / 'in'}",
        f"--output={tmp_path / 'out'}",
        "--max_memory_gb=0.5",
    )
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert "is translated in" in result.stdout and "px tiles" in result.stdout, result.stdout
    assert Image.open(tmp_path / "out" / "big.png").size == (6000, 6000)
    assert peak < PEAK_MB, peak


SERVE = """
import base64, io, json, sys
import numpy as np, tensorflow as tf
from PIL import Image
from tf_cyclegan.rest_emulation import predict_rest
sys.path.insert(0, sys.argv[2])
from badfiles import bomb_png, declaring_jpeg, png_bytes
loaded = tf.saved_model.load(sys.argv[1])
b64 = lambda data: {"b64": base64.b64encode(data).decode()}
bodies = {
    "declares": {"signature_name": "translate_bytes", "instances": [b64(declaring_jpeg(4000, 4000))]},
    "cut": {"signature_name": "translate_bytes", "instances": [b64(declaring_jpeg(500, 500))]},
    "too_big": {"signature_name": "translate_bytes", "instances": [b64(bomb_png(2000, 2000))]},
    "floats": {"instances": np.zeros((1, 800, 800, 3)).tolist()},
    "list_name": {"signature_name": ["translate_bytes"], "instances": []},
    "deep": "[" * 100000 + "]" * 100000,
    "nan": '{"instances": [[[[NaN, 0, 0]]]]}',
    "fine": {"signature_name": "translate_bytes", "instances": [b64(png_bytes(np.zeros((32, 32, 3), np.uint8)))]},
}
for name, body in bodies.items():
    answer = predict_rest(loaded, body)
    print("ANSWER", name, json.dumps({key: str(value)[:300] for key, value in answer.items()}))
peak = [l for l in open("/proc/self/status") if l.startswith("VmHWM:")][0].split()[1]
print("MAXRSS_MB", int(peak) // 1024)
"""


def test_one_serving_request_cannot_take_the_server_down(tiny_run, tmp_path):
    export = cli(
        "tf_cyclegan.export",
        f"--run_dir={tiny_run.path}",
        f"--output={tmp_path}",
        "--direction=a2b",
        "--max_request_gb=0.05",
        timeout=600,
    )
    assert export.returncode == 0, export.stderr[-2000:]
    record = json.loads((tmp_path / "tiny_a2b" / "1" / "assets.extra" / "tf_cyclegan.json").read_text())
    limit = record["max_request_pixels"]
    assert 32 * 32 < limit < 800 * 800 and record["max_request_gb"] == 0.05
    script = tmp_path / "serve.py"
    script.write_text(SERVE)
    result = subprocess.run(
        [sys.executable, str(script), str(tmp_path / "tiny_a2b" / "1"), os.path.dirname(__file__)],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )
    peak = int([line for line in result.stdout.splitlines() if line.startswith("MAXRSS_MB")][0].split()[1])
    answers = {
        line.split()[1]: json.loads(line.split(" ", 2)[2])
        for line in result.stdout.splitlines()
        if line.startswith("ANSWER")
    }
    assert result.returncode == 0 and len(answers) == 8, result.stderr[-2000:]
    assert f"more than {limit} pixels" in answers["declares"]["error"]  # from the header, before decoding
    assert "cut short" in answers["cut"]["error"]
    assert f"more than {limit} pixels" in answers["too_big"]["error"] and "0.05 GB" in answers["too_big"]["error"]
    assert f"more than {limit} pixels" in answers["floats"]["error"]
    assert answers["list_name"] == {"error": "signature_name must be a string"}
    assert "nested too deeply" in answers["deep"]["error"] and "NaN is not a JSON number" in answers["nan"]["error"]
    assert set(answers["fine"]) == {"predictions"}  # the server still answers
    assert peak < PEAK_MB, peak


def test_a_yaml_bomb_is_one_line_in_a_preset_and_in_a_run(tiny_run, tmp_path):
    (tmp_path / "bomb.yaml").write_text(BILLION_LAUGHS)
    started = time.monotonic()
    result, peak = measured("tf_cyclegan.train", "--config=bomb.yaml", cwd=tmp_path)
    one_error_line(result, "bomb.yaml: not valid YAML at line 2 (aliases (*name) are not allowed", 2)
    assert time.monotonic() - started < 60 and peak < 500, peak
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text(BILLION_LAUGHS)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "tf_cyclegan.translate",
            f"--run_dir={run}",
            f"--input={tmp_path}",
            f"--output={tmp_path / 'out'}",
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    one_error_line(result, "aliases (*name) are not allowed", 2)


@pytest.mark.parametrize(
    "flag, needle",
    [
        ("--lr=nan", "--lr: must be a finite number, got nan"),
        ("--lr=inf", "--lr: must be a finite number, got inf"),
        ("--lambda_cycle=nan", "--lambda_cycle: must be a finite number"),
        ("--lambda_identity=inf", "--lambda_identity: must be a finite number"),
        ("--beta1=5", "--beta1: must be < 1, got 5.0"),
        ("--set=train.steps=1e30", "--steps: must be <= 2147483647"),
        ("--image_size=100000", "--image_size: must be <= 16384"),
    ],
)
def test_bad_values_are_refused_before_anything_is_written(tmp_path, flag, needle):
    result = run_train([flag, "--run_dir=run"], tmp_path, timeout=60)
    one_error_line(result, needle, 2)
    assert not (tmp_path / "run").exists()


def test_a_bad_value_in_a_runs_config_names_the_file(tiny_run, tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    text = (tiny_run.path / "config.yaml").read_text().replace("lr: 0.0002", "lr: .nan")
    assert ".nan" in text
    (run / "config.yaml").write_text(text)
    result = run_train([f"--run_dir={run}"], tmp_path, timeout=60)
    one_error_line(result, "--lr: must be a finite number", 2)
    assert "config.yaml" in result.stderr
    # A flag mends it (evaluation off: the shared run's config evaluates every epoch, which is not under test here).
    fixed = run_train([f"--run_dir={run}", "--lr=1e-4", "--steps=1", "--eval_every=0"], tmp_path, timeout=300)
    assert fixed.returncode == 0, fixed.stderr[-2000:]


@pytest.mark.parametrize(
    "flags, needle",
    [
        (["--batch_size=100000"], "--batch_size=100000 is larger than the"),
        (["--image_size=16384", "--load_size=16384"], "need at least"),
    ],
)
def test_sizes_that_cannot_fit_are_one_line(tmp_path, flags, needle):
    result, peak = measured("tf_cyclegan.train", *flags, "--run_dir=run", "--max_dataset_size=8", cwd=tmp_path)
    one_error_line(result, needle, 1)
    assert peak < PEAK_MB, peak


def translate_command(run_dir, inputs, output, *more):
    return [
        sys.executable,
        "-m",
        "tf_cyclegan.translate",
        f"--run_dir={run_dir}",
        f"--input={inputs}",
        f"--output={output}",
        *more,
    ]


@pytest.fixture(scope="module")
def many_images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("many")
    for i in range(60):
        (folder / f"image_{i:03d}.png").write_bytes(png_bytes(np.full((256, 256, 3), i * 4, np.uint8)))
    return folder


def test_sigterm_finishes_the_current_image_and_leaves_no_broken_file(tiny_run, many_images, tmp_path):
    out = tmp_path / "out"
    process = subprocess.Popen(
        translate_command(tiny_run.path, many_images, out, "--tile=16"),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # tiles: slow enough
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and len(list(out.glob("image_*.png"))) < 3:
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    one_error_line(subprocess.CompletedProcess([], process.returncode, "", stderr), "interrupted after", 130)
    written = sorted(out.glob("image_*.png"))
    assert 3 <= len(written) < 60 and not list(out.glob(".*.tmp-*"))
    for path in written:
        assert Image.open(path).size == (256, 256)  # every file under its final name is whole


def test_two_translates_into_one_output_folder_cannot_splice_files(tiny_run, many_images, tmp_path):
    out = tmp_path / "out"
    # --tile=16: hundreds of tiles an image, so the first is still writing when the second starts.
    first = subprocess.Popen(
        translate_command(tiny_run.path, many_images, out, "--tile=16"),
        env=ENV,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and not list(out.glob("image_*.png")):
        time.sleep(0.02)
    second = subprocess.run(
        translate_command(tiny_run.path, many_images, out, "--direction=b2a"),
        env=ENV,
        capture_output=True,
        text=True,
        timeout=120,
    )
    first.send_signal(signal.SIGTERM)
    first.communicate(timeout=120)
    one_error_line(second, f"in use by another translate (PID {first.pid}", 1)


def test_output_and_path_problems_are_one_line(tiny_run, hostile, tmp_path):
    (tmp_path / "a_file").write_text("x")
    cases = [
        (translate_command(tiny_run.path, hostile, tmp_path / "a_file"), "is a file, not a folder", 1),
        (translate_command(tiny_run.path, hostile, tmp_path / ("n" * 300)), "File name too long", 1),
        (
            translate_command(tiny_run.path, hostile / "declares_7000.jpg", tmp_path / "o"),
            "nothing was translated: " + str(hostile / "declares_7000.jpg") + ": cut short",  # the one input, and why
            1,
        ),
        (translate_command(tiny_run.path, hostile, hostile), "is the --input folder", 1),
        (
            [
                sys.executable,
                "-m",
                "tf_cyclegan.export",
                f"--run_dir={tiny_run.path}",
                f"--output={tmp_path / 'a_file'}",
            ],
            "a_file",
            1,
        ),
        ([sys.executable, "-m", "tf_cyclegan.train", f"--run_dir={tmp_path / 'a_file'}", "--steps=1"], "a_file", 1),
    ]
    for command, needle, code in cases:
        result = subprocess.run(command, env=ENV, capture_output=True, text=True, timeout=300)
        one_error_line(result, needle, code)


def test_an_export_killed_midway_leaves_a_staging_folder_the_next_export_removes(tiny_run, tmp_path):
    import socket

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    left = tmp_path / "tiny_a2b" / f".staging-{socket.gethostname()}-{dead.stdout.strip()}-abc"
    left.mkdir(parents=True)
    (left / "saved_model.pb").write_bytes(b"half")
    result = cli(
        "tf_cyclegan.export", f"--run_dir={tiny_run.path}", f"--output={tmp_path}", "--direction=a2b", timeout=600
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"removed {left}" in result.stdout and not left.exists()
    assert [p.name for p in (tmp_path / "tiny_a2b").iterdir()] == ["1"]


def test_decoding_is_upright_and_keeps_colour_keys_for_training_too():
    import tensorflow as tf

    from tf_cyclegan.data.images import decode

    for orientation in range(1, 9):
        data = rotated_jpeg(ROTATED, orientation)
        expected = np.asarray(ImageOps.exif_transpose(Image.open(io.BytesIO(data))).convert("RGB")) / 255.0
        got = tf.function(lambda c: decode(c))(tf.constant(data)).numpy()  # as tf.data runs it: a graph
        assert got.shape == expected.shape and np.abs(got - expected).mean() < 0.02, orientation
    for mode in ("L", "RGB"):
        got = decode(tf.constant(keyed_png(mode)), background=(0.0, 1.0, 0.0)).numpy()
        assert got[0, 0].tolist() == [0.0, 1.0, 0.0] and got[1, 1].tolist() == [0.0, 1.0, 0.0], mode
