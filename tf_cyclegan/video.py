"""Videos and animated images as streams of frames, read and written back in their own format.

Videos (``.mp4 .m4v .mov .mkv .webm .avi``) are read and written with PyAV, FFmpeg's libraries in a wheel (the
``[video]`` extra): frames are decoded and encoded one at a time, so a clip never sits in memory whole. The output
keeps the input's container, size, frame count and timing (each frame's presentation time is copied), and every
audio stream is copied packet for packet, without re-encoding. Animated GIF and WebP are read and written with
Pillow (FFmpeg cannot decode animated WebP); Pillow writes an animation in one piece, so its frames are held until
then, and an animation whose frames would take more than ``MAX_ANIMATION_BYTES`` is refused. Every problem is a
``VideoError`` whose one line names the file.
"""

import dataclasses

import numpy as np
from PIL import Image, ImageSequence

from tf_cyclegan import fs
from tf_cyclegan.errors import UserError

VIDEO_EXTENSIONS = (".mp4", ".m4v", ".mov", ".mkv", ".webm", ".avi")
ANIMATION_EXTENSIONS = (".gif", ".webp")
MAX_ANIMATION_BYTES = 1 << 30  # the translated frames of an animated GIF/WebP, held until Pillow writes it
# Encoders per container: the libraries in PyAV's wheels (H.264, VP9, MPEG-4 part 2), at a quality where
# 8-bit rounding, not compression, dominates the difference to the translated frames.
ENCODERS = {".webm": ("libvpx-vp9", {"crf": "20", "b": "0"}), ".avi": ("mpeg4", {"qscale": "2"})}
H264 = ("libx264", {"crf": "16", "preset": "medium"})
INSTALL = 'pip install -e ".[video]" (PyAV)'


class VideoError(UserError):
    """A video or animation that cannot be translated; the message is one line naming the file."""


def is_clip(path):
    """Whether ``path`` is a video (by its extension) or an animated GIF/WebP (more than one frame)."""
    suffix = fs.path(path).suffix.lower()
    if suffix in VIDEO_EXTENSIONS:
        return True
    if suffix not in ANIMATION_EXTENSIONS:
        return False
    try:
        with fs.path(path).open("rb") as file, Image.open(file) as image:
            return bool(getattr(image, "is_animated", False))
    except (OSError, ValueError, Image.DecompressionBombError):
        return False  # not an animation this module reads: the image reader names what is wrong


@dataclasses.dataclass
class Clip:
    """A clip's size and length; ``frames()`` yields its frames as uint8 HxWx4 RGBA (opaque for videos)."""

    path: object  # a local file (translate copies a URI's first: PyAV and Pillow read local files)
    width: int
    height: int
    count: int | None  # frames, when the container says
    rate: str  # for messages: '24 fps', or 'frame times from the file'

    def describe(self):
        count = f"{self.count} frames" if self.count else "frames"
        return f"{count} of {self.width} x {self.height}, {self.rate}"


def require_av():
    try:
        import av  # the [video] extra: only videos need it
    except ImportError:
        raise VideoError(f"translating videos needs PyAV: {INSTALL}") from None
    return av


def open_clip(path, max_pixels=0):
    """The Clip at ``path``, its size checked before any frame is decoded (VideoError naming the file)."""
    path = fs.path(path)
    clip = _open_video(path) if path.suffix.lower() in VIDEO_EXTENSIONS else _open_animation(path)
    if max_pixels and clip.width * clip.height > max_pixels:
        raise VideoError(f"{path}: frames of {clip.width} x {clip.height} pixels, above --max_pixels={max_pixels}")
    return clip


def _first_line(error):
    return (str(error).strip().splitlines() or [type(error).__name__])[0][:160]


def _open_video(path):
    av = require_av()
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoError(f"{path}: has no video stream")
            stream = container.streams.video[0]
            if not stream.codec_context.width or not stream.codec_context.height:
                raise VideoError(f"{path}: FFmpeg cannot read its frame size (damaged, or too large)")
            rate = stream.average_rate or stream.guessed_rate
            # WebM and Matroska do not record it: count the packets (read, not decoded).
            count = stream.frames or sum(1 for packet in container.demux(stream) if packet.size)
            return VideoClip(
                path,
                stream.codec_context.width,
                stream.codec_context.height,
                count or None,
                f"{float(rate):.4g} fps" if rate else "frame times from the file",
            )
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(f"{path}: not a readable video ({_first_line(error)})") from None


def _open_animation(path):
    try:
        with Image.open(path) as image:
            width, height, count = image.width, image.height, getattr(image, "n_frames", 1)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise VideoError(f"{path}: not a readable animation ({_first_line(error)})") from None
    held = count * width * height * 4
    if held > MAX_ANIMATION_BYTES:
        raise VideoError(
            f"{path}: {count} frames of {width} x {height} would hold {held / 2**30:.1f} GB until the animation is "
            f"written (at most {MAX_ANIMATION_BYTES / 2**30:.0f} GB); convert it to a video (e.g. .mp4) first"
        )
    return AnimationClip(path, width, height, count, "frame times from the file")


class VideoClip(Clip):
    def frames(self):
        av = require_av()
        with av.open(str(self.path)) as container:
            yield from _decoded(container, container.streams.video[0], self.path, av)

    def transcode(self, target, translate):
        """Writes ``translate(rgba frame) -> uint8 HxWx3`` of every frame to ``target`` (a temporary name, renamed
        when complete), with the input's frame times and its audio streams copied; returns the frames written."""
        av = require_av()
        written = 0
        with fs.writing(target) as temporary:
            with av.open(str(self.path)) as source, av.open(str(temporary), "w", format=_format(target)) as output:
                video = source.streams.video[0]
                encoder = _add_encoder(output, video, target)
                audio = {stream: output.add_stream_from_template(stream) for stream in source.streams.audio}
                for packet in source.demux(video, *audio):
                    if packet.stream in audio:
                        if packet.dts is not None:  # the demuxer's empty flush packet has none
                            packet.stream = audio[packet.stream]
                            output.mux(packet)
                        continue
                    for frame in _decode_packet(packet, self.path, av):
                        encoded = av.VideoFrame.from_ndarray(translate(_rgba(frame)), format="rgb24")
                        encoded.pts, encoded.time_base = frame.pts, frame.time_base
                        output.mux(encoder.encode(encoded))
                        written += 1
                output.mux(encoder.encode(None))
            if not written:
                raise VideoError(f"{self.path}: no frame could be decoded")
        return written


def _format(target):
    """The muxer for ``target``'s extension (written under a temporary name, whose extension says nothing)."""
    formats = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mov", ".mkv": "matroska", ".webm": "webm", ".avi": "avi"}
    return formats[fs.path(target).suffix.lower()]


def _add_encoder(output, video, target):
    suffix = fs.path(target).suffix.lower()
    codec, options = ENCODERS.get(suffix, H264)
    rate = video.average_rate or video.guessed_rate or 25
    stream = output.add_stream(codec, rate=rate, options=dict(options))
    stream.width, stream.height = video.codec_context.width, video.codec_context.height
    odd = stream.width % 2 or stream.height % 2  # 4:2:0 halves both sides: an odd one needs 4:4:4 (H.264)
    stream.pix_fmt = "yuv444p" if odd and codec == "libx264" else "yuv420p"
    stream.time_base = video.time_base
    return stream


def _decoded(container, stream, path, av):
    for packet in container.demux(stream):
        yield from (_rgba(frame) for frame in _decode_packet(packet, path, av))


def _decode_packet(packet, path, av):
    try:
        return packet.decode()
    except av.error.FFmpegError as error:
        raise VideoError(f"{path}: damaged video data ({_first_line(error)})") from None


def _rgba(frame):
    """uint8 HxWx4 of a decoded video frame (opaque) or an RGBA array as it is."""
    if isinstance(frame, np.ndarray):
        return frame
    rgb = frame.to_ndarray(format="rgb24")
    return np.concatenate([rgb, np.full(rgb.shape[:2] + (1,), 255, np.uint8)], axis=-1)


class AnimationClip(Clip):
    def frames(self):
        with Image.open(self.path) as image:
            for frame in ImageSequence.Iterator(image):
                yield np.asarray(frame.convert("RGBA"))

    def transcode(self, target, translate):
        """Writes the translated frames (``translate(rgba) -> uint8 HxWx3``, each frame's own alpha kept) as an
        animation of the input's format, frame durations and loop count; returns the frames written."""
        frames, durations = [], []
        with Image.open(self.path) as image:
            loop, background = image.info.get("loop", 0), image.info.get("background", (0, 0, 0, 0))
            for frame in ImageSequence.Iterator(image):
                rgba = np.asarray(frame.convert("RGBA"))
                durations.append(frame.info.get("duration", image.info.get("duration", 100)))
                frames.append(Image.fromarray(np.concatenate([translate(rgba), rgba[..., 3:]], axis=-1), "RGBA"))
        suffix = fs.path(target).suffix.lower()
        options = {"quality": 95, "background": background} if suffix == ".webp" else {"disposal": 2}
        with fs.writing(target) as temporary:
            frames[0].save(
                temporary,
                "WEBP" if suffix == ".webp" else "GIF",
                save_all=True,
                append_images=frames[1:],
                duration=durations,
                loop=loop,
                **options,
            )
        return len(frames)
