from helpers import invoke, run_cli

from photodedup import __version__


def test_version():
    result = invoke("--version")  # Click answers it before any command; the real entry point: the next test
    assert (result.exit_code, result.stdout.strip()) == (0, f"photodedup {__version__}")


def test_every_command_has_help_with_an_example():
    top = run_cli("--help")  # the real entry point once; each command's help in process
    assert top.returncode == 0
    commands = [line.split()[0] for line in top.stdout.split("Commands:")[1].splitlines() if line.strip()]
    assert "scan" in commands and len(commands) >= 2
    for command in commands:
        result = invoke(command, "--help")
        assert result.exit_code == 0, (command, result.output)
        assert "Example: photodedup" in result.stdout, command


def test_usage_error_is_exit_code_2():
    result = invoke("scan", "--no-such-option")
    assert result.exit_code == 2
    assert "No such option: --no-such-option" in result.stderr


def test_catalog_env_var_is_used(tmp_path):
    env_catalog = tmp_path / "from-env.sqlite"
    (tmp_path / "lib").mkdir()
    result = run_cli("scan", str(tmp_path / "lib"), "--json", env={"PHOTODEDUP_CATALOG": str(env_catalog)})
    assert result.returncode == 0, result.stderr
    assert env_catalog.exists()


def test_debug_shows_the_traceback(tmp_path):
    result = run_cli("--debug", "scan", str(tmp_path / "missing"))
    assert result.returncode == 3
    assert "Traceback" in result.stderr and "BadInputError" in result.stderr
    assert result.stderr.strip().splitlines()[-1] == f"Error: no such file or folder: {tmp_path / 'missing'}"
