"""Rerun the cheap benchmarks that docs/BENCHMARKS.md quotes, and say what changed.

A section of docs/BENCHMARKS.md quotes a check's output verbatim between two markers::

    <!-- recheck: NAME -->
    ```
    (the output)
    ```
    <!-- /recheck -->

This script reruns each check (a few commands in a fresh folder: make a library, scan it, score it) and
compares what they print now with the quote. Only numbers that do not depend on the machine are quoted
(precision, recall, keeper accuracy: seeded data, no times), so any difference is a change of behaviour.

    PYTHONPATH=. python benchmarks/recheck.py                 # every check; exit 1 if a quote is stale
    PYTHONPATH=. python benchmarks/recheck.py --only grouping-quality
    PYTHONPATH=. python benchmarks/recheck.py --write         # put today's outputs into the document

To add a check: an entry in ``CHECKS`` and the two markers in the section that quotes it.
"""

from __future__ import annotations

import argparse
import difflib
import os
import re
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "BENCHMARKS.md"
BLOCK = re.compile(r"<!-- recheck: (?P<name>[\w-]+) -->\n```\n(?P<body>.*?)```\n<!-- /recheck -->", re.S)


@dataclass(frozen=True)
class Check:
    """Commands run in order in one fresh folder; the stdout of those marked quoted is the quote."""

    steps: tuple[tuple[bool, tuple[str, ...]], ...]  # (quoted, photodedup arguments)
    drop: str = r"^Plot: "  # stdout lines that name a file written, not a result


CHECKS: dict[str, Check] = {
    # docs/BENCHMARKS.md "Grouping at scale and grouping quality": the sample library's own truth.
    "grouping-quality": Check((
        (False, ("sample-library", "lib100", "--originals", "100", "--megapixels", "1", "--seed", "1")),
        (False, ("scan", "lib100", "--catalog", "c100.sqlite")),
        (True, ("eval", "--catalog", "c100.sqlite", "--truth", "lib100/truth.json")),
        (True, ("eval", "--catalog", "c100.sqlite", "--truth", "lib100/truth.json", "--sweep", "hash")),
    )),
}


def quotes(text: str) -> dict[str, str]:
    """Each check's quoted output in the document, by name."""
    found: dict[str, str] = {}
    for match in BLOCK.finditer(text):
        if match["name"] in found:
            raise SystemExit(f"{DOC}: the check {match['name']!r} is quoted twice")
        found[match["name"]] = match["body"]
    return found


def replace(text: str, name: str, body: str) -> str:
    """``text`` with the quote of ``name`` replaced by ``body``."""
    def swap(match: re.Match) -> str:
        if match["name"] != name:
            return match[0]
        return f"<!-- recheck: {name} -->\n```\n{body}```\n<!-- /recheck -->"
    return BLOCK.sub(swap, text)


def run(check: Check, folder: Path) -> str:
    """What the check's quoted steps print now (stdout; people-facing text goes to stderr)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))}
    out = []
    for quoted, args in check.steps:
        done = subprocess.run([sys.executable, "-m", "photodedup", *args], cwd=folder, env=env,
                              capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"`photodedup {' '.join(args)}` exited {done.returncode}:\n{done.stderr[-2000:]}")
        if quoted:
            out.extend(line for line in done.stdout.splitlines(keepends=True) if not re.match(check.drop, line))
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", nargs="+", choices=sorted(CHECKS), help="these checks only")
    parser.add_argument("--write", action="store_true", help="write today's outputs into docs/BENCHMARKS.md")
    args = parser.parse_args(argv)
    text = DOC.read_text()
    quoted = quotes(text)
    stale = 0
    for name in args.only or sorted(CHECKS):
        if name not in quoted:
            raise SystemExit(f"{DOC} does not quote the check {name!r} (add its markers)")
        with tempfile.TemporaryDirectory(prefix=f"recheck-{name}-") as folder:
            now = run(CHECKS[name], Path(folder))
        if now == quoted[name]:
            print(f"{name}: as quoted")
            continue
        stale += 1
        print(f"{name}: CHANGED")
        sys.stdout.writelines(difflib.unified_diff(quoted[name].splitlines(keepends=True),
                                                   now.splitlines(keepends=True), "quoted", "now"))
        if args.write:
            text = replace(text, name, now)
    if args.write and stale:
        DOC.write_text(text)
        print(f"wrote {stale} new output(s) into {DOC.relative_to(REPO)}")
        return 0
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
