"""What a command imports: every module a command loads and does not use is CPU it pays on every run
(issue 24: a scan's fixed cost). Checked in the command's own process, run as a real subprocess."""

import json
import subprocess
import sys

from helpers import REPO, cli_env
from PIL import Image

#: Runs ``photodedup ARGS`` (the real entry point) and writes the modules it loaded to the file named first.
_WRAPPER = """
import json, runpy, sys
out, sys.argv = sys.argv[1], ["photodedup", *sys.argv[2:]]
seen = {}
from multiprocessing import forkserver
from typer.core import TyperCommand
parse = TyperCommand.parse_args


def watch(self, ctx, args):  # notes whether the pool's forkserver runs when the command's options are parsed
    seen.setdefault("forkserver", forkserver._forkserver._forkserver_pid is not None)
    return parse(self, ctx, args)


TyperCommand.parse_args = watch
try:
    runpy.run_module("photodedup", run_name="__main__")
except SystemExit as exit:
    code = exit.code
else:
    code = 0
with open(out, "w") as handle:
    json.dump({"code": code, "modules": sorted(sys.modules), **seen}, handle)
"""

#: Never needed by a scan or an onnx embed.
_HEAVY = {"torch", "open_clip", "scipy.fft", "scipy", "sklearn", "faiss", "cv2", "ray", "tritonclient"}


def _run(tmp_path, *args) -> dict:
    out = tmp_path / "modules.json"
    result = subprocess.run([sys.executable, "-c", _WRAPPER, str(out), *args], env=cli_env(), cwd=REPO,
                            capture_output=True, text=True, timeout=600)
    loaded = json.loads(out.read_text())
    assert loaded["code"] == 0, result.stderr
    return loaded


def _modules(tmp_path, *args) -> set[str]:
    return set(_run(tmp_path, *args)["modules"])


def _photos(folder, count=4):
    folder.mkdir()
    for i in range(count):
        Image.new("RGB", (96, 64), (40 * i, 90, 160)).save(folder / f"{i}.jpg")
    return folder


def test_a_quiet_json_scan_imports_no_model_runtime_nor_rich(tmp_path):
    photos = _photos(tmp_path / "photos")
    modules = _modules(tmp_path, "scan", str(photos), "--catalog", str(tmp_path / "c.sqlite"), "--json", "--quiet")
    assert "photodedup.scan" in modules
    assert modules & (_HEAVY | {"onnxruntime", "rich"}) == set()


def test_an_onnx_embed_imports_onnxruntime_and_not_torch(tmp_path, onnx_model_dir):
    photos = _photos(tmp_path / "photos")
    catalog = str(tmp_path / "c.sqlite")
    _modules(tmp_path, "scan", str(photos), "--catalog", catalog, "--json", "--quiet")
    modules = _modules(tmp_path, "embed", "--backend", "onnx", "--model-dir", str(onnx_model_dir),
                       "--catalog", catalog, "--json", "--quiet")
    assert "onnxruntime" in modules
    assert modules & _HEAVY == set()


def test_the_scan_pool_starts_before_the_options_are_parsed(tmp_path, onnx_model_dir):
    """The forkserver's start (an interpreter importing the scan's modules) overlaps the command's own start:
    it runs before Typer parses the command's options when the pool cannot fork (a model in the process);
    a scan that forks its workers, or a command that makes no pool, starts none."""
    photos = _photos(tmp_path / "photos")
    scanned = _run(tmp_path, "scan", str(photos), "--catalog", str(tmp_path / "c.sqlite"), "--json", "--quiet",
                   "--embed", "onnx", "--model-dir", str(onnx_model_dir))
    assert scanned["forkserver"] is True
    forked = _run(tmp_path, "scan", str(photos), "--catalog", str(tmp_path / "d.sqlite"), "--json", "--quiet")
    assert forked["forkserver"] is False
    assert _run(tmp_path, "scan", "--help")["forkserver"] is False
    assert _run(tmp_path, "embed", "--help")["forkserver"] is False
