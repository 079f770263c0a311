import dataclasses
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tf_cyclegan.config import DataConfig
from tf_cyclegan.data import DataError, UnpairedPipeline, check, prepare, resolve
from tf_cyclegan.data.images import decode


def _rgb(h=40, w=48, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def _write_dataset(root, n_a=5, n_b=3, size=(40, 48), test=True):
    for split, n in (("trainA", n_a), ("trainB", n_b)) + ((("testA", 2), ("testB", 2)) if test else ()):
        (root / split).mkdir(parents=True)
        for i in range(n):
            Image.fromarray(_rgb(*size, seed=i)).save(root / split / f"{i:03d}.png")
    return root


def _decode_file(path, channels=3, background=(1.0, 1.0, 1.0)):
    return decode(tf.io.read_file(str(path)), channels, background).numpy()


@pytest.mark.parametrize(
    "fmt,ext,exact",
    [("PNG", "png", True), ("BMP", "bmp", True), ("JPEG", "jpg", False), ("WEBP", "webp", True), ("GIF", "gif", False)],
)
def test_every_format_decodes(tmp_path, fmt, ext, exact):
    yy, xx = np.mgrid[0:20, 0:30]
    pixels = np.stack([yy * 12, xx * 8, 255 - xx * 8], -1).astype(np.uint8)  # smooth, so JPEG stays close
    path = tmp_path / f"image.{ext.upper() if fmt == 'BMP' else ext}"
    options = {"lossless": True} if fmt == "WEBP" else {}
    Image.fromarray(pixels).save(path, format=fmt, **options)
    image = _decode_file(path)
    assert image.shape == (20, 30, 3) and image.dtype == np.float32
    if exact:
        np.testing.assert_allclose(image * 255, pixels, atol=0.01)
    elif fmt == "JPEG":
        assert np.abs(image * 255 - pixels).mean() < 6


def test_gif_first_frame(tmp_path):
    red = Image.new("RGB", (8, 8), (255, 0, 0))
    blue = Image.new("RGB", (8, 8), (0, 0, 255))
    red.save(tmp_path / "anim.gif", save_all=True, append_images=[blue])
    image = _decode_file(tmp_path / "anim.gif")
    assert image.shape == (8, 8, 3)
    np.testing.assert_allclose(image[0, 0], [1, 0, 0], atol=0.01)


def test_rgba_is_composited_on_the_background(tmp_path):
    rgba = np.zeros((2, 2, 4), np.uint8)
    rgba[0, 0] = (255, 0, 0, 255)  # opaque red
    rgba[0, 1] = (255, 0, 0, 0)  # fully transparent red
    rgba[1, 0] = (0, 0, 255, 128)  # half blue
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    white = _decode_file(tmp_path / "a.png")
    np.testing.assert_allclose(white[0, 0], [1, 0, 0], atol=1e-3)
    np.testing.assert_allclose(white[0, 1], [1, 1, 1], atol=1e-3)
    half = 128 / 255
    np.testing.assert_allclose(white[1, 0], [1 - half, 1 - half, 1.0], atol=1e-3)
    black = _decode_file(tmp_path / "a.png", background=(0.0, 0.0, 0.0))
    np.testing.assert_allclose(black[0, 1], [0, 0, 0], atol=1e-3)
    np.testing.assert_allclose(black[1, 0], [0, 0, half], atol=1e-3)


def test_16_bit_png_keeps_its_scale(tmp_path):
    values = np.array([[0, 257, 32768, 65535]], np.uint16)
    Image.fromarray(values).save(tmp_path / "deep.png")
    image = _decode_file(tmp_path / "deep.png")
    np.testing.assert_allclose(image[0, :, 0], values[0] / 65535.0, atol=1e-6)
    assert np.all(image[..., 0] == image[..., 2])


def test_grayscale_expands_or_stays_single_channel(tmp_path):
    gray = np.arange(12, dtype=np.uint8).reshape(3, 4) * 20
    Image.fromarray(gray, "L").save(tmp_path / "g.png")
    rgb = _decode_file(tmp_path / "g.png", channels=3)
    assert rgb.shape == (3, 4, 3)
    np.testing.assert_allclose(rgb[..., 1], gray / 255.0, atol=1e-6)
    single = _decode_file(tmp_path / "g.png", channels=1)
    assert single.shape == (3, 4, 1)
    np.testing.assert_allclose(single[..., 0], gray / 255.0, atol=2e-3)


def test_bad_files_are_named_and_skipped(tmp_path):
    root = _write_dataset(tmp_path / "ds", n_a=3)
    folder = root / "trainA"
    Image.fromarray(_rgb()).save(folder / "good.JPG")
    jpeg = (folder / "good.JPG").read_bytes()
    (folder / "corrupt.jpg").write_bytes(jpeg[:20] + b"\x00" * 50)
    png = (folder / "000.png").read_bytes()
    (folder / "truncated.png").write_bytes(png[: len(png) // 2])
    (folder / "empty.png").write_bytes(b"")
    (folder / "notes.txt").write_text("not an image")
    data = DataConfig(dataset=str(root), image_size=32)
    domains, reports = check(resolve(data), data)
    report = reports[0]
    assert report.split == "trainA"
    assert report.readable == 4 and len(domains.train_a) == 4
    reasons = dict(report.unreadable)
    assert set(reasons) == {"corrupt.jpg", "truncated.png", "empty.png"}
    assert reasons["empty.png"] == "empty file"
    assert any("notes.txt" in path for path in report.skipped)
    text = "\n".join(report.lines(32))
    assert "corrupt.jpg" in text and "truncated.png" in text and "notes.txt" in text


def test_small_images_are_reported_and_upscaled(tmp_path):
    root = _write_dataset(tmp_path / "ds", size=(20, 30))
    data = DataConfig(dataset=str(root), image_size=32, preprocess="crop")
    domains, reports = check(resolve(data), data)
    assert len(reports[0].small) == 5
    real_a, real_b = next(iter(UnpairedPipeline(domains, data, global_batch=2).train_dataset()))
    assert real_a.shape == (2, 32, 32, 3)


def test_an_empty_domain_is_a_clear_error(tmp_path):
    root = _write_dataset(tmp_path / "ds")
    for path in (root / "trainB").iterdir():
        path.unlink()
    data = DataConfig(dataset=str(root))
    with pytest.raises(DataError, match="trainB: no images found in .*trainB"):
        check(resolve(data), data)
    (root / "trainB" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1 files"):
        check(resolve(data), data)


def test_missing_folder_layouts_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no trainA or trainB"):
        resolve(DataConfig(dataset=str(tmp_path)))
    with pytest.raises(DataError, match="no such folder"):
        resolve(DataConfig(domain_a=str(tmp_path / "nope"), domain_b=str(tmp_path)))


def test_two_arbitrary_folders_searched_recursively(tmp_path):
    (tmp_path / "a" / "sub").mkdir(parents=True)
    (tmp_path / "b").mkdir()
    Image.fromarray(_rgb()).save(tmp_path / "a" / "sub" / "x.PNG")
    Image.fromarray(_rgb()).save(tmp_path / "a" / "y.jpeg")
    Image.fromarray(_rgb()).save(tmp_path / "b" / "z.Png")
    domains = resolve(DataConfig(domain_a=str(tmp_path / "a"), domain_b=str(tmp_path / "b")))
    assert domains.train_a.labels == ["sub/x.PNG", "y.jpeg"]
    assert domains.train_b.labels == ["z.Png"]


def _ids(pipeline, steps, start=0):
    """Which source image each example came from, identified by its mean colour."""
    out = []
    for real_a, real_b in pipeline.train_dataset(start, start + steps):
        out += [(round(float(a.numpy().mean()), 5), round(float(b.numpy().mean()), 5)) for a, b in zip(real_a, real_b)]
    return out


def test_epochs_cycle_the_smaller_domain_and_reshuffle(tmp_path):
    root = _write_dataset(tmp_path / "ds", n_a=6, n_b=4, test=False)
    data = DataConfig(dataset=str(root), image_size=32, load_size=32, flip=False)
    domains, _ = check(resolve(data), data)
    pipeline = UnpairedPipeline(domains, data, global_batch=2, seed=3)
    assert pipeline.steps_per_epoch == 3
    ids = _ids(pipeline, steps=12)  # 4 epochs of 6 examples
    epochs = [ids[i : i + 6] for i in range(0, 24, 6)]
    for epoch in epochs:
        assert len({a for a, _ in epoch}) == 6  # every A image exactly once per epoch
        b_ids = [b for _, b in epoch]
        assert len(set(b_ids[:4])) == 4  # B (smaller) covers all of B before repeating
    assert len({tuple(a for a, _ in e) for e in epochs}) > 1  # A reshuffled between epochs
    assert len({tuple(b for _, b in e) for e in epochs}) > 1


def test_the_stream_is_a_function_of_seed_and_position(tmp_path):
    root = _write_dataset(tmp_path / "ds", n_a=5, n_b=7, test=False)
    data = DataConfig(dataset=str(root), image_size=24, load_size=30)
    domains, _ = check(resolve(data), data)
    first = UnpairedPipeline(domains, data, global_batch=1, seed=11)
    again = UnpairedPipeline(domains, data, global_batch=1, seed=11)
    other = UnpairedPipeline(domains, data, global_batch=1, seed=12)
    batches = [b[0].numpy() for b in first.train_dataset(0, 10)]
    np.testing.assert_array_equal(batches, [b[0].numpy() for b in again.train_dataset(0, 10)])
    assert not np.array_equal(batches, [b[0].numpy() for b in other.train_dataset(0, 10)])
    # Resuming at step 6 replays exactly steps 6..9, crops and flips included.
    np.testing.assert_array_equal(batches[6:], [b[0].numpy() for b in again.train_dataset(6, 10)])


def test_preprocess_modes_and_test_time_determinism(tmp_path):
    root = _write_dataset(tmp_path / "ds", size=(40, 60))
    checked = DataConfig(dataset=str(root), image_size=32, load_size=36)
    domains, _ = check(resolve(checked), checked)  # which files are usable does not depend on the preprocessing
    for mode, shape in [
        ("resize_and_crop", (32, 32)),
        ("crop", (32, 32)),
        ("scale_width", (24, 36)),
        ("scale_width_and_crop", (32, 32)),
        ("none", (40, 60)),
    ]:
        data = dataclasses.replace(checked, preprocess=mode)
        pipeline = UnpairedPipeline(domains, data, global_batch=1)
        real_a, _ = next(iter(pipeline.train_dataset()))
        assert real_a.shape[1:3] == shape, mode
        assert -1.0 <= float(tf.reduce_min(real_a)) and float(tf.reduce_max(real_a)) <= 1.0
        first, labels = pipeline.test_images("A")
        second, _ = pipeline.test_images("A")
        np.testing.assert_array_equal(first.numpy(), second.numpy())
        assert labels == ["000.png", "001.png"]


def test_cache_gives_the_same_batches_within_quantisation(tmp_path):
    root = _write_dataset(tmp_path / "ds", test=False)
    plain = DataConfig(dataset=str(root), image_size=32, load_size=36)
    cached = DataConfig(dataset=str(root), image_size=32, load_size=36, cache=True)
    batches = []
    for data in (plain, cached):
        domains, _ = check(resolve(data), data)
        batches.append(np.stack([a.numpy() for a, _ in UnpairedPipeline(domains, data, 2).train_dataset(0, 3)]))
    assert np.abs(batches[0] - batches[1]).max() <= 2.0 / 255 * 2 + 1e-6


def test_bundled_emoji_sample_is_rgba_composited_on_white():
    data = DataConfig(dataset="emoji", image_size=64, load_size=64, flip=False)
    pipeline = prepare(data, global_batch=4, report=lambda line: None)
    assert len(pipeline.domains.train_a) >= 400 and len(pipeline.domains.test_b) >= 90
    assert pipeline.domains.test_a.labels == pipeline.domains.test_b.labels  # paired by file name
    images, labels = pipeline.test_images("A", limit=8)
    everything = pipeline.domains.test_a.labels
    assert labels == [everything[i * len(everything) // 8] for i in range(8)]  # spread over the split
    corners = images.numpy()[:, 0, 0, :]
    np.testing.assert_allclose(corners, 1.0, atol=1e-3)  # transparent corners become white (1.0 in [-1, 1])


def test_offline_tfds_download_fails_fast_with_a_helpful_message(tmp_path, monkeypatch):
    import tf_cyclegan.data.sources as sources

    monkeypatch.setattr(sources, "host_reachable", lambda *args, **kwargs: False)  # offline, whatever the machine
    started = time.monotonic()
    with pytest.raises(DataError) as error:
        resolve(DataConfig(dataset="cycle_gan/horse2zebra", data_dir=str(tmp_path)))
    assert time.monotonic() - started < 15
    message = str(error.value)
    assert "could not download" in message and "--dataset=path" in message and "\n" not in message


def test_unknown_tfds_name_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match="not a folder and not a known TFDS dataset"):
        resolve(DataConfig(dataset="no_such_dataset_xyz", data_dir=str(tmp_path)))


def test_a_locally_prepared_tfds_dataset_loads_without_network(tmp_path):
    import tensorflow_datasets as tfds

    source = _write_dataset(tmp_path / "src", n_a=4, n_b=3)

    class TinyUnpaired(tfds.core.GeneratorBasedBuilder):
        VERSION = tfds.core.Version("1.0.0")

        def _info(self):
            return tfds.core.DatasetInfo(
                builder=self, features=tfds.features.FeaturesDict({"image": tfds.features.Image()})
            )

        def _split_generators(self, dl_manager):
            return {split: self._generate_examples(source / split) for split in ("trainA", "trainB", "testA", "testB")}

        def _generate_examples(self, folder):
            for path in sorted(folder.iterdir()):
                yield path.name, {"image": str(path)}

    data_dir = tmp_path / "tfds"
    TinyUnpaired(data_dir=str(data_dir)).download_and_prepare()
    data = DataConfig(dataset="tiny_unpaired", data_dir=str(data_dir), image_size=32, load_size=36)
    pipeline = prepare(data, global_batch=2, report=lambda line: None)
    assert (len(pipeline.domains.train_a), len(pipeline.domains.train_b)) == (4, 3)
    real_a, real_b = next(iter(pipeline.train_dataset()))
    assert real_a.shape == real_b.shape == (2, 32, 32, 3)
    folder = prepare(DataConfig(dataset=str(source), image_size=32, load_size=36), 2, report=lambda line: None)
    from_folder, _ = folder.test_images("A")
    from_tfds, _ = pipeline.test_images("A")
    np.testing.assert_array_equal(from_folder.numpy(), from_tfds.numpy())


def test_check_cli(tmp_path):
    root = _write_dataset(tmp_path / "ds")
    (root / "trainA" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nxx")
    result = subprocess.run(
        [sys.executable, "-m", "tf_cyclegan.data", "check", str(root), "--image_size", "32"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "trainA" in result.stdout and "broken.png" in result.stdout and "1 unreadable" in result.stdout
    missing = subprocess.run(
        [sys.executable, "-m", "tf_cyclegan.data", "check", str(tmp_path / "nope")],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert missing.returncode == 1  # a data error, as in train (one exit code per kind of error, tf_cyclegan.errors)
    assert missing.stderr.strip().splitlines()[-1].startswith("python -m tf_cyclegan.data: error: --dataset")
    assert "Traceback" not in missing.stderr
