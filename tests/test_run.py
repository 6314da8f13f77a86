
import pytest
from helpers import run_cli

from photodedup.duplicate_groups import load_groups
from photodedup.group import GroupSettings
from photodedup.run import run


def test_run_without_embedding_scans_groups_and_reports(tiny_library, tmp_path):
    stages = []
    result = run([tiny_library["root"]], catalog=tmp_path / "c.sqlite", report=tmp_path / "r.html", embed=False,
                 stage=stages.append)
    assert [s.split()[0] for s in stages] == ["1/4", "2/4", "3/4", "4/4"]
    assert stages[1] == "2/4 embed skipped (semantic evidence off)"
    assert result.scan["files"] == tiny_library["files"] and result.embed is None
    assert result.grouping.groups and result.report == (tmp_path / "r.html").resolve()
    page = result.report.read_text()
    assert page.count("<section") == len(result.grouping.groups)
    assert [g.id for g in load_groups(tmp_path / "c.sqlite")] == [g.id for g in result.grouping.groups]


@pytest.mark.slow
def test_run_embeds_with_onnx_and_keeps_random_embeddings_out(tiny_library, tmp_path, onnx_model_dir):
    catalog = tmp_path / "c.sqlite"
    first = run([tiny_library["root"]], catalog=catalog, report=tmp_path / "r.html", weights="random",
                model_dir=onnx_model_dir)
    assert first.embed["embedded"] == tiny_library["files"] - 3 and first.embed["backend"] == "onnx"
    assert first.grouping.model is None and "semantic" not in first.grouping.edges
    assert any("come from random weights" in w for w in first.warnings)
    assert "come from random weights" in first.report.read_text()
    second = run([tiny_library["root"]], catalog=catalog, report=tmp_path / "r2.html", weights="random",
                 model_dir=onnx_model_dir, params=GroupSettings(allow_random=True))
    assert second.embed["embedded"] == 0  # resumable: nothing left to embed
    assert second.grouping.model == first.embed["model"] and "semantic" in second.grouping.edges
    assert any(w.startswith("USING RANDOM-WEIGHT EMBEDDINGS") for w in second.warnings)


def test_cli_run(tiny_library, tmp_path):
    done = run_cli("run", tiny_library["root"], "--catalog", str(tmp_path / "c.sqlite"), "--no-embed",
                      "--report", str(tmp_path / "r.html"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == f"Report: {tmp_path / 'r.html'}"
    assert "1/4 scan" in done.stderr and "4/4 report" in done.stderr
    missing = run_cli("run", tiny_library["root"], "--catalog", str(tmp_path / "c2.sqlite"), "--backend", "onnx",
                         "--model-dir", str(tmp_path / "no-export"))
    assert missing.returncode == 7
    assert missing.stderr.splitlines()[-2] == f"Error: no ONNX export in {tmp_path / 'no-export'}"
