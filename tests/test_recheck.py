"""benchmarks/recheck.py: every check is quoted once in docs/BENCHMARKS.md, and a stale quote is found and
rewritten in place (the reruns themselves take minutes: the script is run by hand, not here)."""

from __future__ import annotations

import importlib.util
import sys

from helpers import REPO


def _recheck():
    spec = importlib.util.spec_from_file_location("recheck", REPO / "benchmarks" / "recheck.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["recheck"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_every_check_is_quoted_in_the_benchmarks_document_and_every_quote_has_a_check():
    recheck = _recheck()
    quoted = recheck.quotes(recheck.DOC.read_text())
    assert set(quoted) == set(recheck.CHECKS)
    assert all(body.strip() for body in quoted.values())  # written by --write, never left empty


def test_a_changed_output_replaces_only_its_own_quote():
    recheck = _recheck()
    text = ("intro\n<!-- recheck: a -->\n```\nprecision 0.99\n```\n<!-- /recheck -->\nmiddle\n"
            "<!-- recheck: b -->\n```\nrecall 0.50\n```\n<!-- /recheck -->\nend\n")
    assert recheck.quotes(text) == {"a": "precision 0.99\n", "b": "recall 0.50\n"}
    new = recheck.replace(text, "b", "recall 0.75\n")
    assert recheck.quotes(new) == {"a": "precision 0.99\n", "b": "recall 0.75\n"}
    assert new.replace("0.75", "0.50") == text
