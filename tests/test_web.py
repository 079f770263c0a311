"""``export --web``: the page exported from a real run, served on 127.0.0.1 and driven in headless Chromium.

Needs Debian's chromium, Node.js and ``npm ci`` in tests/web (the pinned @litertjs/core and playwright-core);
.ci/run installs them. Without them the browser test skips and says why.
"""

import functools
import http.server
import json
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from trainrun import ENV

from tf_cyclegan.exporter import run_tflite
from tf_cyclegan.webpage import INTEGRITY, LITERT_VERSION, MODULES, sri

WEB = Path(__file__).resolve().parent / "web"
NODE_MODULES = WEB / "node_modules"
EMOJI = Path(__file__).resolve().parent.parent / "tf_cyclegan" / "datasets" / "emoji"


def browser_missing():
    """Why the browser test cannot run here ('' when it can)."""
    if not shutil.which("chromium"):
        return "Debian's chromium is not installed (apt-get install -y chromium; .ci/run does it)"
    if not shutil.which("node"):
        return "Node.js is not installed"
    if not (NODE_MODULES / "playwright-core").is_dir() or not (NODE_MODULES / "@litertjs" / "core").is_dir():
        return "tests/web has no node_modules (cd tests/web && npm ci; .ci/run does it)"
    return ""


def export(tiny_run, output, *flags):
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "tf_cyclegan.export",
            f"--run_dir={tiny_run.path}",
            f"--output={output}",
            "--web",
            *flags,
        ],
        env=ENV,
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.fixture(scope="module")
def page(tiny_run, tmp_path_factory):
    reason = browser_missing()
    if reason:
        print(f"skipping the browser test: {reason}")
        pytest.skip(reason)
    output = tmp_path_factory.mktemp("web")
    result = export(tiny_run, output, f"--litert_js={WEB}")
    assert result.returncode == 0 and "Traceback" not in result.stderr, result.stderr[-2000:]
    return output / "web" / "tiny", result


@pytest.fixture(scope="module")
def served(page):
    folder, _ = page
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(folder))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()


@pytest.fixture(scope="module")
def visit(served, page, tmp_path_factory):
    """What headless Chromium saw on the page (tests/web/drive.mjs), and the files it was given."""
    folder = tmp_path_factory.mktemp("visit")
    (folder / "notes.png").write_text("not an image, whatever its name says\n")
    upload = folder / "odd_size.png"  # another size than the model's, with transparent pixels
    emoji = np.array(Image.open(sorted((EMOJI / "testB").glob("*.png"))[5]).convert("RGBA"))
    Image.fromarray(emoji[3:60, :50]).save(upload)
    screenshot = folder / "page.png"
    result = subprocess.run(
        ["node", str(WEB / "drive.mjs"), served, str(screenshot), str(folder / "notes.png"), str(upload)],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=WEB,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert "error" not in report, report["error"]
    return report, upload, screenshot


def eight_bit(y):
    return np.round((np.clip(np.asarray(y, np.float32), -1, 1) + 1) * 127.5)


def test_the_page_folder_is_self_contained_and_checked(page):
    folder, result = page
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["size"] == 32 and manifest["litert"] == {"version": LITERT_VERSION, "wasm": "litert/wasm/"}
    for direction in ("a2b", "b2a"):
        spec = manifest["directions"][direction]
        assert (folder / spec["model"]).is_file() and len(spec["examples"]) == 3
        assert all((folder / example).is_file() for example in spec["examples"])
        assert f"{direction}: web model" in result.stdout and "max abs diff vs Keras" in result.stdout
    assert (folder / "litert" / "core" / "index.js").is_file() and (folder / "litert" / "wasm").is_dir()
    assert "{{" not in (folder / "index.html").read_text()
    assert folder.stat().st_mode & 0o055 == 0o055  # a web server running as another user can read it


def test_the_browser_translates_an_example_on_load_as_python_litert_does(visit, page):
    report, _, _ = visit
    folder, _ = page
    assert report["state"] == "ready" and report["accelerator"] in ("wasm", "webgpu"), report["status"]
    assert report["on_load"]["direction"] == "a2b" and report["on_load"]["name"] == "a2b_1.png"
    assert report["b2a"]["direction"] == "b2a" and report["b2a"]["name"] == "b2a_1.png"
    assert f"on {report['accelerator']} at 32×32" in report["status"]
    for seen in (report["on_load"], report["b2a"]):
        x = np.asarray(seen["input"], np.float32).reshape(1, 32, 32, 3)
        assert -1 <= x.min() and x.max() <= 1 and x.std() > 0.05  # a real picture, not an empty canvas
        expected = run_tflite((folder / f"{seen['direction']}.tflite").read_bytes(), x)
        assert np.abs(eight_bit(seen["output"]).reshape(expected.shape) - eight_bit(expected)).max() <= 1


def test_an_upload_of_any_size_comes_back_at_its_size_with_its_alpha(visit):
    report, upload, _ = visit
    original = np.array(Image.open(upload))
    assert report["upload"]["name"] == "odd_size.png" and report["upload"]["direction"] == "b2a"
    canvas = report["upload_canvas"]
    assert (canvas["height"], canvas["width"]) == original.shape[:2]
    assert canvas["transparent"] == int((original[..., 3] == 0).sum()) > 0
    assert report["download"] == "odd_size_b2a.png"


def test_a_file_that_is_not_an_image_is_one_visible_line_and_nothing_breaks(visit):
    report, _, screenshot = visit
    assert report["not_an_image"] == "notes.png is not an image this browser can read"
    assert report["console_errors"] == []
    assert screenshot.stat().st_size > 10_000


def test_by_default_the_page_loads_the_pinned_runtime_from_a_cdn_with_integrity(tiny_run, tmp_path):
    reason = browser_missing()
    result = export(tiny_run, tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    folder = tmp_path / "web" / "tiny"
    html = (folder / "index.html").read_text()
    import_map = json.loads(html.split('<script type="importmap">')[1].split("</script>")[0])
    for name, (package, path) in MODULES.items():
        url = import_map["imports"][name]
        assert url == f"https://cdn.jsdelivr.net/npm/{name}@{LITERT_VERSION}/{path}"
        assert import_map["integrity"][url] == INTEGRITY[name]
        if not reason:  # the pinned hashes are those of the package npm installs
            assert sri((NODE_MODULES / "@litertjs" / package / path).read_bytes()) == INTEGRITY[name]
    assert not (folder / "litert").exists()
    assert json.loads((folder / "manifest.json").read_text())["litert"]["wasm"].startswith("https://cdn.jsdelivr.net/")


def test_a_folder_without_the_pinned_runtime_is_one_line(tiny_run, tmp_path):
    result = export(tiny_run, tmp_path, f"--litert_js={tmp_path}")
    assert result.returncode == 1 and "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if "error:" in line]
    assert len(lines) == 1 and "--litert_js: no @litertjs/core under" in lines[0]
    assert not (tmp_path / "web" / "tiny").exists()
