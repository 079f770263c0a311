"""Translating a video or an animation frame by frame, without flicker.

A generator with instance norm normalises every image by its own statistics, so two nearly equal frames can come
out in different brightness or colour: the output flickers where the input does not. As tiled translation
normalises every tile by the whole image's statistics, a clip is translated with statistics shared over frames:

- ``clip``: every instance-norm layer uses the statistics of the whole clip (pooled over up to ``CLIP_FRAMES``
  frames spread through it, measured in a first pass over the file);
- ``window``: each frame uses those of the ``window`` frames around it (for clips whose scenes change);
- ``frame``: each frame its own, as a single image would (what plain frame-by-frame translation does);
- ``auto`` (the default): ``clip`` for ResNet generators, ``frame`` for U-Nets. Measured (docs/measurements.md):
  a ResNet's flicker, on the still part of a clip where one object moves, halved with the clip's statistics; a
  U-Net's grew several-fold, as its deepest layers (2 x 2 maps) normalised frame by frame are what keeps a local
  change from reaching the whole image through its bottleneck.

Frames are decoded, translated and encoded one at a time (``video.py``); the first pass keeps only each frame's
statistics, a few numbers per channel and layer.
"""

import math
import sys

import keras
import numpy as np

from tf_cyclegan import video
from tf_cyclegan.errors import Stopped
from tf_cyclegan.pictures import Picture

STATS = ("auto", "clip", "window", "frame")
CLIP_FRAMES = 64


def pooled(moments):
    """The (mean, variance) of every layer over several frames' [(mean, variance) per layer] (equal-sized frames)."""
    result = []
    for layer in zip(*moments):
        means = np.stack([mean for mean, _ in layer])
        squares = np.stack([variance + mean**2 for mean, variance in layer])
        mean = means.mean(axis=0)
        result.append((mean, np.maximum(squares.mean(axis=0) - mean**2, 0.0)))
    return result


def translate_clip(translator, path, target, stats="auto", window=9, tile=0, overlap=64, budget=None, **options):
    """Translates the clip at ``path`` into ``target`` (same format); returns the number of frames written.

    ``options``: ``max_pixels`` (per frame), ``log``, ``progress`` (a bar in frames), ``stop`` (true once a
    stop was requested: the clip is abandoned, nothing is written, Stopped is raised).
    """
    log, stop = options.get("log", print), options.get("stop", False)
    clip = video.open_clip(path, options.get("max_pixels", 0))
    plan = translator.plan(clip.height, clip.width, tile, overlap, budget)
    if isinstance(plan, str):
        raise video.VideoError(f"{path}: {plan}")
    chosen = ""
    if stats == "auto":
        stats = "frame" if translator.kind.startswith("unet") else "clip"
        chosen = " (auto: U-Net generator)" if stats == "frame" else " (auto)"
    if stats != "frame" and translator.generator is None:
        log(f"note: {path}: an exported model cannot share statistics over frames; each frame is normalised on its own")
        stats = "frame"
    shared = f"{stats} of {window} frames" if stats == "window" else stats
    log(f"{path}: {clip.describe()}; instance-norm statistics per {shared}{chosen}")
    per_frame = _frame_moments(translator, clip, stats, stop) if stats != "frame" else None
    shown = options.get("progress", True) and sys.stdout.isatty()  # a bar on a terminal, not in a log file
    bar = keras.utils.Progbar(clip.count, unit_name="frame", verbose=1 if shown else 0)
    done = 0

    def translate(rgba):
        nonlocal done
        if stop:
            raise Stopped(f"interrupted at frame {done} of {path}; {target} was not written")
        picture = Picture(rgba, translator.in_channels, translator.background)
        if per_frame is None:
            out = translator.translate_planned(picture, plan, overlap)
        else:
            moments = per_frame[0] if stats == "clip" else pooled(per_frame[max(0, done - window // 2) :][:window])
            out = translator.translate_fixed(picture, moments, plan, overlap)
        done += 1
        bar.update(done)
        return np.repeat(out, 3, axis=-1) if out.shape[-1] == 1 else out

    return clip.transcode(target, translate)


def _frame_moments(translator, clip, stats, stop):
    """[pooled moments of the clip] (clip), or every frame's moments in order (window)."""
    stride = max(1, math.ceil(clip.count / CLIP_FRAMES)) if stats == "clip" and clip.count else 1
    moments = []
    for index, rgba in enumerate(clip.frames()):
        if stop:
            raise Stopped(f"interrupted while reading {clip.path}; nothing was written")
        if index % stride == 0:
            moments.append(translator.moments_of(Picture(rgba, translator.in_channels, translator.background)))
    if not moments:
        raise video.VideoError(f"{clip.path}: no frame could be decoded")
    return [pooled(moments)] if stats == "clip" else moments
