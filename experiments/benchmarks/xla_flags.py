r"""XLA:CPU settings for the ResNet-50 train step, timed side by side with torchvision's.

  python -m experiments.benchmarks.xla_flags --settings=default,eigen,ynn_dot --sizes=28,64 \
      --batches=32,128 --rounds=2 --out=xla_flags.json

XLA flags are read once per process, so every (round, setting, batch) runs
`experiments.benchmarks.train_step --models=<model>,torchvision_resnet50` in a fresh process with
``XLA_FLAGS`` set to the setting's flags, replacing the caller's (the settings' order alternates
between rounds, so a load change on a shared machine does not favour one). torchvision's step is
timed in the same process, so each row's ``vs_torchvision`` is a side-by-side ratio (for
``--model=resnet50``; without torch the torchvision row is left out). Each process also saves the
model's gradient at the initial parameters on the timed batch (same seeds everywhere); a row's
``grad_rel_diff`` is ||g - g_ref|| / ||g_ref|| against the first setting's gradient (``default``
unless asked otherwise).

One JSON row per (round, setting, batch, size): train_step's row plus ``setting``, ``xla_flags``,
``round``, ``grad_rel_diff``. The table printed at the end gives the median over rounds.
"""

import json
import os
import statistics
import subprocess
import sys
import tempfile

import numpy as np
from absl import app, flags

from experiments import benchmarks

# Named XLA:CPU settings (jaxlib 0.10.2). XLA routes convolutions, matmuls and reductions to
# YNNPACK by default (``__ynn_fusion`` in the compiled HLO); an empty fusion-type list turns
# that off and leaves XLA's own (Eigen) kernels.
SETTINGS = {
    "default": "",
    "eigen": "--xla_cpu_experimental_ynn_fusion_type=",
    "eigen_onednn": ("--xla_cpu_experimental_ynn_fusion_type= --xla_cpu_use_onednn=true "
                     "--xla_cpu_experimental_onednn_custom_call=true"),
    "ynn_conv": "--xla_cpu_experimental_ynn_fusion_type=individual_convolution",
    "ynn_dot": "--xla_cpu_experimental_ynn_fusion_type=individual_dot",
    "ynn_conv_dot": "--xla_cpu_experimental_ynn_fusion_type=individual_convolution,individual_dot",
    "xnn_greedy": "--xla_cpu_experimental_xnn_graph_fusion_mode=XNN_GRAPH_FUSION_MODE_GREEDY",
    "fast_math": "--xla_cpu_enable_fast_math=true",
}

flags.DEFINE_string("model", "resnet50", "Model timed and differentiated (torchvision's ResNet-50 joins resnet50 only).")
flags.DEFINE_list("settings", list(SETTINGS), "Named settings to time (the first is the gradient reference).")
flags.DEFINE_list("sizes", ["28", "64"], "Image sizes (px).")
flags.DEFINE_list("batches", ["32"], "Batch sizes.")
flags.DEFINE_integer("steps", 5, "Timed steps per process.")
flags.DEFINE_integer("rounds", 1, "Times each setting runs (alternating order).")
flags.DEFINE_string("width", None, "Optional ResNet base width override.")
flags.DEFINE_string("out", None, "JSON-lines output file.")
FLAGS = flags.FLAGS


def run_setting(setting: str, batch: int, workdir: str) -> tuple[list[dict], dict[str, np.ndarray]]:
  """train_step's rows and ResNet-50 gradients of one process under ``setting``'s XLA flags."""
  out, grads = os.path.join(workdir, f"{setting}_{batch}.json"), os.path.join(workdir, f"{setting}_{batch}.npz")
  beside = FLAGS.model == "resnet50" and benchmarks.importable("torchvision")
  models = f"{FLAGS.model},torchvision_resnet50" if beside else FLAGS.model
  command = [sys.executable, "-m", "experiments.benchmarks.train_step", f"--models={models}",
             f"--sizes={','.join(FLAGS.sizes)}", f"--batch={batch}", f"--steps={FLAGS.steps}", f"--out={out}",
             f"--grad_out={grads}"] + ([f"--width={FLAGS.width}"] if FLAGS.width else [])
  env = dict(os.environ, XLA_FLAGS=SETTINGS[setting])
  subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
  with open(out) as f:
    rows = [json.loads(line) for line in f]
  os.remove(out)
  with np.load(grads) as saved:
    return rows, dict(saved)


def main(argv):
  del argv
  unknown = [s for s in FLAGS.settings if s not in SETTINGS]
  if unknown:
    raise app.UsageError(f"unknown settings {unknown}; known: {', '.join(SETTINGS)}")
  reference: dict[tuple[int, str], np.ndarray] = {}
  table: dict[tuple, list[dict]] = {}
  with tempfile.TemporaryDirectory() as workdir:
    for round_ in range(FLAGS.rounds):
      order = FLAGS.settings if round_ % 2 == 0 else FLAGS.settings[::-1]
      for setting in order:
        for batch in map(int, FLAGS.batches):
          rows, grads = run_setting(setting, batch, workdir)
          for row in rows:
            row.update(setting=setting, xla_flags=SETTINGS[setting], round=round_)
            key = f"{FLAGS.model}_{row['image_size']}"
            if row["impl"] == FLAGS.model:
              if setting == FLAGS.settings[0]:
                reference.setdefault((batch, key), grads[key])
              if (batch, key) in reference:
                ref = reference[(batch, key)]
                row["grad_rel_diff"] = float(np.linalg.norm(grads[key] - ref) / np.linalg.norm(ref))
            table.setdefault((setting, batch, row["image_size"], row["impl"]), []).append(row)
            print(f"round {round_} {setting:>14} batch {batch:>3} {row['image_size']:>3} px {row['impl']:>20}: "
                  f"{row['images_per_s']:7.1f} images/s  vs torchvision {row.get('vs_torchvision', float('nan')):.2f}x"
                  f"  grad rel diff {row.get('grad_rel_diff', float('nan')):.1e}", flush=True)
          benchmarks.write_rows(FLAGS.out, rows)
  print(f"\nmedian over rounds ({FLAGS.model}):")
  for (setting, batch, size, impl), rows in table.items():
    if impl == FLAGS.model:
      speed = statistics.median(r["images_per_s"] for r in rows)
      ratio = statistics.median(r.get("vs_torchvision", float("nan")) for r in rows)
      print(f"{setting:>14} batch {batch:>3} {size:>3} px: {speed:7.1f} images/s, {ratio:.2f}x torchvision")


if __name__ == "__main__":
  app.run(main)
