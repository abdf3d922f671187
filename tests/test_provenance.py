"""Provenance records: commit, versions and devices, deterministic."""
import dataclasses
import json
import subprocess

from transferjax import provenance as prov


def test_provenance_names_commit_versions_devices_and_config():
  @dataclasses.dataclass
  class Cfg:
    seed: int = 3
  record = prov.provenance(Cfg())
  assert record["config"] == {"seed": 3}
  for pkg in ("jax", "jaxlib", "flax", "optax"):
    assert record["versions"][pkg] not in ("", None)
  assert record["devices"]["backend"] == "cpu" and record["devices"]["count"] >= 1
  head = subprocess.run(["git", "-C", prov._REPO, "rev-parse", "HEAD"],
                        capture_output=True, text=True).stdout.strip()
  assert record["commit"] == "unknown" or record["commit"].split("+")[0] == head
  json.dumps(record)  # JSON-ready as is


def test_provenance_is_deterministic_and_unknown_outside_git(monkeypatch, tmp_path):
  assert prov.provenance({"a": 1}) == prov.provenance({"a": 1})
  prov.git_commit.cache_clear()
  monkeypatch.setattr(prov, "_REPO", str(tmp_path))
  try:
    assert prov.git_commit() == "unknown"
  finally:
    prov.git_commit.cache_clear()
