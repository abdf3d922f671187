"""The "rank your own models" notebook runs end to end (smoke size).

Executes ``notebooks/your_own_models.ipynb`` like tests/test_notebook.py runs the
quickstart: a fresh ``python3`` kernel, ``TRANSFERJAX_SMOKE=1`` (4 zoo
sources, 1 epoch, 80 target images, three methods), a temp workdir.
"""
import json
import os

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from testlib import ROOT, execute_notebook_smoke, notebook_text  # noqa: E402

NOTEBOOK = os.path.join(ROOT, "notebooks", "your_own_models.ipynb")


def test_notebook_is_clean_and_uses_the_library():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code")
  source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
  for call in ("rank_sources(", "write_feature_files(", "parse_sources(\"flax:",
               "parse_sources(f\"files:", "FlaxModel(", "class TinyNet(nn.Module)"):
    assert call in source, call


def test_notebook_runs_in_smoke_mode(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  execute_notebook_smoke(nb, tmp_path)
  code = [c for c in nb.cells if c.cell_type == "code"]
  text = "\n".join(notebook_text(c) for c in code)
  assert "smoke=True" in text
  assert "Ranking of 5 sources for folder:" in text
  assert "identical rankings: True" in text
  workdir, = [p for p in tmp_path.iterdir() if p.name.startswith("transferjax_own_models_")]
  ranking = json.loads((workdir / "rank" / "ranking.json").read_text())
  assert {r["source"] for r in ranking["ranking"]} == (
      {"my_tinynet"} | {f"zoo_{i}" for i in range(4)})
  assert sum("image/png" in o.get("data", {}) for c in code for o in c.get("outputs", [])) == 1
