#!/usr/bin/env bash
# One short GPU check of the hot paths; the last stdout line is a JSON summary.
#
#   bash benchmarks/gpu_check.sh             # on a machine with an NVIDIA GPU
#   bash benchmarks/gpu_check.sh --dry_run   # tiny sizes on whatever backend (CPU ok)
#   STEPS=pallas,pallas_profile,equivalence bash benchmarks/gpu_check.sh  # a subset
#
# 0. pallas: the Pallas/Triton conv2 (no im2col patches; pallas_conv.py) and
#    the fused conv1+ReLU+pool1 (conv1 recomputed backward; pool_impl=fused), alone
#    and together, at 512 models against the im2col default in the same run: f32
#    (TF32; Pallas at 128 and 256 rows per program) and bf16; pallas_profile:
#    zoo_profile with the Pallas conv2 (its parts include the fused conv1 stage).
# 1. zoo: benchmarks.train_zoo at 512 lenet20 models vmapped in one program
#    (1 epoch of 2,048 samples = 32 steps each), the levers side by side: im2col +
#    reshape pool (the accelerator default), + nn.max_pool (the first trainer),
#    xla_vjp and plain nn.Conv under vmap (grouped convs), float32 at HIGHEST
#    precision (no TF32), bf16; and the PyTorch loop over 4 models (if torch is
#    installed) for the same-run ratio;
# 2. zoo_curve: the default variant at 8, 64 and 1,024 models (+ bf16);
# 3. profile: benchmarks.zoo_profile, each part of the 512-model step alone;
# 4. equivalence: benchmarks.gpu_equivalence (k-NN CMI GPU == CPU; the TF32 and
#    bf16 zoo fast paths, im2col and pallas, vs each model alone at f32 HIGHEST);
# 5. scoring: benchmarks.score, k-NN CMI of 500 sources at n=5,000, dF=200;
# 6. fine-tuning: benchmarks.finetune_speed, 500 sources x 1 seed vmapped vs a
#    stack of one model at a time (the first 32 sources, extrapolated).
#
# Budget: the steps 1-6 took 270 s on an H200; the pallas steps are estimated at
# 3-4 minutes more (worst case by the timeouts: ~15 minutes), so under a 10-minute
# limit per command run them apart: STEPS=pallas,pallas_profile,equivalence first,
# then the rest. Each step has its own timeout
# (seconds in STEP_TIMEOUTS below, scaled by TIMEOUT_SCALE) and a step that fails
# or times out is reported as such in the summary instead of stopping the
# others. JSON lines of each step go to $OUT_DIR (default: a temp dir); the last
# line on stdout is the summary.
#
# JAX with CUDA: if a GPU is visible (nvidia-smi) but JAX's backend is "cpu",
# the script runs `pip install "jax[cuda12]==<installed jax version>"` (the CUDA
# plugin and NVIDIA wheels, ~3 GB; needs network access; set NO_INSTALL=1 to
# skip) and checks again. It exits 2 with a message when there is no GPU.
set -uo pipefail

DRY_RUN=0
for arg in "$@"; do
  case "$arg" in
    --dry_run|--dry-run) DRY_RUN=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "gpu_check.sh: unknown argument $arg (use --dry_run)" >&2; exit 64 ;;
  esac
done

cd "$(dirname "$0")/.." || exit 1
PY=${PYTHON:-python}
OUT_DIR=${OUT_DIR:-$(mktemp -d -t transferjax_gpu_check_XXXX)}
mkdir -p "$OUT_DIR"

backend() { "$PY" -c "import jax; print(jax.default_backend())" 2>/dev/null; }

BACKEND=$(backend)
if [ "$DRY_RUN" = 0 ] && [ "$BACKEND" != "gpu" ]; then
  if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
    echo "gpu_check.sh: no NVIDIA GPU here (nvidia-smi finds none; JAX backend:" \
         "${BACKEND:-jax not importable}). Run it on a GPU machine, or use" \
         "--dry_run for a tiny CPU rehearsal." >&2
    exit 2
  fi
  if [ "${NO_INSTALL:-0}" = 1 ]; then
    echo "gpu_check.sh: a GPU is visible but JAX's backend is '$BACKEND' and" \
         "NO_INSTALL=1. Install the CUDA plugin: pip install \"jax[cuda12]==<jax version>\"." >&2
    exit 2
  fi
  JAX_VERSION=$("$PY" -c "import jax; print(jax.__version__)")
  echo "gpu_check.sh: GPU visible, JAX backend '$BACKEND': installing jax[cuda12]==$JAX_VERSION" >&2
  "$PY" -m pip install -q "jax[cuda12]==$JAX_VERSION" >&2
  BACKEND=$(backend)
  if [ "$BACKEND" != "gpu" ]; then
    echo "gpu_check.sh: JAX still reports backend '$BACKEND' after installing" \
         "jax[cuda12]; check the driver (nvidia-smi) and CUDA 12 support." >&2
    exit 2
  fi
fi

ZOO_VARIANTS=pool,base,pool_hi,bf16_vmap,torch_seq
PALLAS_VARIANTS=pool,pallas_vmap,pallas256_vmap,fused_vmap,pallas_fused_vmap,bf16_vmap,bf16_pallas_vmap,bf16_pallas_fused_vmap
CONV_VARIANTS=pool,xla_vjp_vmap,xla_vmap  # grouped convs (slow compile?) apart
if [ "$DRY_RUN" = 1 ]; then
  ZOO_ARGS=(--num_models=4 --variants=$ZOO_VARIANTS --epochs=1 --samples=128
            --rounds=1 --seq_max_models=1)
  PALLAS_ARGS=(--num_models=2 --variants=pool,pallas_vmap,pallas_fused_vmap
               --epochs=1 --samples=128 --rounds=1)
  PALLAS_PROFILE_ARGS=(--num_models=2 --repeats=1 --model_loop=vmap
                       --conv_impl=pallas)
  CONV_ARGS=(--num_models=4 --variants=$CONV_VARIANTS --epochs=1 --samples=128
             --rounds=1)
  CURVE_ARGS=(--num_models=2,4 --variants=pool,bf16_vmap --epochs=1 --samples=128
              --rounds=1)
  PROFILE_ARGS=(--num_models=2 --repeats=1 --model_loop=vmap)
  EQUIV_ARGS=(--allow_cpu)
  SCORE_ARGS=(--q 4 --n 500 --dims 50 --metrics max --no_reference --repeats 1)
  FT_ARGS=(--num_sources=4 --num_seeds=1 --max_epochs=2 --patience=1 --num_labeled=40)
else
  ZOO_ARGS=(--num_models=512 --variants=$ZOO_VARIANTS --epochs=1 --samples=2048
            --rounds=2 --seq_max_models=4)
  PALLAS_ARGS=(--num_models=512 --variants=$PALLAS_VARIANTS --epochs=1
               --samples=2048 --rounds=2)
  PALLAS_PROFILE_ARGS=(--num_models=512 --repeats=10 --model_loop=vmap
                       --conv_impl=pallas)
  CONV_ARGS=(--num_models=512 --variants=$CONV_VARIANTS --epochs=1 --samples=2048
             --rounds=2)
  CURVE_ARGS=(--num_models=8,64,1024 --variants=pool,bf16_vmap --epochs=1
              --samples=2048 --rounds=2)
  PROFILE_ARGS=(--num_models=512 --repeats=10 --model_loop=vmap)
  EQUIV_ARGS=()
  SCORE_ARGS=(--q 500 --n 5000 --dims 200 --metrics max --no_reference --repeats 1)
  FT_ARGS=(--num_sources=500 --num_seeds=1 --max_epochs=20 --patience=5
           --model_chunk=512 --seq_max_sources=32)
fi
# Seconds per step (the full run's budget; a dry run on a CPU takes longer).
declare -A STEP_TIMEOUTS=([pallas]=240 [pallas_profile]=90 [zoo]=120 [zoo_conv]=90
                          [zoo_curve]=70 [profile]=45 [equivalence]=120 [score]=40
                          [finetune]=70)
ALL_STEPS=(pallas pallas_profile zoo zoo_conv zoo_curve profile equivalence score
           finetune)
STEPS=${STEPS:-$(IFS=,; echo "${ALL_STEPS[*]}")}
for name in ${STEPS//,/ }; do
  if [ -z "${STEP_TIMEOUTS[$name]:-}" ]; then
    echo "gpu_check.sh: unknown step '$name' in STEPS; choose from ${ALL_STEPS[*]}" >&2
    exit 64
  fi
done
TIMEOUT_SCALE=${TIMEOUT_SCALE:-1}

# run_step NAME CMD...: JSON lines to $OUT_DIR/NAME.jsonl, stderr to NAME.log,
# exit status to NAME.rc (124: timed out).
run_step() {
  local name=$1; shift
  case ",$STEPS," in *",$name,"*) ;; *) return 0 ;; esac
  local t0=$SECONDS
  timeout $(( ${STEP_TIMEOUTS[$name]} * TIMEOUT_SCALE )) "$@" \
    > "$OUT_DIR/$name.jsonl" 2> "$OUT_DIR/$name.log"
  echo $? > "$OUT_DIR/$name.rc"
  echo $((SECONDS - t0)) > "$OUT_DIR/$name.seconds"
  echo "gpu_check.sh: $name exit $(cat "$OUT_DIR/$name.rc") in $((SECONDS - t0))s" >&2
  grep -h '^{' "$OUT_DIR/$name.jsonl" | cut -c1-400 >&2  # progress in the log
}

run_step pallas "$PY" -m benchmarks.train_zoo "${PALLAS_ARGS[@]}"
run_step pallas_profile "$PY" -m benchmarks.zoo_profile "${PALLAS_PROFILE_ARGS[@]}"
run_step zoo "$PY" -m benchmarks.train_zoo "${ZOO_ARGS[@]}"
run_step zoo_conv "$PY" -m benchmarks.train_zoo "${CONV_ARGS[@]}"
run_step zoo_curve "$PY" -m benchmarks.train_zoo "${CURVE_ARGS[@]}"
run_step profile "$PY" -m benchmarks.zoo_profile "${PROFILE_ARGS[@]}"
run_step equivalence "$PY" -m benchmarks.gpu_equivalence "${EQUIV_ARGS[@]}"
run_step score "$PY" -m benchmarks.score "${SCORE_ARGS[@]}"
run_step finetune "$PY" -m benchmarks.finetune_speed "${FT_ARGS[@]}"

# The summary: every JSON line of each step, its exit status and seconds, and
# the headline numbers.
"$PY" - "$OUT_DIR" "$DRY_RUN" "$STEPS" <<'EOF'
import json, os, sys

import jax

out_dir, dry_run, selected = sys.argv[1], sys.argv[2] == "1", sys.argv[3].split(",")


def step(name):
  rows = []
  path = os.path.join(out_dir, name + ".jsonl")
  if os.path.exists(path):
    for line in open(path, encoding="utf-8"):
      line = line.strip()
      if line.startswith("{"):
        try:
          rows.append(json.loads(line))
        except json.JSONDecodeError:
          pass
  rc = int(open(os.path.join(out_dir, name + ".rc")).read())
  seconds = int(open(os.path.join(out_dir, name + ".seconds")).read())
  out = {"exit": rc, "timed_out": rc == 124, "seconds": seconds, "lines": rows}
  if rc != 0:
    log = open(os.path.join(out_dir, name + ".log"), encoding="utf-8").read()
    out["log_tail"] = log[-600:]
  return out


steps = {n: step(n) for n in ("pallas", "pallas_profile", "zoo", "zoo_conv",
                               "zoo_curve", "profile", "equivalence", "score",
                               "finetune") if n in selected}
empty = {"lines": []}
zoo, score, ft = (steps.get(n, empty) for n in ("zoo", "score", "finetune"))
head = {}
rates = {}
for r in [r for n in ("pallas", "zoo", "zoo_conv", "zoo_curve")
          for r in steps.get(n, empty)["lines"]]:
  if "model_steps_per_s" in r:
    rates.setdefault(f'{r["variant"]}@{r["num_models"]}', {

        "model_steps_per_s": round(r["model_steps_per_s"]),
        "program_mb": r.get("program_mb") and round(r["program_mb"]),
        "compile_s": round(r["compile_s"], 1)})
head["zoo"] = rates
failed = [{k: r[k] for k in ("variant", "num_models", "failed", "error")}
          for n in ("pallas", "zoo", "zoo_conv", "zoo_curve")
          for r in steps.get(n, empty)["lines"] if "failed" in r]
if failed:
  head["zoo_failed"] = failed
for name in ("profile", "pallas_profile"):
  prof = [r for r in steps.get(name, empty)["lines"] if "summary" in r]
  if prof:
    head[name + "_shares"] = prof[-1]["summary"]
    head[name + "_model_steps_per_s"] = prof[-1]["model_steps_per_s"]
eq = [r for r in steps.get("equivalence", empty)["lines"]
      if r.get("check") == "zoo_equivalence"]
if eq:
  head["zoo_equivalence"] = {k: v for k, v in eq[-1].items()
                             if k.startswith(("fast_", "pallas_")) or k == "ok"}
sc = [r for r in score["lines"] if "jax_s" in r]
if sc:
  head["score_q"], head["score_n"] = sc[-1]["q"], sc[-1]["n"]
  head["score_s"] = sc[-1]["jax_s"]
  head["score_first_call_s"] = sc[-1]["jax_first_call_s"]
fs = [r for r in ft["lines"] if r.get("kind") == "summary"]
if fs:
  head["finetune_models"] = fs[-1]["models"]
  head["finetune_vmap_s"] = fs[-1]["vmap_s"]
  head["finetune_speedup"] = fs[-1]["speedup"]
  head["finetune_max_abs_auc_diff"] = fs[-1]["max_abs_auc_diff"]
full = {
    "kind": "gpu_check", "dry_run": dry_run, "backend": jax.default_backend(),
    "devices": [str(d) for d in jax.devices()], "jax": jax.__version__,
    "ok": all(s["exit"] == 0 for s in steps.values()), "headline": head,
    **steps, "out_dir": out_dir}
with open(os.path.join(out_dir, "summary.json"), "w", encoding="utf-8") as f:
  json.dump(full, f, indent=1)
# stdout: the compact line (every step's status, the headline numbers).
print(json.dumps({k: full[k] for k in ("kind", "dry_run", "backend", "devices", "jax",
                                       "ok", "headline", "out_dir")} | {
    "steps": {n: {k: v for k, v in s.items() if k != "lines"}
              for n, s in steps.items()}}))
EOF
