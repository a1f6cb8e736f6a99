#!/usr/bin/env bash
# The prepared check for a lent CUDA machine (issue 30, point 8), at most 10 minutes:
#   1. CUDA training steps of the default and the paper presets (prp-train --compute-device cuda,
#      epochs cut to fit the budget),
#   2. prp-train-paths on CUDA: the five paths of the default search at full size (NB201 C=16,
#      N=5) on the 5,000-image subset, one epoch: images/s there against this repo's 2-core CPU,
#   3. an export of the CUDA-trained run (prp-export reads the CUDA checkpoint on the host),
#   4. prp-eval on CUDA (K=40 architectures against NAS-Bench-201).
# Each step's wall time and output go to $OUT (gpu_check.json, gpu_check.log).
#
#   run: bash bench/gpu_check.sh        (on the device machine; DEVICE=cpu for a dry run here)
#
# The device image has torch but not executorch, moocore or kornia: carry their wheels in .whl/
# (see /work/.library/device/README.md) or the steps that need them are reported as skipped.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-runs/gpu-check}
DEVICE=${DEVICE:-cuda}
TRUTH=${TRUTH:-../shared/data/nasbench201/nb201_cifar10_hw.csv}
WORK=$(mktemp -d)
mkdir -p "$OUT"
LOG="$OUT/gpu_check.log"
: >"$LOG"
export PYTHONUNBUFFERED=1

if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl >>"$LOG" 2>&1 && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
# The package without installing it: prp.trainer and prp.runtime from this tree.
mkdir -p "$WORK/py/prp"
ln -s "$PWD/trainer" "$WORK/py/prp/trainer"
ln -s "$PWD/runtime" "$WORK/py/prp/runtime"
export PYTHONPATH="$WORK/py${PYTHONPATH:+:$PYTHONPATH}"
PY=${PY:-python3}
cli() {  # cli MODULE APP ARGS...: a typer app of this tree, as its console script would run it
  local module=$1 app=$2
  shift 2
  "$PY" -c "import sys; from $module import $app; sys.argv[0] = '$app'; $app()" "$@"
}

declare -A SECONDS_OF STATUS_OF
step() {  # step NAME COMMAND...: run, time, log
  local name=$1 start rc
  shift
  echo "== $name: $*" | tee -a "$LOG"
  start=$EPOCHREALTIME
  "$@" >>"$LOG" 2>&1
  rc=$?
  SECONDS_OF[$name]=$(awk "BEGIN { printf \"%.1f\", $EPOCHREALTIME - $start }")
  STATUS_OF[$name]=$rc
  echo "   rc=$rc, ${SECONDS_OF[$name]} s" | tee -a "$LOG"
}

"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')" | tee -a "$LOG"
step default-preset cli prp.trainer.cli train_app --objective energy \
  --cost-model hwnasbench-nb201 --device edgegpu --epochs-pareto 2 \
  --compute-device "$DEVICE" --out "$WORK/default"
step paper-preset cli prp.trainer.cli train_app --preset paper --epochs-fair 1 \
  --epochs-pareto 1 --prune-after 1 --limit-per-class 100 --compute-device "$DEVICE" \
  --out "$WORK/paper"
step train-paths cli prp.trainer.cli.train_paths train_paths_app "$WORK/default" --top 5 \
  --epochs 1 --compute-device "$DEVICE" --out "$WORK/paths"
step export cli prp.trainer.cli export_app "$WORK/default" --top 5 --out "$WORK/bundle"
step eval cli prp.trainer.cli eval_app "$WORK/default" --truth "$TRUTH" --k 40 \
  --compute-device "$DEVICE"

"$PY" - "$OUT/gpu_check.json" "$WORK" <<EOF
import json, pathlib, sys
out, work = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
steps = {$(for k in "${!SECONDS_OF[@]}"; do printf '"%s": {"seconds": %s, "rc": %s}, ' "$k" "${SECONDS_OF[$k]}" "${STATUS_OF[$k]}"; done)}
log = work / "paths" / "log.jsonl"
epochs = [json.loads(l) for l in log.read_text().splitlines()] if log.exists() else []
if epochs:
    e = epochs[-1]
    steps["train-paths"]["images_per_s"] = e["images"] / max(e["train_seconds"], 1e-9)
    steps["train-paths"]["record"] = e
import torch
record = {"device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
          "torch": torch.__version__, "steps": steps}
out.write_text(json.dumps(record, indent=2))
print(json.dumps(record, indent=2))
EOF
rm -rf "$WORK"
