"""Every ```python block of README.md and docs/**/*.md runs (examples cannot rot).

The blocks of one file run in order in one namespace (a later block may use an
earlier one's names), in a fresh temporary working directory, in this process
(the test JAX settings of conftest.py apply). A block that cannot run here
(e.g. it needs a user's own files) is skipped only when the line right above
its fence is ``<!-- not-run: REASON -->``; API listings that are not code use
a ``text`` fence instead.
"""
import glob
import os
import re

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FENCE = re.compile(r"^```python[ \t]*\n(.*?)^```[ \t]*$", re.M | re.S)
_NOT_RUN = re.compile(r"<!--\s*not-run:\s*(.+?)\s*-->\s*$")


def _documents() -> list[str]:
  docs = sorted(glob.glob(os.path.join(ROOT, "docs", "**", "*.md"), recursive=True))
  return [os.path.join(ROOT, "README.md")] + docs


def python_blocks(text: str) -> list[tuple[int, str, str | None]]:
  """``(line, code, skip_reason)`` of every ```python block of a Markdown text."""
  out = []
  for m in _FENCE.finditer(text):
    line = text.count("\n", 0, m.start()) + 1
    before = text[:m.start()].rstrip("\n").rsplit("\n", 1)[-1]
    skip = _NOT_RUN.search(before)
    out.append((line, m.group(1), skip.group(1) if skip else None))
  return out


def test_block_extraction():
  text = ("x\n```python\na = 1\n```\n<!-- not-run: needs your data -->\n"
          "```python\nload('mine')\n```\n```text\nnot code\n```\n")
  blocks = python_blocks(text)
  assert [(b[1], b[2]) for b in blocks] == [("a = 1\n", None),
                                           ("load('mine')\n", "needs your data")]
  assert blocks[0][0] == 2


def test_readme_has_the_library_example():
  with open(os.path.join(ROOT, "README.md"), encoding="utf-8") as f:
    blocks = python_blocks(f.read())
  code = "\n".join(b[1] for b in blocks)
  # The example shows where T comes from: the target net's scoring set.
  assert "build_scoring_set(" in code and "cmi_knn_many(" in code


@pytest.mark.parametrize(
    "path", [p for p in _documents()
             if python_blocks(open(p, encoding="utf-8").read())],
    ids=lambda p: os.path.relpath(p, ROOT))
def test_markdown_python_blocks_run(path, tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  with open(path, encoding="utf-8") as f:
    blocks = python_blocks(f.read())
  namespace = {"__name__": "__doc_example__"}
  for line, code, skip in blocks:
    if skip:
      continue
    name = f"{os.path.relpath(path, ROOT)}:{line}"
    exec(compile(code, name, "exec"), namespace)  # pylint: disable=exec-used
