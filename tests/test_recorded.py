"""The recorded results ship inside the package and are read through one function."""
import json
import tomllib
from pathlib import Path

import pytest

import rftlab
from rftlab import claims as C
from rftlab.errors import MissingFileError

ROOT = Path(__file__).resolve().parents[1]


def test_every_recorded_result_loads_from_the_package_folder():
    assert rftlab.recorded_path("claims").parent == Path(rftlab.__file__).resolve().parent / "results"
    claims = rftlab.recorded("claims")
    assert claims["generated_by"].startswith("rftlab claims") and claims["rows"]
    assert {r["verdict"] for r in claims["rows"]} <= {"reproduces", "opposite", "inconclusive"}
    assert [r["key"] for r in rftlab.recorded("phenomena")["rows"]][:2] == ["F1", "F2"]
    for task in ("shift", "spurious"):
        rows = rftlab.recorded(f"compare_{task}")
        assert rows and all("method" in r and "id_acc" in r for r in rows)


def test_an_unknown_name_lists_the_recorded_ones():
    with pytest.raises(MissingFileError, match=r"no recorded result 'clams'.*claims.*compare_shift"):
        rftlab.recorded("clams")


def test_the_results_are_package_data_and_no_notebook_reads_the_checkout_layout():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["package-data"]["rftlab"]
    assert "results/*.json" in data
    sources = [*(ROOT / "notebooks").glob("*.py"), *(ROOT / "tutorials" / "solutions").glob("*.py")]
    assert sources
    for src in sources:
        text = src.read_text()
        assert "parents[" not in text and '"docs"' not in text, f"{src.name} reads the repository's layout"


def test_the_claims_report_can_put_its_json_apart_from_its_markdown(tmp_path, monkeypatch):
    monkeypatch.setattr(C, "TUNED_FILE", tmp_path / "tuned.json")
    result = {"generated_by": "rftlab claims", "rule": C.RULE, "quick": True, "budget": None, "select": "val_acc",
              "protocols": C.PROTOCOLS, "tuned": {}, "seconds": 1, "rows": []}
    paths = C.write_report(result, tmp_path / "md", tmp_path / "js")
    assert (tmp_path / "md" / "claims.md").is_file() and "claims.json" not in {p.name for p in (tmp_path / "md").iterdir()}
    assert json.loads((tmp_path / "js" / "claims.json").read_text())["rule"] == C.RULE
    assert paths[0] == tmp_path / "js" / "claims.json"
