"""translate on videos and animations, at the real boundary: encoded files in (made here with PyAV and Pillow),
encoded files out, read back; the shared statistics against per-frame ones; damaged and hostile clips."""

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image, ImageSequence
from test_bad_inputs import measured
from trainrun import ENV, checked, cli, paper, run_train

FLUENT_TEST_A = sorted(
    (Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "fluent" / "testA").glob("*.png")
)


def emoji_frames(count, width, height):
    """``count`` RGB frames of a Fluent emoji on white with a small dark square crossing it (the only motion)."""
    with Image.open(FLUENT_TEST_A[7]) as image:
        rgba = np.asarray(image.convert("RGBA").resize((width, height)), np.float32) / 255
    base = rgba[..., :3] * rgba[..., 3:] + (1 - rgba[..., 3:])
    frames = []
    for index in range(count):
        frame = base.copy()
        x = 2 + index * (width - 10) // max(count - 1, 1)
        frame[2:8, x : x + 6] = 0.1
        frames.append(np.round(frame * 255).astype(np.uint8))
    return frames


def write_video(path, frames, rate=24, codec="libx264", audio=True):
    """An encoded video of ``frames`` at ``rate`` fps, with a second of a 440 Hz tone (AAC, or Opus in WebM)."""
    with av.open(str(path), "w") as container:
        video = container.add_stream(codec, rate=rate)
        video.width, video.height = frames[0].shape[1], frames[0].shape[0]
        video.pix_fmt = "yuv444p" if codec == "libx264" and (video.width % 2 or video.height % 2) else "yuv420p"
        sound = None
        if audio:
            sound = container.add_stream("libopus" if str(path).endswith(".webm") else "aac", rate=48000)
            sound.layout = "mono"
        for frame in frames:
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        if sound is not None:
            tone = (0.2 * np.sin(2 * np.pi * 440 * np.arange(48000) / 48000)).astype(np.float32)[None]
            for start in range(0, tone.shape[1], 960):
                chunk = av.AudioFrame.from_ndarray(tone[:, start : start + 960], format="fltp", layout="mono")
                chunk.sample_rate = 48000
                container.mux(sound.encode(chunk))
            container.mux(sound.encode(None))


def read_video(path):
    """(frames as uint8 arrays, average rate, [audio packets' bytes])."""
    with av.open(str(path)) as container:
        rate = container.streams.video[0].average_rate
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]
    with av.open(str(path)) as container:
        audio = [bytes(p) for p in container.demux(*container.streams.audio) if p.dts is not None]
    return frames, rate, audio


def translate(run, clip, out, *flags, cwd):
    return cli("tf_cyclegan.translate", f"--run_dir={run}", f"--input={clip}", f"--output={out}", *flags, cwd=cwd)


@pytest.mark.parametrize(
    "name, codec, size",
    [("clip.mp4", "libx264", (64, 48)), pytest.param("clip.webm", "libvpx-vp9", (45, 33), marks=pytest.mark.slow)],
)
def test_a_video_becomes_a_video_of_the_same_frames_rate_size_and_sound(tiny_run, tmp_path, name, codec, size):
    write_video(tmp_path / name, emoji_frames(20, *size), rate=24, codec=codec)
    # --video_stats=clip: its two passes over the file (statistics, then frames), not auto's one for a U-Net.
    result = checked(translate(tiny_run.path, name, "out", "--video_stats=clip", cwd=tmp_path))
    assert f"20 frames of {size[0]} x {size[1]}, 24 fps; instance-norm statistics per clip" in result.stdout
    frames_in, rate_in, audio_in = read_video(tmp_path / name)
    frames_out, rate_out, audio_out = read_video(tmp_path / "out" / name)
    assert len(frames_out) == len(frames_in) == 20 and rate_out == rate_in == Fraction(24)
    assert frames_out[0].shape == (size[1], size[0], 3)
    assert audio_out == audio_in and len(audio_in) > 10  # the sound, copied packet for packet
    assert np.abs(frames_out[0].astype(int) - frames_in[0]).mean() > 2  # translated, not copied
    assert not list((tmp_path / "out").glob(".*tmp*"))


def test_animated_webp_and_gif_keep_their_frames_timing_and_alpha(tiny_run, tmp_path):
    frames = []
    for rgb in emoji_frames(6, 40, 40):
        alpha = np.full((40, 40, 1), 255, np.uint8)
        alpha[:, :6] = 0  # a transparent band, as the animated emoji have around them
        frames.append(Image.fromarray(np.concatenate([rgb, alpha], axis=-1), "RGBA"))
    durations = [40, 40, 80, 40, 120, 40]
    frames[0].save(
        tmp_path / "a.webp", save_all=True, append_images=frames[1:], duration=durations, loop=0, lossless=True
    )
    frames[0].save(tmp_path / "a.gif", save_all=True, append_images=frames[1:], duration=durations, loop=0, disposal=2)
    checked(translate(tiny_run.path, "a.webp", "out", cwd=tmp_path))
    checked(translate(tiny_run.path, "a.gif", "out", cwd=tmp_path))
    for name in ("a.webp", "a.gif"):
        with Image.open(tmp_path / "out" / name) as image:
            assert image.n_frames == 6 and image.size == (40, 40)
            read = [  # the pixels first: Pillow reads a frame's duration as it loads it
                (np.asarray(frame.convert("RGBA")), frame.info["duration"]) for frame in ImageSequence.Iterator(image)
            ]
        assert [duration for _, duration in read] == durations
        alpha = read[2][0][..., 3]
        assert (alpha[:, :6] == 0).all() and (alpha[:, 6:] == 255).all(), name


def flicker(frames):
    """Mean absolute frame-to-frame difference outside the moving square's rows (the part of the input that stays)."""
    still = np.stack(frames)[:, 12:].astype(np.float32)
    return float(np.abs(np.diff(still, axis=0)).mean())


@pytest.mark.slow  # a ResNet trained for it and eight translations: ~2 minutes
def test_statistics_shared_over_a_clip_steady_a_resnet_and_a_unet_keeps_its_own(tiny_run, tmp_path):
    """One object moves; the rest of the clip stays. A ResNet generator normalised frame by frame changes the still
    part with the object (its statistics move); with the clip's statistics it changes it less. A U-Net (tiny_run,
    the quickstart's kind) is steadier frame by frame (docs/measurements.md), which auto picks for it."""
    checked(run_train([*paper("monet2photo"), "--steps=4", "--health_images=0", "--run_dir=resnet"], tmp_path))
    write_video(tmp_path / "clip.mkv", emoji_frames(12, 64, 64), codec="libx264", audio=False)
    outputs = {}
    for stats in ("clip", "window", "frame", "auto"):
        result = checked(translate("resnet", "clip.mkv", f"resnet_{stats}", f"--video_stats={stats}", cwd=tmp_path))
        outputs["resnet", stats] = flicker(read_video(tmp_path / f"resnet_{stats}" / "clip.mkv")[0])
    assert "statistics per clip (auto)" in result.stdout
    said = {}
    for stats in ("auto", "frame"):
        said[stats] = checked(
            translate(tiny_run.path, "clip.mkv", f"unet_{stats}", f"--video_stats={stats}", cwd=tmp_path)
        )
        outputs["unet", stats] = read_video(tmp_path / f"unet_{stats}" / "clip.mkv")[0]
    assert "statistics per frame (auto: U-Net generator)" in said["auto"].stdout
    print({key: value for key, value in outputs.items() if key[0] == "resnet"})
    assert outputs["resnet", "clip"] < 0.75 * outputs["resnet", "frame"]
    assert outputs["resnet", "window"] < outputs["resnet", "frame"]
    assert outputs["resnet", "auto"] == outputs["resnet", "clip"]
    np.testing.assert_array_equal(np.stack(outputs["unet", "auto"]), np.stack(outputs["unet", "frame"]))


def avi_declaring(path, width, height):
    """A 3-frame raw AVI of 16 x 16 frames whose headers (avih, strf) declare ``width`` x ``height``."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=25)
        stream.width, stream.height, stream.pix_fmt = 16, 16, "bgr24"
        for _ in range(3):
            container.mux(stream.encode(av.VideoFrame.from_ndarray(np.zeros((16, 16, 3), np.uint8), format="rgb24")))
        container.mux(stream.encode(None))
    data = bytearray(path.read_bytes())
    main = data.find(b"avih") + 8
    data[main + 32 : main + 40] = struct.pack("<II", width, height)
    info = data.find(b"strf") + 8
    data[info + 4 : info + 12] = struct.pack("<ii", width, -height)
    path.write_bytes(bytes(data))


def test_damaged_and_hostile_videos_are_one_line_each_in_bounded_memory(tiny_run, tmp_path):
    write_video(tmp_path / "good.mp4", emoji_frames(12, 32, 32))
    data = (tmp_path / "good.mp4").read_bytes()
    (tmp_path / "cut.mp4").write_bytes(data[: len(data) // 2])
    with av.open(str(tmp_path / "sound.mp4"), "w") as container:
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "mono"
        for _ in range(0, 48000, 1024):
            chunk = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
            chunk.sample_rate = 48000
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))
    avi_declaring(tmp_path / "huge.avi", 20000, 20000)  # past what FFmpeg accepts as a picture size
    avi_declaring(tmp_path / "big.avi", 12000, 12000)  # 144 MP: FFmpeg would allocate it; refused from the header
    (tmp_path / "text.webm").write_text("not a video")
    expected = {
        "cut.mp4": "cut.mp4: not a readable video",
        "sound.mp4": "sound.mp4: has no video stream",
        "huge.avi": "huge.avi: FFmpeg cannot read its frame size (damaged, or too large)",
        "big.avi": "big.avi: frames of 12000 x 12000 pixels, above --max_pixels=50000000",
        "text.webm": "text.webm: not a readable video",
    }
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in expected:
        (tmp_path / name).rename(folder / name)
    # One translate over the folder: each file is skipped with one line naming it, nothing is written.
    result, peak = measured(
        "tf_cyclegan.translate", f"--run_dir={tiny_run.path}", "--input=clips", "--output=out", cwd=tmp_path
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr[-2000:]
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: skipped")]
    assert len(warnings) == len(expected), warnings
    for name, message in expected.items():
        assert any(line.startswith(f"warning: skipped clips/{message}") for line in warnings), (name, warnings)
    last = result.stderr.strip().splitlines()[-1]
    assert last == "python -m tf_cyclegan.translate: error: nothing was translated: all 5 input(s) were skipped"
    assert peak < 1500, peak
    left = [p.name for p in (tmp_path / "out").iterdir() if p.name != ".tf_cyclegan-translate.lock"]
    assert not left, f"nothing but the (released) output lock is left behind: {left}"


def test_without_pyav_a_video_says_how_to_install_it(tiny_run, tmp_path):
    # A stand-in av that fails to import, as on a machine without the [video] extra.
    shadow = tmp_path / "shadow"
    shadow.mkdir()
    (shadow / "av.py").write_text("raise ModuleNotFoundError(\"No module named 'av'\", name='av')\n")
    write_video(tmp_path / "clip.mp4", emoji_frames(4, 32, 32), audio=False)
    env = {**ENV, "PYTHONPATH": f"{shadow}:{ENV.get('PYTHONPATH', '')}"}
    result = cli(
        "tf_cyclegan.translate", f"--run_dir={tiny_run.path}", "--input=clip.mp4", "--output=o", cwd=tmp_path, env=env
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.strip().splitlines()[-1] == (
        "python -m tf_cyclegan.translate: error: nothing was translated: clip.mp4: translating videos needs PyAV: "
        'pip install -e ".[video]" (PyAV)'
    )
