#!/usr/bin/env bash
# The MedMNIST grid's missing ResNet rows on one GPU (issue 12): BreastMNIST, then RetinaMNIST, then
# PneumoniaMNIST, `resnet50`, `resnet50_qcnn`, `resnet50_mlp`, seeds 0-2, full protocol; one grid process
# per (model, dataset group) sharing the GPU. Runs already recorded in $RECORDS are skipped; finished ones
# land there and are packed with the logs into $OUT every 20 s; at $DEADLINE s whatever still runs stops.
#
# Prepare on a machine with pip (the GPU machine needs no registry):
#   pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#     --platform manylinux2014_x86_64 -d .whl -r experiments/gpu/wheels.txt
#   pip wheel --no-deps -w .whl promise==2.3
#   mkdir -p devdata && cp <breastmnist,retinamnist,pneumoniamnist>.npz devdata/
# Run from the repository root there:  OUT=gpu_out DEADLINE=450 bash experiments/gpu/grid_medmnist.sh
# then here:  tar xzf gpu_out/records.tgz  (and rebuild the report with `experiments.grid --only_report`).
# Another grid: CONFIG=experiments/configs/grid_backbones.py RECORDS=results/grid_backbones/runs MODELS=resnet50
# FEATURES=1 (the frozen-head studies' backbones: each finished run's features are also extracted into
# $OUT/<dataset>_seed<k>.npz, for features/r50/; files over the device's 16 MiB return limit stay behind).
set -u
T0=$(date +%s); DEADLINE=${DEADLINE:-450}; RECORDS=${RECORDS:-results/grid_medmnist/runs}; EXTRA=${EXTRA:-}
CONFIG=${CONFIG:-experiments/configs/grid_medmnist.py}; MODELS=${MODELS:-resnet50 resnet50_qcnn resnet50_mlp}
WHEELS=${WHEELS:-.whl}; DATA=${DATA:-devdata}; OUT=${OUT:-gpu_out}; LOGS=/tmp/gpu_grid_logs
mkdir -p "$OUT" "$LOGS"
if [ -d "$WHEELS" ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site "$WHEELS"/*.whl || exit 1
fi
# The project pins JAX (requirements.txt); PennyLane fails on releases it does not support: stop here.
python3 -c "import jax; from importlib.metadata import version as v; import sys; sys.exit(0 if jax.__version__ == v('jax') and jax.__version__.startswith('0.10.') else 'this script needs JAX 0.10 (requirements.txt): add jax[cuda12]==0.10.2 wheels to \$WHEELS')" || exit 1
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 QCNN_JAX_CACHE_DIR=/tmp/jaxcache
export XLA_PYTHON_CLIENT_PREALLOCATE=false TF_CPP_MIN_LOG_LEVEL=2
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null
python3 -c "import jax, flax, optax, pennylane as q, numpy; print('jax', jax.__version__, jax.devices(), 'flax', flax.__version__, 'optax', optax.__version__, 'pennylane', q.__version__, 'numpy', numpy.__version__)" || exit 1
# Prepare the TFDS data once, before parallel processes would race to write it.
python3 -c "import importlib; from qcnn_jax import data; g = importlib.import_module('$CONFIG'[:-3].replace('/', '.')); [data.load_dataset(d, data_dir='$DATA') for d in g.get_config().datasets]" > "$LOGS/prepare.log" 2>&1 || { tail -5 "$LOGS/prepare.log"; exit 1; }
echo "prepared at $(( $(date +%s) - T0 )) s"
(command -v nvidia-smi >/dev/null && nvidia-smi --query-gpu=timestamp,utilization.gpu,memory.used --format=csv -l 30 > "$LOGS/gpu.log" 2>&1) &
GPUMON=$!
grid() {  # grid LOG ARGS...: one grid process
  log=$1; shift
  python3 -m experiments.grid --config="$CONFIG" --workdir=/tmp/gpu_grid_runs --records="$RECORDS" \
    --config.base.data_dir="$DATA" --config.base.progress=False --config.base.checkpoint_every_epochs=25 $EXTRA "$@" >> "$LOGS/$log.log" 2>&1
}
pack() {
  tar czf "$OUT/records.tgz.part" "$RECORDS" && mv "$OUT/records.tgz.part" "$OUT/records.tgz"
  tar czf "$OUT/logs.tgz.part" -C "$(dirname "$LOGS")" "$(basename "$LOGS")" && mv "$OUT/logs.tgz.part" "$OUT/logs.tgz"
}
PIDS=()
for m in $MODELS; do
  (grid "$m" --datasets=breastmnist --models="$m"; grid "$m" --datasets=retinamnist --models="$m") & PIDS+=($!)
  grid "pneumonia_$m" --datasets=pneumoniamnist --models="$m" & PIDS+=($!)
done
while [ -n "$(jobs -rp | grep -v "^$GPUMON\$")" ] && [ $(( $(date +%s) - T0 )) -lt "$DEADLINE" ]; do sleep 20; pack; done
# Stop this script's processes only (each job's subshell first, so it starts nothing more, then its child).
for p in "${PIDS[@]}" "$GPUMON"; do kids=$(pgrep -P "$p"); kill "$p" $kids 2>/dev/null; done
sleep 2; pack
if [ -n "${FEATURES:-}" ]; then  # features of every finished run (its summary.json written)
  for run in /tmp/gpu_grid_runs/*/*/seed*; do
    [ -f "$run/summary.json" ] || continue
    set -- $(echo "$run" | awk -F/ '{print $(NF-2), $NF}')
    python3 -m experiments.extract_features --workdir="$run" --out="$OUT/$1_$2.npz" >> "$LOGS/features.log" 2>&1
  done
  ls -l "$OUT"/*.npz 2>/dev/null
fi
echo "elapsed $(( $(date +%s) - T0 )) s; runs recorded in this call:"
find "$RECORDS" -name summary.json -newermt "@$T0" | sort | xargs -r python3 -c "
import json, sys
for path in sys.argv[1:]:
  s = json.load(open(path))
  print(s['dataset'], s['model'], s['seed'], 'test AUC %.4f ACC %.4f' % (s['test_auc'], s['test_acc']),
        'wall %.0f s' % s['wall_time_s'], '%.0f img/s' % s['images_per_s'])"
grep -h "Error\|Traceback" "$LOGS"/*.log | sort | uniq -c | head -20
