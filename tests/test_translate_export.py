import base64
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image
from trainrun import ENV, cli

from tf_cyclegan import build_generator
from tf_cyclegan.exporter import ExportError, convert_tflite, export_run, make_serving_archive, run_tflite
from tf_cyclegan.rest_emulation import predict_rest
from tf_cyclegan.translator import Translator

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def run_dir(tiny_run):
    return tiny_run.path


@pytest.fixture(scope="module")
def exported(run_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("export")
    # Every TFLite variant of one direction (the conversions are what take time); the other direction's SavedModel.
    reports = export_run(
        str(run_dir), str(out), ("a2b",), tflite=("fp32", "fp16", "int8", "int8_full"), log=lambda line: None
    )
    reports.update(export_run(str(run_dir), str(out), ("b2a",), log=lambda line: None))
    return out, reports


def keras_generator(run_dir, direction="a2b"):
    return Translator.from_run(str(run_dir), direction).generator


def test_saved_model_layout_and_round_trip(run_dir, exported):
    out, reports = exported
    for direction in ("a2b", "b2a"):
        version = out / f"tiny_{direction}" / "1"
        assert (version / "saved_model.pb").is_file() and (version / "variables").is_dir()
        assert json.loads((version / "assets.extra" / "tf_cyclegan.json").read_text())["direction"] == direction
        assert reports[direction]["max_abs_diff"] <= 1e-4
        assert version.stat().st_mode & 0o055 == 0o055  # a model server running as another user can read it
    assert not list(out.glob("tiny_a2b/.staging*"))
    loaded = tf.saved_model.load(str(out / "tiny_a2b" / "1"))
    serve = loaded.signatures["serving_default"]
    generator = keras_generator(run_dir)
    for shape in [(1, 32, 32, 3), (3, 45, 29, 3)]:
        x = np.random.default_rng(1).uniform(-1, 1, shape).astype("float32")
        np.testing.assert_allclose(serve(images=tf.constant(x))["translated"].numpy(), generator(x).numpy(), atol=1e-4)


def test_versions_auto_increment(run_dir, exported):
    out, _ = exported
    export_run(str(run_dir), str(out), ("b2a",), log=lambda line: None)
    assert sorted(p.name for p in (out / "tiny_b2a").iterdir()) == ["1", "2"]
    with pytest.raises(ExportError, match=r"--version: .*tiny_b2a/1 already exists"):
        export_run(str(run_dir), str(out), ("b2a",), version=1, log=lambda line: None)
    assert sorted(p.name for p in (out / "tiny_b2a").iterdir()) == ["1", "2"]  # nothing replaced, nothing left


def test_tflite_variants_match_keras_at_a_new_size(run_dir, exported):
    out, reports = exported
    generator = keras_generator(run_dir)
    x = np.random.default_rng(2).uniform(-1, 1, (1, 40, 24, 3)).astype("float32")
    expected = generator(x).numpy()
    for variant, tolerance in (("fp32", 1e-4), ("fp16", 2e-2)):
        model = (out / "tflite" / f"tiny_a2b_{variant}.tflite").read_bytes()
        got = run_tflite(model, x)
        assert got.shape == expected.shape
        assert np.abs(got - expected).max() <= tolerance, variant
    for variant in ("int8", "int8_full"):
        assert reports["a2b"]["tflite"][variant]["psnr_db"] > 15, variant
        got = run_tflite((out / "tflite" / f"tiny_a2b_{variant}.tflite").read_bytes(), x)
        assert got.shape == expected.shape and np.isfinite(got).all()


@pytest.mark.parametrize(
    "kind, upsample, residual",
    [
        ("resnet_1blocks", "resize", False),
        ("resnet_1blocks", "transpose", False),
        ("unet_64", "transpose", False),
        ("unet_64", "resize", True),
    ],
)
def test_other_generator_variants_convert_to_tflite(kind, upsample, residual, tmp_path):
    # The run above covers the quickstart's generator; these are the other up-sampling paths and --residual.
    generator = build_generator(kind, ngf=4, upsample=upsample, residual=residual)
    make_serving_archive(generator, 3, (1.0, 1.0, 1.0)).write_out(str(tmp_path / "model"), verbose=False)
    x = np.random.default_rng(3).uniform(-1, 1, (1, 40, 24, 3)).astype("float32")
    got = run_tflite(convert_tflite(tmp_path / "model", "fp32"), x)
    assert np.abs(got - generator(x).numpy()).max() <= 1e-4


def test_tflite_uses_builtin_ops_only(exported):
    out, _ = exported
    from tensorflow.lite.python import schema_py_generated as schema

    paths = sorted((out / "tflite").glob("*.tflite"))
    assert paths
    for path in paths:
        model = schema.ModelT.InitFromPackedBuf(path.read_bytes(), 0)
        codes = [max(code.builtinCode, code.deprecatedBuiltinCode) for code in model.operatorCodes]
        assert codes and schema.BuiltinOperator.CUSTOM not in codes, path.name
        assert all(code.customCode is None for code in model.operatorCodes), path.name


def _encoded(array, fmt):
    import io

    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format=fmt)
    return buffer.getvalue()


def test_bytes_signature_takes_mixed_formats_and_sizes(exported):
    out, _ = exported
    loaded = tf.saved_model.load(str(out / "tiny_a2b" / "1"))
    rng = np.random.default_rng(3)
    png = _encoded(rng.integers(0, 255, (20, 30, 4), dtype=np.uint8), "PNG")
    jpeg = _encoded(rng.integers(0, 255, (33, 17, 3), dtype=np.uint8), "JPEG")
    result = loaded.signatures["translate_bytes"](image_bytes=tf.constant([png, jpeg]))["png_bytes"].numpy()
    assert [tf.io.decode_png(r).shape for r in result] == [(20, 30, 3), (33, 17, 3)]
    with pytest.raises(tf.errors.InvalidArgumentError, match="not a PNG, JPEG, GIF, BMP or WebP"):
        loaded.signatures["translate_bytes"](image_bytes=tf.constant([png, b"garbage bytes"]))
    truncated = png[: len(png) // 2]
    with pytest.raises(tf.errors.InvalidArgumentError):
        loaded.signatures["translate_bytes"](image_bytes=tf.constant([truncated]))
    # The module keeps serving after a bad request.
    assert loaded.signatures["translate_bytes"](image_bytes=tf.constant([jpeg]))["png_bytes"].shape == (1,)


def test_rest_examples_go_through_the_signatures_as_tf_serving_would(exported):
    out, _ = exported
    model = out / "tiny_a2b" / "1"
    examples = ROOT / "export" / "examples"
    for name in ("translate_bytes", "serving_default"):
        request = json.loads((examples / f"{name}_request.json").read_text())
        expected = json.loads((examples / f"{name}_response.json").read_text())
        response = predict_rest(str(model), json.dumps(request))
        assert set(response) == set(expected) == {"predictions"}
        assert len(response["predictions"]) == len(expected["predictions"]) == len(request["instances"])
        if name == "translate_bytes":
            sent = base64.b64decode(request["instances"][0]["b64"])
            got = base64.b64decode(response["predictions"][0]["b64"])
            assert tf.io.decode_png(got).shape[:2] == tf.io.decode_image(sent).shape[:2]
            assert set(expected["predictions"][0]) == {"b64"}
        else:
            assert np.array(response["predictions"]).shape == np.array(expected["predictions"]).shape
    bad = predict_rest(
        str(model), {"signature_name": "translate_bytes", "instances": [{"b64": base64.b64encode(b"nope").decode()}]}
    )
    assert set(bad) == {"error"} and "not a PNG" in bad["error"]
    assert "error" in predict_rest(str(model), {"signature_name": "nope", "instances": []})


def test_saved_model_cli_show_and_run(exported, tmp_path):
    out, _ = exported
    model = str(out / "tiny_a2b" / "1")
    cli_path = Path(sys.executable).with_name("saved_model_cli")
    show = subprocess.run(
        [str(cli_path), "show", "--dir", model, "--all"], capture_output=True, text=True, env=ENV, timeout=120
    )
    assert show.returncode == 0, show.stderr[-1000:]
    assert "signature_def['translate_bytes']" in show.stdout and "signature_def['serving_default']" in show.stdout
    assert "image_bytes" in show.stdout and "png_bytes" in show.stdout and "(-1, -1, -1, 3)" in show.stdout
    np.save(tmp_path / "images.npy", np.zeros((2, 20, 28, 3), np.float32))
    run = subprocess.run(
        [
            str(cli_path),
            "run",
            "--dir",
            model,
            "--tag_set",
            "serve",
            "--signature_def",
            "serving_default",
            "--inputs",
            f"images={tmp_path / 'images.npy'}",
            "--outdir",
            str(tmp_path / "out"),
        ],
        capture_output=True,
        text=True,
        env=ENV,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-1000:]
    assert np.load(tmp_path / "out" / "translated.npy").shape == (2, 20, 28, 3)


def test_export_without_a_checkpoint_is_a_clear_error(run_dir, tmp_path):
    empty = tmp_path / "empty_run"
    empty.mkdir()
    (empty / "config.yaml").write_text((run_dir / "config.yaml").read_text())
    result = cli("tf_cyclegan.export", f"--run_dir={empty}", f"--output={tmp_path / 'out'}")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines()[-1].endswith("has no checkpoint to export (train first)")
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()
    missing = cli("tf_cyclegan.export", f"--run_dir={tmp_path / 'nope'}")
    assert missing.returncode == 2 and "has no config.yaml" in missing.stderr


def test_translate_cli_keeps_sizes_names_and_alpha_and_skips_bad_files(run_dir, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "sub").mkdir(parents=True)
    rgba = np.random.default_rng(4).integers(0, 255, (37, 53, 4), dtype=np.uint8)
    Image.fromarray(rgba, "RGBA").save(inputs / "odd.png")
    Image.fromarray(rgba[..., :3]).save(inputs / "sub" / "photo.jpg")
    (inputs / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    result = cli(
        "tf_cyclegan.translate",
        f"--run_dir={run_dir}",
        "--direction=b2a",
        f"--input={inputs}",
        f"--output={tmp_path / 'out'}",
    )
    assert result.returncode == 0, result.stderr[-1500:]
    assert "broken.png" in result.stdout + result.stderr and "translated 2 file(s)" in result.stdout
    odd = Image.open(tmp_path / "out" / "odd.png")
    assert odd.size == (53, 37) and odd.mode == "RGBA"
    np.testing.assert_array_equal(np.asarray(odd)[..., 3], rgba[..., 3])
    assert Image.open(tmp_path / "out" / "sub" / "photo.jpg").size == (53, 37)


def test_translate_from_a_saved_model_matches_the_run(run_dir, exported, tmp_path):
    out, _ = exported
    image = np.random.default_rng(5).uniform(0, 1, (21, 34, 3)).astype("float32")
    from_run = Translator.from_run(str(run_dir)).translate(image).numpy()
    from_export = Translator.from_saved_model(out / "tiny_a2b" / "1").translate(image).numpy()
    np.testing.assert_allclose(from_export, from_run, atol=1e-4)


def test_a_residual_run_trains_and_exports_through_the_clis(tmp_path):
    """--residual with the quickstart preset's settings (tiny size): the output layer is checkpointed, rebuilt from the
    run's config (what translate uses) and exported (the export compares the SavedModel with the Keras generator)."""
    tiny = ["--image_size=32", "--load_size=36", "--ngf=4", "--ndf=4", "--max_dataset_size=4", "--sample_every_steps=3"]
    trained = cli("tf_cyclegan.train", *tiny, "--residual=true", "--steps=3", "--run_dir=run", cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr[-2000:]
    exported = cli("tf_cyclegan.export", "--run_dir=run", "--direction=a2b", "--output=export", cwd=tmp_path)
    assert exported.returncode == 0 and "a2b: SavedModel" in exported.stdout, exported.stderr[-2000:]
    from_run = Translator.from_run(str(tmp_path / "run"))
    assert from_run.generator.get_layer("residual") is not None
    image = np.random.default_rng(2).uniform(0, 1, (21, 34, 3)).astype("float32")
    from_export = Translator.from_saved_model(tmp_path / "export" / "fluent_a2b" / "1").translate(image).numpy()
    np.testing.assert_allclose(from_export, from_run.translate(image).numpy(), atol=1e-4)


def test_tiled_translation_matches_untiled():
    # A ResNet generator: its receptive field fits in the overlap. A U-Net's spans the whole tile, so its tiles
    # differ along the borders (measured with unet_64: border error 2.6× the mean), as the README says.
    translator = Translator(build_generator("resnet_6blocks", ngf=4))
    low = np.random.default_rng(6).uniform(0, 1, (1, 16, 16, 3)).astype("float32")
    image = tf.image.resize(low, (1024, 1024), method="bicubic")[0].numpy().clip(0, 1)
    full = translator.translate(image).numpy()
    tiled = translator.translate_tiled(image, tile=256, overlap=64).numpy()
    assert tiled.shape == full.shape
    difference = np.abs(tiled - full)
    assert difference.mean() <= 2 / 255
    # No seam: the error along tile borders is no larger than elsewhere.
    border = np.concatenate([difference[252:260].ravel(), difference[:, 252:260].ravel()])
    assert border.mean() <= max(2 * difference.mean(), 0.5 / 255)


def test_tiled_translation_leaves_the_generator_as_it_was():
    from tf_cyclegan.layers import InstanceNormalization

    generator = build_generator("resnet_6blocks", ngf=4)
    translator = Translator(generator)
    image = np.random.default_rng(7).uniform(0, 1, (48, 40, 3)).astype("float32")
    fresh = translator.translate(image).numpy()  # what a fresh process computes: nothing tiled yet
    translator.translate_tiled(image, tile=16, overlap=8)
    assert all(layer.fixed_moments is None for layer in generator.layers if isinstance(layer, InstanceNormalization))
    np.testing.assert_array_equal(translator.translate(image).numpy(), fresh)
    np.testing.assert_array_equal(Translator(generator).translate(image).numpy(), fresh)
