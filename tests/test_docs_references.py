"""Every file path and dotted symbol that README, docs and docstrings cite exists.

Docs rot silently when a module moves; this test makes a renamed file or a
removed function fail CI where it is cited. It also keeps the project
self-contained: nothing may cite working notes that ship outside the repository.
"""
from __future__ import annotations

import importlib
import pathlib
import re

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
_TOP = ("transferjax", "experiments", "benchmarks", "tests", "docs", "notebooks",
        "scripts", "results", "configs")
# A repository path: a top-level folder, then path characters. Placeholders
# (<x>, *, {x}, NAME) are skipped below.
_PATH = re.compile(r"(?<![\w./-])((?:%s)/[\w./<>*{},-]*[\w/}>*])" % "|".join(_TOP))
_DOTTED = re.compile(r"(?<![\w.])((?:transferjax|experiments|benchmarks)(?:\.[A-Za-z_]\w*)+)")
_FORBIDDEN = re.compile(r"\.\./shared|shared/research|research/[\w-]+\.md|feasibility\.md")


def _documents() -> list[pathlib.Path]:
  files = [ROOT / "README.md", ROOT / "BUILD_NOTES.md"]
  files += sorted((ROOT / "docs").rglob("*.md"))
  for top in ("transferjax", "experiments", "benchmarks", "scripts"):
    files += sorted((ROOT / top).rglob("*.py"))
  files += sorted((ROOT / "notebooks").glob("*.ipynb"))
  return [f for f in files if f.exists()]


def _resolves_by_source(parts: list[str]) -> bool:
  """Entry-point modules register absl flags on import, so they are read, not imported."""
  for cut in range(len(parts), 0, -1):
    base = ROOT.joinpath(*parts[:cut])
    source = base.with_suffix(".py")
    if base.is_dir() and cut == len(parts):
      return True
    if source.exists():
      text = source.read_text(encoding="utf-8")
      return all(re.search(r"^\s*(def|class)\s+%s\b|^%s\s*[:=]|^from .* import .*\b%s\b" % (a, a, a), text, re.M)
                 for a in parts[cut:])
  return False


def _resolves(dotted: str) -> bool:
  parts = dotted.split(".")
  if parts[0] != "transferjax":
    return _resolves_by_source(parts)
  for cut in range(len(parts), 0, -1):
    module_name = ".".join(parts[:cut])
    try:
      obj = importlib.import_module(module_name)
    except ImportError:
      continue
    for attr in parts[cut:]:
      if not hasattr(obj, attr):
        return False
      obj = getattr(obj, attr)
    return True
  return False


def _is_placeholder(token: str) -> bool:
  return any(c in token for c in "<>*{}") or re.search(r"/[A-Z]+(/|$)", token) is not None


@pytest.mark.parametrize("path", _documents(), ids=lambda p: str(p.relative_to(ROOT)))
def test_cited_paths_and_symbols_exist(path):
  text = path.read_text(encoding="utf-8")
  missing = []
  for token in set(_PATH.findall(text)):
    token = token.rstrip("./,")
    if _is_placeholder(token) or token.startswith(("results/", "runs/")) and "." not in token:
      continue
    if not (ROOT / token).exists():
      missing.append(token)
  for token in set(_DOTTED.findall(text)):
    if token.endswith((".py", ".md", ".json", ".csv", ".png", ".ipynb")):
      continue
    if not _resolves(token):
      missing.append(token)
  assert not missing, f"{path.relative_to(ROOT)} cites what does not exist: {sorted(missing)}"


def test_no_citation_of_working_notes_outside_the_repository():
  offenders = [str(p.relative_to(ROOT)) for p in _documents()
               if p.name != "test_docs_references.py"
               and _FORBIDDEN.search(p.read_text(encoding="utf-8"))]
  assert not offenders, f"cite docs/ instead of external working notes: {offenders}"
