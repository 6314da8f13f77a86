"""One CLI (issue 13): one default precision, precision in the embedding's identity, one exit code
per condition, one meaning per option name."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from helpers import invoke, run_cli

from photodedup.catalog import Catalog


def test_int8_and_fp32_vectors_never_share_an_id(tiny_library, tmp_path, onnx_model_dir, random_export):
    int8 = random_export("int8")
    db = tmp_path / "c.sqlite"
    assert run_cli("scan", tiny_library["root"], "--catalog", db, "-q").returncode == 0
    first = run_cli("embed", "--model-dir", onnx_model_dir, "--catalog", db, "--json", "-q")
    second = run_cli("embed", "--model-dir", int8, "--catalog", db, "--json", "-q")
    assert first.returncode == 0 and second.returncode == 0, first.stderr + second.stderr
    fp32_run, int8_run = json.loads(first.stdout), json.loads(second.stdout)
    assert (fp32_run["model"], int8_run["model"]) == ("ViT-B-32/random-seed0", "ViT-B-32/random-seed0@int8")
    assert int8_run["embedded"] == fp32_run["embedded"] > 0 and int8_run["skipped"] == 0  # not mixed in
    with Catalog(db) as cat:
        assert {(m["id"], m["precision"], m["embedded"]) for m in cat.models()} == {
            ("ViT-B-32/random-seed0", "fp32", fp32_run["embedded"]),
            ("ViT-B-32/random-seed0@int8", "int8", int8_run["embedded"])}
    grouped = run_cli("group", "--catalog", db, "--allow-random", "--model", "ViT-B-32/random-seed0@int8", "--json")
    assert grouped.returncode == 0 and json.loads(grouped.stdout)["model"] == "ViT-B-32/random-seed0@int8"


def test_no_catalog_is_exit_4_everywhere(tmp_path):
    missing = tmp_path / "none.sqlite"
    for command in (["group"], ["apply", "--dry-run"], ["review"], ["undo", "--dry-run", "--trash-dir", tmp_path]):
        result = run_cli(*command, "--catalog", missing, timeout=60)
        assert (command[0], result.returncode) == (command[0], 4), result.stderr
        assert result.stderr.startswith(f"Error: no catalog at {missing}"), result.stderr


def help_text(*command: str) -> str:
    """A command's ``--help``, in this process (Typer's CliRunner: the same text, no interpreter start)."""
    result = invoke(*command, "--help", env={"COLUMNS": "100"})
    assert result.exit_code == 0, result.output
    return result.stdout


COMMANDS = ("scan", "sample-library", "embed", "group", "run", "eval", "review", "apply", "undo", "export-onnx",
            "serve", "triton-config", "bench", "export-parquet")
#: Commands whose example ends by starting a server, and the address that answers once it is up.
SERVERS = {"serve": "/readyz", "review": "/healthz"}


def test_help_is_readable_and_each_option_name_means_one_thing():
    for command in COMMANDS:
        text = help_text(command)
        assert "<list[" not in text, command
        joined = " ".join(text.split())  # a default the help states itself is not printed again after it
        assert not re.search(r"\[default:[^\]]*\]\.? \[default:", joined), (command, joined)
    assert "--triton-model" in help_text("embed") and "--model " not in help_text("embed")
    assert "--plot-dir" in help_text("bench") and "--plot " not in help_text("bench")
    assert "fp32" in help_text("export-onnx").split("--input", 1)[1][:200]


def test_the_first_progress_rate_is_not_absurd():
    import io

    from rich.console import Console

    from photodedup.progress import make_progress

    out = io.StringIO()
    console = Console(file=out, force_terminal=True, width=120)
    with make_progress(enabled=True, label="embed", console=console) as update:
        update(0, 1000)
        update(400, 1000)  # 400 done at once (resumed from stored crops): no rate yet
    assert "img/s" not in out.getvalue()


def examples() -> dict[str, list[list[str]]]:
    """Each command's example, as its steps' argument lists."""
    import shlex

    out = {}
    for command in COMMANDS:
        text = " ".join(help_text(command).split())
        example = text.split("Example: ", 1)[1].split(" Arguments:")[0].split(" Options:")[0]
        out[command] = [shlex.split(step) for step in example.split("&&")]
        assert all(step[0] == "photodedup" for step in out[command]), example
    return out


def clone_home(home: Path, to: Path) -> Path:
    """A copy of ``home`` (a PHOTODEDUP_HOME: the catalog copied, the exports under models/ hard-linked as
    ``home_with_export`` made them)."""
    import os
    import shutil

    def link_models_copy_rest(src, dst):
        if "models" in Path(src).relative_to(home).parts[:1]:
            try:
                return os.link(src, dst)
            except OSError:
                pass
        return shutil.copy2(src, dst)

    return Path(shutil.copytree(home, to, copy_function=link_models_copy_rest))


def listing(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file under ``folder``: its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.slow  # builds sample libraries, embeds, measures, starts servers: as the examples say
def test_every_help_example_runs_on_a_fresh_setup(tmp_path, random_export, server_processes):
    """Each command's example, as written, in a fresh home of its own (``/tmp/`` becomes a folder of this
    test; a server's ``--port`` a free port). Each home holds the default (int8) export already, as after
    its first ``export-onnx``; a server is started, asked whether it is up, and stopped.

    Steps that begin several examples alike (``sample-library ... && scan /tmp/lib``: six examples) run
    once, in the first of them: a later example starts from a copy of the home those steps left (its
    catalog) in the same ``/tmp/`` folder, as if it had run them itself (the same arguments make the
    same files), and runs the rest of its steps."""
    from collections import Counter

    from conftest import home_with_export
    from helpers import cli_command

    fresh = home_with_export(tmp_path / "fresh-home", random_export("int8"))
    exports = sorted(p.name for p in (fresh / "models").iterdir())
    every = examples()
    shared = Counter(tuple(map(tuple, steps[:k])) for steps in every.values() for k in range(1, len(steps)))
    done: dict[tuple, tuple] = {}  # steps that begin several examples -> their /tmp/, the home and files after
    for command, steps in every.items():
        start = max((k for k in range(len(steps)) if tuple(map(tuple, steps[:k])) in done), default=0)
        if start:  # as if it had run those steps itself: their /tmp/ folder, a copy of the home they left
            work, after, files = done[tuple(map(tuple, steps[:start]))]
            now = listing(work)  # what those steps made is still there, unchanged (no example moved it)
            assert {path: now.get(path) for path in files} == files, command
            home = clone_home(after, tmp_path / "homes" / command)
        else:  # a home of its own: an example must not lean on the catalog another example left behind
            work, home = tmp_path / command, clone_home(fresh, tmp_path / "homes" / command)
            work.mkdir()
        env = {"PHOTODEDUP_HOME": str(home), "BROWSER": "true"}  # --open runs `true`, not a browser
        for number, step in enumerate(steps[start:], start + 1):
            args = [arg.replace("/tmp/", f"{work}/") for arg in step[1:]]
            if command in SERVERS and number == len(steps):
                port = server_processes.free_port()
                args[args.index("--port") + 1] = str(port)
                server = server_processes.start(cli_command(*args), f"http://127.0.0.1:{port}{SERVERS[command]}",
                                                env=env, timeout=300)
                assert server.stop() in (0, -15), server.output()  # uvicorn re-raises the SIGTERM it handled
                continue
            result = run_cli(*args, env=env, cwd=work, timeout=900)
            assert result.returncode == 0, f"{command}: {' '.join(step)}\n{result.stderr}"
            so_far = tuple(map(tuple, steps[:number]))
            if shared[so_far] > 1 and so_far not in done:  # another example begins with these steps too
                done[so_far] = (work, clone_home(home, tmp_path / "after" / str(len(done))), listing(work))
        assert sorted(p.name for p in (home / "models").iterdir()) == exports, command  # export-onnx reused it


def test_the_cli_shows_and_passes_the_library_s_defaults():
    # group, eval and run once retyped 12 / 0.99 / complete and the keeper rules; bench said fp32 against the
    # one default precision: the CLI's defaults are the library's
    import typer.main

    from photodedup.backends.base import default_precision
    from photodedup.cli import app
    from photodedup.group import GroupSettings
    from photodedup.keeper import expand_rules

    library = GroupSettings()
    commands = typer.main.get_command(app).commands
    for name in ("group", "eval", "run"):
        params = {p.name: p for p in commands[name].params}
        assert (name, params["hash_threshold"].default, params["cosine"].default, params["method"].default,
                expand_rules(params["keeper_rules"].default)) == (
            name, library.hash_threshold, library.cosine, library.method, library.keeper_rules)
        assert f"[default: {library.hash_threshold}," in params["hash_threshold"].help
        assert f"[default: {library.cosine}," in params["cosine"].help
        assert all(rule in params["keeper_rules"].help for rule in library.keeper_rules)
    for name in ("bench", "run"):  # None: the library's default_precision() decides
        assert (name, {p.name: p for p in commands[name].params}["precision"].default) == (name, None)
    assert default_precision() == "int8"
