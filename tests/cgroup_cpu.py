"""CPU seconds per test, every process a test starts included (forkserver pools, servers, Ray), for finding
what makes the suite slow on a busy machine, where wall times mean nothing (docs/BENCHMARKS.md, "Suite time,
session 7"). Linux, root, cgroup v1 ``cpuacct``:

    PYTHONPATH=tests CGROUP_CPU=/sys/fs/cgroup/cpuacct/suite python -m pytest -p cgroup_cpu -n 2 ... tests
    python tests/cgroup_cpu.py /sys/fs/cgroup/cpuacct/suite [N]    # per file, then the N heaviest tests

Each test runs with its worker moved into a cgroup of its own; what it starts stays there, so a server a
fixture starts counts for the test that started it. Not a test file: nothing imports it unless asked (``-p``).
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import sys

import pytest

ROOT = os.environ.get("CGROUP_CPU", "/sys/fs/cgroup/cpuacct/suite")


def index_path(root: str) -> str:
    """Which test ran in which cgroup: a file outside the cgroup filesystem, which takes no plain files."""
    return os.path.join("/tmp", os.path.basename(root.rstrip("/")) + ".cgroup-cpu.jsonl")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item, nextitem):
    name = hashlib.sha1(item.nodeid.encode()).hexdigest()[:16]
    os.makedirs(os.path.join(ROOT, name), exist_ok=True)
    with open(index_path(ROOT), "a") as index:
        index.write(json.dumps({"id": item.nodeid, "cgroup": name}) + "\n")
    with open(os.path.join(ROOT, name, "cgroup.procs"), "w") as procs:
        procs.write(str(os.getpid()))
    yield


def report(root: str, top: int = 40) -> None:
    seconds = {}
    with open(index_path(root)) as index:
        for line in index:
            row = json.loads(line)
            with open(os.path.join(root, row["cgroup"], "cpuacct.usage")) as usage:
                seconds[row["id"]] = int(usage.read()) / 1e9
    files = collections.Counter()
    for test, cpu in seconds.items():
        files[test.split("::")[0]] += cpu
    print(f"{len(seconds)} tests, {sum(seconds.values()):.1f} CPU s")
    for path, cpu in files.most_common():
        print(f"{cpu:8.1f}  {path}")
    for test, cpu in sorted(seconds.items(), key=lambda kv: -kv[1])[:top]:
        print(f"{cpu:8.1f}  {test}")


if __name__ == "__main__":
    report(sys.argv[1], *map(int, sys.argv[2:3]))
