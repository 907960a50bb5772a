r"""The ResNet-50 train step under each glibc malloc setting (`qcnn_jax.malloc`).

  python -m experiments.benchmarks.malloc --impls=onednn,xla --size=28 --batch=128 --repeats=2 \
      --out=results/benchmarks/malloc_cpu.json

XLA:CPU allocates each execution's temporary buffer afresh. For each ``conv_impl`` this starts one
process per setting of `--settings` (``GLIBC_TUNABLES`` holding exactly that setting's tunables), in
the listed order, then reversed, `--repeats` times in all, each timing `--steps` train steps after 3
warm-up steps. One JSON row per process: its setting, median and minimum seconds per step, minor
page faults per step and the process's peak resident memory.
"""

import json
import os
import resource
import subprocess
import sys
import time

import jax
import numpy as np
from absl import app, flags

from experiments import benchmarks

from qcnn_jax import malloc
from qcnn_jax.models import get_model

flags.DEFINE_list("impls", ["onednn", "xla"], "conv_impl values (resnet.CONV_IMPLS).")
flags.DEFINE_integer("size", 28, "Image size (px).")
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("width", None, "Optional ResNet base width override (tests).")
flags.DEFINE_integer("steps", 6, "Timed steps per process.")
flags.DEFINE_list("settings", list(malloc.SETTINGS), "malloc settings (qcnn_jax.malloc.SETTINGS).")
flags.DEFINE_integer("repeats", 2, "Processes per setting and implementation (the order reversed each time).")
flags.DEFINE_string("out", None, "JSON-lines output file.")
flags.DEFINE_string("child", None, "Internal: time one process with this conv_impl and print its row.")
FLAGS = flags.FLAGS


def time_process(impl: str, size: int, batch: int, steps: int, width: int | None = None) -> dict:
  """This process's row: `steps` timed train steps of resnet50 after 3 warm-up steps."""
  model = get_model("resnet50", 1, conv_impl=impl, **({"width": width} if width else {}))
  state, step, data = benchmarks.train_step_inputs(model, batch, size, 1)
  for _ in range(3):
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
  faults, times = resource.getrusage(resource.RUSAGE_SELF).ru_minflt, []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = step(state, data)
    jax.block_until_ready(metrics)
    times.append(time.perf_counter() - start)
  faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults
  return {"impl": impl, "malloc": malloc.active(), "image_size": size, "batch": batch, "steps": steps,
          "step_s_median": float(np.median(times)), "step_s_min": min(times), "minor_faults_per_step": faults / steps,
          "max_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20}


def _child(impl: str, setting: str) -> dict:
  env = {**{k: v for k, v in os.environ.items() if k != "GLIBC_TUNABLES"}, malloc.ENV: "system",
         "GLIBC_TUNABLES": ":".join(malloc.SETTINGS[setting])}
  command = [sys.executable, "-m", "experiments.benchmarks.malloc", f"--child={impl}", f"--size={FLAGS.size}",
             f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}"] + ([f"--width={FLAGS.width}"] if FLAGS.width else [])
  done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
  row = json.loads(done.stdout.strip().splitlines()[-1])
  assert row["malloc"] == setting, (row["malloc"], setting)
  return row


def main(argv):
  del argv
  if FLAGS.child:
    print(json.dumps(time_process(FLAGS.child, FLAGS.size, FLAGS.batch, FLAGS.steps, FLAGS.width)))
    return
  unknown = set(FLAGS.settings) - set(malloc.SETTINGS)
  if unknown:
    sys.exit(f"error: --settings: {', '.join(sorted(unknown))} unknown; use some of {', '.join(malloc.SETTINGS)}")
  for impl in FLAGS.impls:
    for repeat in range(FLAGS.repeats):
      for setting in FLAGS.settings if repeat % 2 == 0 else FLAGS.settings[::-1]:
        row = _child(impl, setting)
        print(f"{impl:7s} {setting:6s}: median {row['step_s_median']:.3f} s/step (min {row['step_s_min']:.3f}), "
              f"{row['minor_faults_per_step']:,.0f} page faults/step")
        benchmarks.write_rows(FLAGS.out, [row])


if __name__ == "__main__":
  app.run(main)
