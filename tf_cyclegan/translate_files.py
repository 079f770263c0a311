"""Translating files: an image, a video, an animation, or every one of them under a folder.

The library behind ``python -m tf_cyclegan.translate``: outputs keep the inputs' names and sub-folders, images are
decoded small and tiled when memory asks (``translator.py``), videos and animations are streamed frame by frame
with shared statistics (``temporal.py``), every output is written under a temporary name and renamed, one
translate at a time writes into a folder, and Ctrl-C or SIGTERM stops cleanly.
"""

import sys

import keras
import tensorflow as tf

from tf_cyclegan import footprint, fs, run, temporal, video
from tf_cyclegan.data.sources import IMAGE_EXTENSIONS, list_folder
from tf_cyclegan.errors import Stopped
from tf_cyclegan.pictures import Refused, read_image, write_image
from tf_cyclegan.stopping import StopSignals
from tf_cyclegan.translator import DEFAULT_MEMORY_GB, TranslateError

INPUT_EXTENSIONS = IMAGE_EXTENSIONS + video.VIDEO_EXTENSIONS


def _input_files(source):
    """[(path, path relative to the output folder)] and the files that are neither images nor videos, for --input."""
    source = fs.path(source)
    if source.is_dir():
        domain = list_folder(source, extensions=INPUT_EXTENSIONS)
        return [(fs.path(p), label) for p, label in zip(domain.items, domain.labels)], domain.skipped
    if source.is_file():
        return [(source, source.name)], []
    if not source.exists():
        raise TranslateError(f"--input: no such file or folder: {source}")
    raise TranslateError(f"--input: {source} is neither a file nor a folder")


def _output_folder(output, source):
    output = fs.check_output_folder(output, "--output", source)
    output.mkdir(parents=True, exist_ok=True)
    return output


def _translate_file(translator, path, tile, overlap, budget, max_pixels, log):
    """(uint8 translation, uint8 alpha or None) of one image file, tiled when its memory asks; or why not (a str)."""
    try:
        picture = read_image(path, translator.in_channels, translator.background, max_pixels)
        plan = translator.plan(picture.height, picture.width, tile, overlap, budget)
    except (tf.errors.OpError, Refused) as error:
        return str(error) if isinstance(error, Refused) else "unreadable"
    if isinstance(plan, str):
        return plan
    if plan and not tile:
        need = footprint.gib(translator.memory_for(picture.height, picture.width))
        log(
            f"note: {path} ({picture.width} x {picture.height}) is translated in {plan} px tiles: untiled it needs "
            f"about {need}, above the {footprint.gib(budget)} allowed (--max_memory_gb)"
        )
    return translator.translate_planned(picture, plan, overlap), picture.alpha()


def _translate_one(translator, path, target, settings, stop):
    """Translates one image, video or animation into ``target``; returns why it was skipped ('' when written)."""
    tile, overlap, budget, max_pixels, log = (settings[k] for k in ("tile", "overlap", "budget", "max_pixels", "log"))
    if video.is_clip(path):
        # PyAV and Pillow read local files: a clip at a URI is copied to a temporary file first.
        with fs.local_file(path) as local:
            try:
                temporal.translate_clip(
                    translator, local, target, settings["video_stats"], settings["video_window"], tile, overlap,
                    budget, max_pixels=max_pixels, log=lambda line: log(line.replace(str(local), str(path))),
                    progress=settings["progress"], stop=stop,
                )  # fmt: skip
            except video.VideoError as error:
                return str(error).removeprefix(f"{local}: ")
        return ""
    translated = _translate_file(translator, path, tile, overlap, budget, max_pixels, log)
    if isinstance(translated, str):
        return translated
    write_image(target, *translated)
    return ""


def translate_paths(translator, inputs, output, tile=None, overlap=64, log=print, progress=True, **limits):
    """Translates a file or every image, video and animation under a folder into ``output``; returns (written,
    skipped).

    ``limits``: ``max_pixels`` (per image or frame); ``max_memory`` (bytes; default DEFAULT_MEMORY_GB, or half of
    what the machine has available when that is less): an image or frame estimated (``footprint``) above it is
    translated in tiles, or skipped with an exported model (which cannot tile); ``video_stats`` and
    ``video_window`` (temporal.py). One translate at a time writes into ``output`` (a lock); every file is
    written under a temporary name and renamed; Ctrl-C or SIGTERM finishes the current image (abandons the
    current clip), then stops (exit 130). It is an error when nothing at all was translated.
    """
    files, others = _input_files(inputs)
    if not files:
        raise TranslateError(f"--input: no images or videos ({', '.join(INPUT_EXTENSIONS)}) in {inputs}")
    if others:
        shown = ", ".join(others[:3]) + (" ..." if len(others) > 3 else "")
        log(f"note: ignored {len(others)} file(s) that are not {', '.join(INPUT_EXTENSIONS)} files: {shown}")
    output = _output_folder(output, inputs)
    budget = limits.get("max_memory") or min(DEFAULT_MEMORY_GB * footprint.GIB, footprint.available() // 2)
    settings = dict(tile=tile, overlap=overlap, budget=budget, log=log, progress=progress and len(files) == 1)
    settings.update(max_pixels=limits.get("max_pixels", 0), video_stats=limits.get("video_stats", "auto"))
    settings["video_window"] = limits.get("video_window", 9)
    # A bar on a terminal (not in a log file), with each message on a line of its own below it.
    shown = progress and len(files) > 1 and sys.stdout.isatty()
    bar = keras.utils.Progbar(len(files), unit_name="file", verbose=1 if shown else 0)
    say = (lambda line: log("\n" + line)) if shown else log
    written, skipped = [], []
    lock = run.RunLock(
        output,
        log,
        holder="translate",
        name=".tf_cyclegan-translate.lock",
        advice="wait for it to finish or stop it, or write into another --output",
    )
    with lock, StopSignals() as stop:
        for i, (path, relative) in enumerate(files, 1):
            if stop:
                raise Stopped(
                    f"interrupted after {i - 1} of {len(files)} files ({len(written)} written into "
                    f"{output}); the others were not translated"
                )
            why = _translate_one(translator, path, output / relative, settings, stop)
            if why:
                skipped.append((str(path), why))
                say(f"warning: skipped {path}: {why}")
            else:
                written.append(str(output / relative))
            bar.update(i)
    if not written:
        if len(skipped) == 1:
            raise TranslateError(f"nothing was translated: {skipped[0][0]}: {skipped[0][1]}")
        raise TranslateError(f"nothing was translated: all {len(files)} input(s) were skipped")
    return written, [path for path, _ in skipped]
