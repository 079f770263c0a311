"""Video decoding and encoding per library, the way translate uses them: frames streamed as RGB arrays.

    pip install imageio-ffmpeg   # only for this comparison; translate uses PyAV (the [video] extra)
    python benchmarks/video_io.py [--frames=300] [--size=256] [--repeats=3]

Encodes a synthetic clip once (H.264), then for each library reads every frame as an RGB array and writes it back
as H.264 (CRF 16) in an .mp4, with the audio stream copied where the library can (PyAV: packets, in the same pass;
imageio-ffmpeg: not in the same pass, its writer is a pipe to an ffmpeg process that takes frames only). Prints
seconds per pass (best of --repeats) and frames per second.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cpu import describe_cpu  # noqa: E402  (benchmarks/cpu.py)


def make_clip(path, frames, size):
    import av

    with av.open(str(path), "w") as container:
        video = container.add_stream("libx264", rate=24)
        video.width = video.height = size
        video.pix_fmt = "yuv420p"
        sound = container.add_stream("aac", rate=48000)
        sound.layout = "mono"
        for index in range(frames):
            frame = np.zeros((size, size, 3), np.uint8)
            frame[:, (index * 3) % size] = 255
            frame[..., 1] = (np.arange(size) % 256).astype(np.uint8)[None]
            container.mux(video.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")))
        container.mux(video.encode(None))
        tone = np.zeros((1, 48000 * frames // 24), np.float32)
        for start in range(0, tone.shape[1], 1024):
            chunk = av.AudioFrame.from_ndarray(tone[:, start : start + 1024], format="fltp", layout="mono")
            chunk.sample_rate = 48000
            container.mux(sound.encode(chunk))
        container.mux(sound.encode(None))


def with_pyav(source, target):
    import av

    with av.open(str(source)) as inp, av.open(str(target), "w") as out:
        video, audio = inp.streams.video[0], inp.streams.audio[0]
        encoder = out.add_stream("libx264", rate=video.average_rate, options={"crf": "16"})
        encoder.width, encoder.height, encoder.pix_fmt = video.width, video.height, "yuv420p"
        copied = out.add_stream_from_template(audio)
        count = 0
        for packet in inp.demux(video, audio):
            if packet.stream is audio:
                if packet.dts is not None:
                    packet.stream = copied
                    out.mux(packet)
                continue
            for frame in packet.decode():
                rgb = frame.to_ndarray(format="rgb24")
                out.mux(encoder.encode(av.VideoFrame.from_ndarray(rgb, format="rgb24")))
                count += 1
        out.mux(encoder.encode(None))
    return count


def with_imageio_ffmpeg(source, target):
    import imageio_ffmpeg

    reader = imageio_ffmpeg.read_frames(str(source))
    meta = next(reader)
    width, height = meta["size"]
    writer = imageio_ffmpeg.write_frames(
        str(target), (width, height), fps=meta["fps"], codec="libx264", output_params=["-crf", "16"], macro_block_size=1
    )
    writer.send(None)
    count = 0
    for raw in reader:
        rgb = np.frombuffer(raw, np.uint8).reshape(height, width, 3)
        writer.send(rgb)
        count += 1
    writer.close()
    return count


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=300)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="video_io_"))
    make_clip(work / "in.mp4", args.frames, args.size)
    print(f"\n{describe_cpu()}\n{args.frames} frames of {args.size} x {args.size}, decode + encode (H.264, CRF 16)")
    print(f"| library | audio copied in the pass | seconds (best of {args.repeats}) | frames/s |")
    print("|---|---|---|---|")
    for name, run, audio in (("PyAV 18.1", with_pyav, "yes"), ("imageio-ffmpeg 0.8.1", with_imageio_ffmpeg, "no")):
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            count = run(work / "in.mp4", work / f"out_{name.split()[0]}.mp4")
            times.append(time.perf_counter() - started)
        assert count == args.frames, (name, count)
        print(f"| {name} | {audio} | {min(times):.2f} | {args.frames / min(times):.0f} |")


if __name__ == "__main__":
    main()
