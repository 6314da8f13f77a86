"""``benchmarks/chaos.py``: 20 randomized rounds of apply, undo and scan with random SIGKILLs, edits during
apply, concurrent scan and apply, hard links, temporary-looking and 251-byte names, Live Photo pairs and
sidecars, roots reached by a symlink and (as root) a bind mount, the trash on the same filesystem, inside the
library and (as root) on a tmpfs: nothing is lost, companions travel with their photo, and the final undo
restores all."""

from __future__ import annotations

import json
import subprocess
import sys

from helpers import REPO, cli_env


def test_twenty_chaos_rounds_lose_nothing():
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / "chaos.py"), "--rounds", "20", "--seed", "7"],
                          env=cli_env(), cwd=REPO, capture_output=True, text=True, timeout=900)
    result = json.loads(done.stdout)
    assert result["problems"] == [], done.stderr
    assert done.returncode == 0 and result["nothing_lost"] and result["rounds"] == 20
    assert result["kills"] > 0 and result["operations"] > 40
    assert result["roots"].get("symlink", 0) > 0 and result["companions"] > 0
