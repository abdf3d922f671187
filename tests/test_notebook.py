"""The quickstart notebook runs end to end (smoke size) and shows the ranking.

Executes ``notebooks/quickstart.ipynb`` in a fresh ``python3`` kernel with
``TRANSFERJAX_SMOKE=1`` (4 sources, 1 epoch, 1 split x 1 seed, a temp workdir).
The saved outputs in the repository come from the same smoke run
(``python tests/test_notebook.py`` re-executes and saves them). The kernel is a
separate process, so ``conftest.py``'s settings do not reach it:
it runs on one CPU device with full XLA optimizations (measured: disabling them,
as conftest does, doubles this run's CPU time, since fine-tuning and scoring
dominate here, not compiles).
"""
import json
import os
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
from testlib import ROOT, execute_notebook_smoke, notebook_text  # noqa: E402

NOTEBOOK = os.path.join(ROOT, "notebooks", "quickstart.ipynb")


def _images(cell) -> int:
  return sum("image/png" in out.get("data", {}) for out in cell.get("outputs", []))


def test_notebook_is_valid_and_colab_ready():
  nb = nbformat.read(NOTEBOOK, as_version=4)
  nbformat.validate(nb)
  assert nb.metadata["kernelspec"]["name"] == "python3"
  first = nb.cells[[c.cell_type for c in nb.cells].index("code")].source
  # The install cell: a marked REPO_URL, installing only when the import fails.
  assert re.search(r"^REPO_URL = ", first, re.M)
  assert first.index("import transferjax") < first.index("pip")
  assert "except ImportError" in first
  assert "OWNER" in first and "TRANSFERJAX_REPO_URL" in first
  # An "Open in Colab" badge in the first cell.
  assert "colab.research.google.com/github/" in nb.cells[0].source
  # Saved outputs of a smoke run, so the notebook previews on a repository page:
  # every code cell ran, in order, without an error.
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert [c.execution_count for c in code] == list(range(1, len(code) + 1))
  assert all(c.get("outputs") for c in code)
  assert not any(o.get("output_type") == "error" for c in code for o in c.outputs)
  assert "Ranking of 4 sources for mnist:4,9 by cmi_knn" in "".join(
      notebook_text(c) for c in code)
  # The entry points' library calls, not copied logic.
  source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
  for call in ("zoo_lib.run(", "rank_run(", "run_study(", "summary_table("):
    assert call in source


def test_notebook_runs_in_smoke_mode(tmp_path):
  nb = nbformat.read(NOTEBOOK, as_version=4)
  execute_notebook_smoke(nb, tmp_path)

  code = [c for c in nb.cells if c.cell_type == "code"]
  text = "\n".join(notebook_text(c) for c in code)
  assert "smoke=True" in text
  # The ranking table: a header and one row per source (4 in smoke mode), ranks 1..4.
  assert "Ranking of 4 sources for mnist:4,9 by cmi_knn" in text
  ranks = re.findall(r"^\s+(\d)\s+(\d+)\s+scenes\s", text, re.M)
  assert [int(r) for r, _ in ranks] == [1, 2, 3, 4]
  # The evaluation table has a row per method.
  for method in ("cmi_knn", "mi_knn", "source_train_acc", "linear_probe"):
    assert re.search(rf"^{method}\s+-?\d", text, re.M), method
  # Everything went into the temp workdir, and the ranking file agrees with the table.
  workdirs = [p for p in tmp_path.iterdir() if p.name.startswith("transferjax_quickstart_")]
  assert len(workdirs) == 1
  with open(workdirs[0] / "rank" / "ranking.json", encoding="utf-8") as f:
    ranking = json.load(f)["ranking"]
  assert [r["source_id"] for r in ranking] == [int(s) for _, s in ranks]
  # The figures are shown inline, one PNG per file the study wrote.
  pngs = list((workdirs[0] / "study" / "figures").glob("*.png"))
  assert len(pngs) >= 3
  assert sum(_images(c) for c in code) == len(pngs)


if __name__ == "__main__":
  # Re-executes the notebook in smoke mode and saves it with its outputs.
  import tempfile
  book = nbformat.read(NOTEBOOK, as_version=4)
  with tempfile.TemporaryDirectory() as tmp:
    execute_notebook_smoke(book, tmp)
    for cell in book.cells:  # this machine's temp folder is not for readers
      for out in cell.get("outputs", []):
        if "text" in out:
          out["text"] = out["text"].replace(tmp, "$TMPDIR")
        if "text/plain" in out.get("data", {}):
          out["data"]["text/plain"] = out["data"]["text/plain"].replace(tmp, "$TMPDIR")
  nbformat.write(book, NOTEBOOK)
  print(f"saved {NOTEBOOK} with outputs")
