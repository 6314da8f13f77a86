"""cli_params: every parameter of every command coerces a value as Typer's own (pydantic) coercion does,
and a command that parses plain options does not import pydantic."""

from __future__ import annotations

import subprocess
import sys

import pytest
import typer
from helpers import REPO, cli_env, invoke, run_cli
from typer._click import Context
from typer._click.exceptions import BadParameter
from typer._coercion import build_runtime_param

from photodedup.cli import app
from photodedup.cli_params import PlainParam, fast_coercion

#: Words a user may type, plain and not: each parameter must give what Typer gives, or Typer's own error.
_WORDS = ["0", "7", "-3", "007", "+4", "1_000", " 5", "5 ", "1e3", "2.5", "-0.25", ".5", "5.", "nan", "inf",
          "12345678901234567890", "abc", "", "-", "true", "no", "/", "/tmp", ".", "no/such/dir", "a\0b",
          "héllo", "--json"]


def _parameters():
    group = typer.main.get_command(app)
    ctx = Context(group)
    found = [(None, param) for param in group.get_params(ctx)]
    for _, param in found:  # what the group's parse_args does
        fast_coercion(param)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        found += [(name, param) for param in command.get_params(Context(command, parent=ctx))]
    return ctx, found


def _outcome(runtime, value, param, ctx):
    try:
        result = runtime.coerce(value, param=param, ctx=ctx)
    except BadParameter as error:
        return "error", error.format_message()
    return type(result), repr(result)  # repr: nan is not nan


def test_every_parameter_coerces_as_typer_does():
    ctx, parameters = _parameters()
    plain = 0
    for command, param in parameters:
        fast = param.get_runtime_param()
        plain += isinstance(fast, PlainParam)
        typer_own = build_runtime_param(param.type_descriptor)
        values = [param.default, None] + (
            [tuple(_WORDS), (), ("1", "x")] if param.multiple or param.nargs == -1 else _WORDS)
        for value in values:
            assert _outcome(fast, value, param, ctx) == _outcome(typer_own, value, param, ctx), (command, param.name,
                                                                                                  value)
    assert plain == len(parameters)  # every parameter of this CLI is plain: none builds a pydantic adapter


def test_a_value_typer_refuses_is_refused_with_typer_words(tmp_path):
    # a usage error (Click answers before the command runs): in process
    result = invoke("scan", str(tmp_path), "--workers", "two", "--catalog", str(tmp_path / "c.sqlite"))
    assert result.exit_code == 2
    assert "Invalid value for '--workers': Input should be a valid integer, unable to parse string as an " \
           "integer" in result.stderr


@pytest.mark.parametrize("args", [["scan", "--workers", "1"], ["group"]])
def test_a_command_with_plain_options_does_not_import_pydantic(tmp_path, args):
    (tmp_path / "photos").mkdir()
    argv = [args[0], *([str(tmp_path / "photos")] if args[0] == "scan" else []), *args[1:],
            "--catalog", str(tmp_path / "c.sqlite"), "--json", "--quiet"]
    if args[0] == "group":
        run_cli("scan", str(tmp_path / "photos"), "--catalog", str(tmp_path / "c.sqlite"), "--quiet")
    code = ("import runpy, sys\nsys.argv = ['photodedup', *sys.argv[1:]]\n"
            "try:\n    runpy.run_module('photodedup', run_name='__main__')\nexcept SystemExit as exit:\n"
            "    assert exit.code in (0, None), exit.code\n"
            "print('pydantic' in sys.modules, file=sys.stderr)\n")
    result = subprocess.run([sys.executable, "-c", code, *argv], env=cli_env(), cwd=REPO, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[-1] == "False"
