"""The speed benchmarks run end to end at tiny sizes and report what they claim.

Timings are not asserted (they live in the benchmarks' JSON, not in tests); the
structure is: one JSON line per variant / part, the sharded and unsharded
variants train the same models to the same loss, the profile's parts exist.
"""
import importlib.util
import json
import os
import subprocess
import sys

import pytest

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(module, *args):
  env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=2")
  out = subprocess.run([sys.executable, "-m", module, *args], cwd=_ROOT, env=env,
                       capture_output=True, text=True, timeout=300, check=False)
  assert out.returncode == 0, out.stderr[-2000:]
  return [json.loads(l) for l in out.stdout.splitlines() if l.startswith("{")]


def test_train_zoo_variants_side_by_side():
  lines = _run("benchmarks.train_zoo", "--num_models=2", "--samples=64",
               "--epochs=1", "--rounds=1", "--steps_per_call=1",
               "--variants=xla_vjp_map,xla_vjp_map_sharded,pool,torch_seq",
               "--seq_max_models=1")
  assert len(lines[0]["devices"]) == 2
  rows = {r["variant"]: r for r in lines if "variant" in r}
  assert set(rows) == {"xla_vjp_map", "xla_vjp_map_sharded", "pool", "torch_seq"}
  torch = rows.pop("torch_seq")  # The PyTorch baseline runs only where torch is.
  if importlib.util.find_spec("torch") is None:
    assert "torch not importable" in torch["skipped"]
  else:
    assert torch["models_run"] == 1 and torch["model_steps_per_s"] > 0
  for r in rows.values():
    assert r["steps_per_model"] == 1 and r["model_steps_per_s"] > 0
    assert r["program_mb"] > 0
  assert rows["xla_vjp_map"]["ratio_to_first"] == 1.0
  # Same models, same data, same step: splitting them over devices changes nothing.
  assert rows["xla_vjp_map_sharded"]["final_loss_mean"] == pytest.approx(
      rows["xla_vjp_map"]["final_loss_mean"], rel=1e-5)
  assert rows["pool"]["final_loss_mean"] == pytest.approx(
      rows["xla_vjp_map"]["final_loss_mean"], rel=1e-4)


def test_zoo_profile_reports_every_part():
  lines = _run("benchmarks.zoo_profile", "--num_models=2", "--repeats=1",
               "--batch_size=8", "--model_loop=map", "--conv_impl=xla_vjp")
  parts = {r["part"] for r in lines if "part" in r}
  assert {"forward", "forward_backward", "train_step", "conv1_fwd_bwd",
          "conv2_fwd_bwd", "adam", "sample_batch"} <= parts
  summary = lines[-1]
  assert summary["train_step_ms"] > 0 and 0 < summary["summary"]["conv2_fwd_bwd"]


def test_pallas_variants_train_the_same_models_as_im2col():
  """The GPU candidates run here interpreted; at tiny sizes they must reach the
  im2col variant's loss (same problem, same initial models)."""
  lines = _run("benchmarks.train_zoo", "--num_models=2", "--samples=64",
               "--epochs=1", "--rounds=1", "--steps_per_call=1",
               "--variants=pool,pallas_vmap,pallas64_vmap,pallas_fused_vmap")
  rows = {r["variant"]: r for r in lines if "variant" in r}
  want = rows["pool"]["final_loss_mean"]
  assert rows["pallas_fused_vmap"]["pool_impl"] == "fused"
  for name in ("pallas_vmap", "pallas64_vmap", "pallas_fused_vmap"):
    assert rows[name]["conv_impl"] == "pallas"
    assert abs(rows[name]["final_loss_mean"] - want) < 1e-4 * max(1.0, abs(want))


def test_gpu_check_refuses_unknown_steps():
  out = subprocess.run(["bash", "benchmarks/gpu_check.sh", "--dry_run"], cwd=_ROOT,
                       env=dict(os.environ, STEPS="pallas,warp_drive"),
                       capture_output=True, text=True, timeout=120, check=False)
  assert out.returncode == 64
  assert "unknown step 'warp_drive'" in out.stderr and "pallas_profile" in out.stderr
