"""The examples run as written (the Python API one end to end; the Triton one is covered by test_triton)."""

import subprocess
import sys

import pytest
from helpers import REPO, cli_env


@pytest.mark.slow
def test_python_api_example(tiny_library, tmp_path, random_export):
    from conftest import home_with_export

    home = home_with_export(tmp_path / "home", random_export("int8"))  # as after its first export_onnx
    env = cli_env({"PHOTODEDUP_HOME": str(home)})
    result = subprocess.run([sys.executable, str(REPO / "examples" / "python_api.py"), tiny_library["root"],
                             "--catalog", str(tmp_path / "c.sqlite")], capture_output=True, text=True, env=env,
                            timeout=600)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert sum(line.startswith("group ") for line in lines) == int(lines[-1].split()[0]) >= 1
    assert f"new {tiny_library['files']}," in result.stdout
