"""``export --web``: a static page that runs a run's generators in the browser with LiteRT.js.

Writes ``<output>/web/<name>/``: ``index.html`` and ``translate.js`` (from ``tf_cyclegan/page``), one fixed-size
TFLite model per direction (LiteRT.js refuses dynamic shapes), ``manifest.json`` and example images from the
run's test split. The LiteRT.js runtime is the pinned version, from a public CDN with subresource-integrity
hashes, or copied from a local ``npm install @litertjs/core@<pinned>`` (``litert_js``) for offline use.
Every model is checked against the Keras generator before the folder is published.
"""

import base64
import hashlib
import json
import tempfile

import keras
import numpy as np
import tensorflow as tf

from tf_cyclegan import data as data_lib
from tf_cyclegan import factory, fs
from tf_cyclegan.errors import UserError
from tf_cyclegan.exporter import contained, convert_tflite, verify_tflite

LITERT_VERSION = "2.5.3"
CDN = "https://cdn.jsdelivr.net/npm"
# The two ES modules the page imports, as the npm package holds them (jsDelivr serves the same bytes).
MODULES = {"@litertjs/core": ("core", "dist/index.js"), "@litertjs/wasm-utils": ("wasm-utils", "dist/index.js")}
INTEGRITY = {
    "@litertjs/core": "sha384-MapSVJ/DPwvaWpp7q+Bid9O3uY1oB0KOU1QRMP+Mm5zdz5oMme/BUyX6dVAMWnPg",
    "@litertjs/wasm-utils": "sha384-HIPwlWsctS5BRqrnvJKDVJ8SvqKB0QmiImdr6+hpP7+8UqeMJX/qrBkdfKQV2WZ/",
}
# The runtime files loadLiteRt picks from a folder without the threads/jspi options: relaxed SIMD, or compat.
WASM_FILES = (
    "litert_wasm_internal.js",
    "litert_wasm_internal.wasm",
    "litert_wasm_compat_internal.js",
    "litert_wasm_compat_internal.wasm",
)
PAGE = fs.PACKAGE / "page"
VARIANTS = ("fp16", "fp32")
EXAMPLES = 3


class WebExportError(UserError):
    pass


def sri(data):
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def fixed_size_tflite(generator, channels, size, variant):
    """The generator as TFLite with a fixed [1, size, size, channels] input, converted from a SavedModel."""

    archive = keras.export.ExportArchive()
    archive.track(generator)
    archive.add_endpoint(
        "serving_default",
        lambda images: {"translated": generator(images, training=False)},
        input_signature=[tf.TensorSpec([1, size, size, channels], tf.float32, name="images")],
    )
    with tempfile.TemporaryDirectory() as folder:
        archive.write_out(folder, verbose=False)
        return convert_tflite(folder, variant)


def runtime_source(litert_js):
    """(import map, wasm folder URL, files to copy {relative target: source}) for the CDN or a local npm copy."""
    targets = {name: f"litert/{package}/{path.rsplit('/', 1)[-1]}" for name, (package, path) in MODULES.items()}
    if not litert_js:
        imports = {name: f"{CDN}/{name}@{LITERT_VERSION}/{path}" for name, (_, path) in MODULES.items()}
        return _import_map(imports), f"{CDN}/@litertjs/core@{LITERT_VERSION}/wasm/", {}
    scope = _npm_scope(fs.path(litert_js))
    copies = {targets[name]: scope / package / path for name, (package, path) in MODULES.items()}
    copies.update({f"litert/wasm/{name}": scope / "core" / "wasm" / name for name in WASM_FILES})
    missing = [str(source) for source in copies.values() if not source.is_file()]
    if missing:
        raise WebExportError(f"--litert_js: {missing[0]} is missing (npm install @litertjs/core@{LITERT_VERSION})")
    for name, (package, path) in MODULES.items():
        if sri((scope / package / path).read_bytes()) != INTEGRITY[name]:
            raise WebExportError(
                f"--litert_js: {scope / package / path} is not {name}@{LITERT_VERSION} "
                "(its hash differs from the pinned one)"
            )
    return _import_map({name: f"./{target}" for name, target in targets.items()}), "litert/wasm/", copies


def _npm_scope(folder):
    """The ``@litertjs`` folder under ``folder`` (a project with node_modules, node_modules, or @litertjs itself)."""
    for scope in (folder / "node_modules" / "@litertjs", folder / "@litertjs", folder, folder.parent):
        package = scope / "core" / "package.json"
        if package.is_file():
            version = json.loads(package.read_text()).get("version")
            if version != LITERT_VERSION:
                raise WebExportError(
                    f"--litert_js: {package} is version {version}; the page is pinned to "
                    f"{LITERT_VERSION} (npm install @litertjs/core@{LITERT_VERSION})"
                )
            return scope
    raise WebExportError(f"--litert_js: no @litertjs/core under {folder} (npm install @litertjs/core@{LITERT_VERSION})")


def _import_map(imports):
    integrity = {url: INTEGRITY[name] for name, url in imports.items()}
    return json.dumps({"imports": imports, "integrity": integrity}, indent=2)


def examples(config, direction, count=EXAMPLES):
    """{file name: encoded bytes} of ``count`` images spread over the direction's source test split."""

    domains = data_lib.resolve(config.data)
    source = "a" if direction == "a2b" else "b"
    domain = getattr(domains, f"test_{source}") or getattr(domains, f"train_{source}")
    picked = sorted({i * len(domain) // count for i in range(min(count, len(domain)))})
    files = {}
    for number, index in enumerate(picked, 1):
        item = domain.items[index]
        contents = item if isinstance(item, bytes) else fs.path(item).read_bytes()
        files[f"{direction}_{number}{_extension(contents)}"] = contents
    return files


def _extension(contents):
    for magic, extension in ((b"\x89PNG", ".png"), (b"\xff\xd8", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp")):
        if contents.startswith(magic):
            return extension
    return ".webp" if contents[8:12] == b"WEBP" else ".img"


def export_web(run_dir, output="export", size=0, litert_js="", variant="fp16", checkpoint=None, log=print):
    """Writes and checks the page folder for a run; returns its path and a report per direction."""

    if variant not in VARIANTS:
        raise WebExportError(f"--web_variant: {variant!r} is not one of {', '.join(VARIANTS)}")
    config, checkpoint, restored = factory.restore_run(run_dir, checkpoint, "export")
    size = size or config.data.image_size
    import_map, wasm, copies = runtime_source(litert_js)
    target = contained(fs.path(output) / "web", config.name)
    staging = fs.staging_folder(target.parent)
    try:
        generators = dict(zip(("a2b", "b2a"), restored))
        reports = _write_page(staging, config, generators, size, variant, import_map, wasm, copies)
        fs.replace_folder(staging, target, last=("index.html",))
    except BaseException:
        fs.remove_tree(staging)
        raise
    for direction, report in reports.items():
        log(
            f"{direction}: web model {target / report['model']} ({report['bytes'] / 1e6:.1f} MB {variant}, "
            f"{size}x{size}, max abs diff vs Keras {report['max_abs_diff']:.1e})"
        )
    serve = "copy the folder to a web server" if fs.is_remote(target) else f"python -m http.server -d {target}"
    log(f"web page: {target / 'index.html'} — try it with: {serve}")
    return target, reports


def _write_page(folder, config, generators, size, variant, import_map, wasm, copies):

    data = config.data
    manifest = {
        "name": config.name,
        "size": size,
        "background": data.background,
        "variant": variant,
        "litert": {"version": LITERT_VERSION, "wasm": wasm},
        "directions": {},
    }
    reports = {}
    (folder / "examples").mkdir()
    for direction, generator in generators.items():
        channels_in, channels_out = data.channels(direction)
        model = fixed_size_tflite(generator, channels_in, size, variant)
        noise = np.random.default_rng(0).uniform(-1, 1, (1, size, size, channels_in)).astype("float32")
        diff = verify_tflite(model, generator, channels_in, variant, x=noise)["max_abs_diff"]
        (folder / f"{direction}.tflite").write_bytes(model)
        names = []
        for name, contents in examples(config, direction).items():
            (folder / "examples" / name).write_bytes(contents)
            names.append(f"examples/{name}")
        manifest["directions"][direction] = {
            "model": f"{direction}.tflite",
            "input_channels": channels_in,
            "output_channels": channels_out,
            "examples": names,
        }
        reports[direction] = {"model": f"{direction}.tflite", "bytes": len(model), "max_abs_diff": diff}
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2))
    page = (PAGE / "index.html").read_text(encoding="utf-8").replace("{{IMPORT_MAP}}", import_map)
    (folder / "index.html").write_text(page, encoding="utf-8")
    (folder / "translate.js").write_bytes((PAGE / "translate.js").read_bytes())
    for relative, source in copies.items():
        (folder / relative).parent.mkdir(parents=True, exist_ok=True)
        fs.copy_file(source, folder / relative)
    return reports
