"""ONNX export (#23): export --onnx through the CLI, the .onnx files reloaded by ONNX Runtime and compared with the
run's Keras generators at sizes that are not multiples of the network's stride and at batch 2; translate --onnx_model;
the one-line errors (extra missing, a file that is not ONNX)."""

import numpy as np
import onnxruntime
import pytest
from PIL import Image
from trainrun import ENV, cli

from tf_cyclegan import factory


@pytest.fixture(scope="module")
def exported(tiny_run, tmp_path_factory):
    output = tmp_path_factory.mktemp("onnx_export")
    result = cli("tf_cyclegan.export", f"--run_dir={tiny_run.path}", f"--output={output}", "--onnx", timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return output, result


def test_each_direction_matches_keras_at_odd_sizes_and_batch_two(tiny_run, exported):
    output, result = exported
    _, _, generators = factory.restore_run(str(tiny_run.path))
    rng = np.random.default_rng(7)
    for direction, generator in zip(("a2b", "b2a"), generators):
        path = output / "onnx" / f"tiny_{direction}.onnx"
        assert f"{direction}: ONNX {path}" in result.stdout
        runner = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        assert [i.shape for i in runner.get_inputs()] == [["batch", "height", "width", 3]]
        # The quickstart's unet_64 pads to 64: 37 x 53 and 70 x 45 are odd for it and for a stride of 4.
        for shape in ((1, 32, 32, 3), (2, 37, 53, 3), (1, 70, 45, 3)):
            x = rng.uniform(-1, 1, shape).astype("float32")
            got = runner.run(None, {"images": x})[0]
            want = generator(x, training=False).numpy()
            assert got.shape == want.shape, (direction, shape)
            np.testing.assert_allclose(got, want, atol=1e-4, err_msg=f"{direction} {shape}")
    # No deprecation warnings from ONNX Runtime when the export loads its own files to check them.
    assert "deprecated" not in result.stderr and "onnxruntime" not in result.stderr, result.stderr[-2000:]


def test_translate_with_an_onnx_file_equals_the_run_itself(tiny_run, exported, tmp_path):
    output, _ = exported
    folder = tmp_path / "in"
    folder.mkdir()
    rgba = np.random.default_rng(3).integers(0, 256, (45, 61, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(folder / "odd.png")
    onnx_run = cli(
        "tf_cyclegan.translate",
        f"--onnx_model={output / 'onnx' / 'tiny_a2b.onnx'}",
        f"--input={folder}",
        f"--output={tmp_path / 'onnx'}",
    )
    assert onnx_run.returncode == 0, onnx_run.stderr[-2000:]
    keras_run = cli(
        "tf_cyclegan.translate",
        f"--run_dir={tiny_run.path}",
        "--precision=float32",
        f"--input={folder}",
        f"--output={tmp_path / 'keras'}",
    )
    assert keras_run.returncode == 0, keras_run.stderr[-2000:]
    by_onnx, by_keras = (np.asarray(Image.open(tmp_path / name / "odd.png")) for name in ("onnx", "keras"))
    assert by_onnx.shape == by_keras.shape == (45, 61, 4)
    assert np.abs(by_onnx.astype(int) - by_keras.astype(int)).max() <= 1  # 8-bit rounding of equal floats


def test_a_file_that_is_not_onnx_is_one_line(tmp_path):
    bad = tmp_path / "model.onnx"
    bad.write_bytes(b"\x08\x07not a protobuf" * 10)
    image = tmp_path / "x.png"
    Image.new("RGB", (8, 8)).save(image)
    result = cli("tf_cyclegan.translate", f"--onnx_model={bad}", f"--input={image}", f"--output={tmp_path / 'o'}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines[-1].startswith(f"python -m tf_cyclegan.translate: error: --onnx_model: {bad}: not an ONNX model")


def test_without_the_onnx_extra_export_onnx_says_how_to_install_it(tiny_run, tmp_path):
    # A stand-in onnxruntime that fails to import, as on a machine without the extra.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "onnxruntime.py").write_text(
        "raise ModuleNotFoundError(\"No module named 'onnxruntime'\", name='onnxruntime')\n"
    )
    env = {**ENV, "PYTHONPATH": f"{shadow}:{ENV.get('PYTHONPATH', '')}"}
    result = cli("tf_cyclegan.export", f"--run_dir={tiny_run.path}", f"--output={tmp_path}", "--onnx", env=env)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m tf_cyclegan.export: error: --onnx needs the ONNX extra (onnxruntime is not installed): "
        'pip install -e ".[onnx]" (tf2onnx, onnx, onnxruntime)'
    )
    assert not any(tmp_path.glob("tiny_*")), "nothing is exported when the extra is missing"
    model = tmp_path / "model.onnx"
    model.write_bytes(b"0")
    translate = cli(
        "tf_cyclegan.translate", f"--onnx_model={model}", f"--input={model}", "--output=o", cwd=tmp_path, env=env
    )
    assert translate.returncode == 1 and "Traceback" not in translate.stderr
    assert "error: --onnx_model needs the ONNX extra (onnxruntime is not installed)" in translate.stderr


def test_an_onnx_file_at_a_uri_translates_like_the_local_one(exported):
    # ram:// (TensorFlow's in-memory file system, the gfile layer gs:// goes through): ONNX Runtime reads local
    # files only, so a model at a URI is read through the package's file system module.
    import tensorflow as tf

    from tf_cyclegan.translator import Translator

    output, _ = exported
    local = output / "onnx" / "tiny_a2b.onnx"
    tf.io.gfile.makedirs("ram://onnx_test")
    tf.io.gfile.copy(str(local), "ram://onnx_test/tiny_a2b.onnx", overwrite=True)
    image = np.random.default_rng(5).uniform(0, 1, (37, 53, 3)).astype("float32")
    by_uri = Translator.from_onnx("ram://onnx_test/tiny_a2b.onnx").translate(image)
    np.testing.assert_array_equal(by_uri, Translator.from_onnx(str(local)).translate(image))
