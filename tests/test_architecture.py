"""The import rules of docs/ARCHITECTURE.md, checked on the source: no cycles, imports flow
CLI -> commands -> domain -> storage/backends, and the serving path needs no torch."""

from __future__ import annotations

import ast
import functools
import re
import subprocess
import sys
from pathlib import Path

from helpers import REPO, cli_env

PACKAGE = REPO / "photodedup"


@functools.cache
def parsed(path: Path) -> tuple[str, ast.Module]:
    """A source file's text and tree, parsed once per run (the tests only read them)."""
    text = path.read_text()
    return text, ast.parse(text, str(path))


def modules() -> dict[str, ast.Module]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(REPO).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = (path, parsed(path)[1])
    return found


def import_graph() -> dict[str, set[str]]:
    """Module -> the photodedup modules it imports at run time (anywhere in it, not under TYPE_CHECKING)."""
    return {name: set(edges) for name, edges in _import_graph().items()}  # a copy: callers may change it


@functools.cache
def _import_graph() -> dict[str, set[str]]:
    found = modules()
    graph: dict[str, set[str]] = {}
    for name, (path, tree) in found.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        typing_only = {id(node) for block in ast.walk(tree) if isinstance(block, ast.If)
                       and ast.unparse(block.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")
                       for node in ast.walk(block)}
        edges: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in typing_only:
                continue
            if isinstance(node, ast.Import):
                edges |= {alias.name for alias in node.names if alias.name in found}
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
                for alias in node.names:
                    target = f"{base}.{alias.name}"
                    edges.add(target if target in found else base)
        graph[name] = {edge for edge in edges if edge in found and edge != name}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_import_cycles():
    assert cycles(import_graph()) == []


def test_the_cycle_check_can_fail():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert cycles(graph) == [["a", "b", "c"]]


def test_imports_flow_from_the_cli_down():
    graph = import_graph()
    importers = {name for name, edges in graph.items() if "photodedup.cli" in edges}
    assert importers <= {"photodedup.__main__"}
    stages = {"photodedup.scan", "photodedup.embed", "photodedup.group", "photodedup.run", "photodedup.review",
              "photodedup.apply", "photodedup.eval", "photodedup.report", "photodedup.catalog", "photodedup.bench"}
    for name, edges in graph.items():
        low_level = name.startswith(("photodedup.backends", "photodedup.service", "photodedup.triton."))
        if low_level:  # backends, the HTTP service and triton/: arrays in, arrays out; no catalog, no stage
            wrong = {edge for edge in edges if edge.startswith(tuple(stages))}
            assert not wrong, f"{name} imports {sorted(wrong)}"
    exports = graph["photodedup.exports"]
    assert not exports & {"photodedup.export_onnx", "photodedup.backends.onnx"}


#: One module (or package) per CLI verb; docs/ARCHITECTURE.md's "Commands" line names the same.
COMMANDS = ("scan", "export_onnx", "embed", "group", "report", "review", "apply", "run", "serve", "triton_config",
            "bench", "eval", "sample_library", "parquet")
#: The modules that may compose commands: the CLI calls them, `run` chains them.
COMPOSERS = ("photodedup.cli", "photodedup.__main__", "photodedup.run")
#: Command -> command imports not yet moved out (each must still exist: remove it here when it is moved).
#: The review page's apply/undo buttons call the apply command; bench makes the exports it times with the
#: export-onnx command.
PENDING = {("photodedup.review.routes", "photodedup.apply"), ("photodedup.bench.pipeline", "photodedup.export_onnx")}


def command_of(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[1] in COMMANDS else None


def command_imports(graph: dict[str, set[str]]) -> set[tuple[str, str]]:
    """(importer, imported) where a module that is not a composer imports another command's module."""
    return {(name, edge) for name, edges in graph.items() if name not in COMPOSERS for edge in edges
            if command_of(edge) is not None and command_of(edge) != command_of(name)}


def test_only_run_composes_commands():
    """Domain and storage never import a command, and a command never imports another (only `run` does)."""
    wrong = command_imports(import_graph()) - PENDING
    assert not wrong, "\n".join(f"{a} imports the command {b}" for a, b in sorted(wrong))


def test_pending_command_imports_still_exist():
    assert PENDING <= command_imports(import_graph())


def test_the_command_rule_can_fail():
    graph = {"photodedup.group": {"photodedup.scan", "photodedup.cluster"}, "photodedup.keeper": {"photodedup.apply"},
             "photodedup.review.routes": {"photodedup.review.files"}, "photodedup.run": {"photodedup.scan"}}
    assert command_imports(graph) == {("photodedup.group", "photodedup.scan"),
                                      ("photodedup.keeper", "photodedup.apply")}


def test_the_commands_are_those_the_architecture_names():
    text = (REPO / "docs" / "ARCHITECTURE.md").read_text()
    line = next(line for line in text.split("\n- ") if line.startswith("**Commands**"))
    named = {name.removesuffix(".py").removesuffix("/") for name in re.findall(r"`(\w+(?:\.py|/))`", line)}
    assert named == set(COMMANDS)
    for name in COMMANDS:
        assert (PACKAGE / f"{name}.py").exists() or (PACKAGE / name / "__init__.py").exists(), name


def evidence_kinds() -> set[str]:
    from photodedup import cluster

    registry = getattr(cluster, "KINDS", None)
    return {kind.name for kind in registry} if registry else set(cluster.KIND_NAMES)


def keeper_rules() -> set[str]:
    from photodedup import keeper

    return set(keeper.RULES) | set(keeper.ALIASES)


#: Lists that name kinds for another purpose, each checked on its own: ``group --evidence``'s choices are the
#: searches to run (``dihedral`` is a search whose pairs count as perceptual evidence).
OTHER_PURPOSE = {("photodedup/grouping.py", "EVIDENCE = ")}


def second_lists(names: set[str], home: str, files=None) -> list[str]:
    """Tuple, list, set and dict literals that hold three or more of ``names``, outside ``home``."""
    from test_formats import _literal_groups

    found = []
    for path in files or sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / home:
            continue
        text, tree = parsed(path)
        lines = text.splitlines()
        for line, strings in _literal_groups(tree):
            named = [s for s in strings if s in names]
            where = path.relative_to(REPO) if path.is_relative_to(REPO) else path
            if any(str(where) == file and lines[line - 1].startswith(start) for file, start in OTHER_PURPOSE):
                continue
            if len(named) >= 3:
                found.append(f"{where}:{line}: {named}")
    return found


def test_one_list_of_evidence_kinds():
    """The evidence registry (``cluster.KINDS``) is the one place that names the evidence kinds."""
    found = second_lists(evidence_kinds(), "cluster.py")
    assert found == [], "evidence kinds listed outside photodedup/cluster.py:\n" + "\n".join(found)


def test_the_evidence_searches_find_registered_kinds():
    from photodedup.grouping import EVIDENCE

    assert set(EVIDENCE) - {"dihedral"} <= evidence_kinds()


def test_one_list_of_keeper_rules():
    """``keeper.RULES`` (and its aliases) is the one place that names the keeper rules."""
    found = second_lists(keeper_rules(), "keeper.py")
    assert found == [], "keeper rules listed outside photodedup/keeper.py:\n" + "\n".join(found)


def test_every_keeper_rule_has_its_place_in_the_order():
    from photodedup import keeper

    assert set(keeper.RULES) == set(keeper.RULE_BY_NAME)
    assert {rule for rules in keeper.ALIASES.values() for rule in rules} <= set(keeper.RULES)


def test_the_second_list_guards_can_fail(tmp_path):
    source = tmp_path / "new.py"
    source.write_text('KINDS = ("exact", "perceptual", "semantic")\nRULES = ["resolution", "exif", "size"]\n'
                      'FINE = ("exact", "perceptual")\n')
    assert second_lists(evidence_kinds(), "cluster.py", [source]) == [
        f"{source}:1: ['exact', 'perceptual', 'semantic']"]
    assert second_lists(keeper_rules(), "keeper.py", [source]) == [f"{source}:2: ['resolution', 'exif', 'size']"]


def test_the_serving_path_imports_no_torch():
    code = ("import sys\n"
            "import photodedup.exports, photodedup.backends.onnx, photodedup.backends.triton, "
            "photodedup.backends.http_service, photodedup.backends.auto, photodedup.service.app, "
            "photodedup.bench.payloads, photodedup.triton_config, photodedup.serve\n"
            "print(sorted(m for m in ('torch', 'open_clip', 'torchvision') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), cwd=REPO,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"
