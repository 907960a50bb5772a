r"""The ResNet-50 train step with and without transparent huge pages for glibc's malloc.

  python -m experiments.benchmarks.huge_pages --impls=onednn,xla --size=28 --batch=128 --repeats=2 \
      --out=results/benchmarks/huge_pages_cpu.json

XLA:CPU maps each execution's temporary buffer afresh (`qcnn_jax.hugepages`). For each
``conv_impl`` this starts one process per setting ("4k": ``QCNN_JAX_HUGE_PAGES=0``, "huge":
``GLIBC_TUNABLES=glibc.malloc.hugetlb=1``), alternated 4k, huge, huge, 4k, ... `--repeats` times,
each timing `--steps` train steps after 3 warm-up steps. One JSON row per process: median and
minimum seconds per step and the process's minor page faults per step.
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

from qcnn_jax import hugepages
from qcnn_jax.models import get_model

flags.DEFINE_list("impls", ["onednn", "xla"], "conv_impl values (resnet.CONV_IMPLS).")
flags.DEFINE_integer("size", 28, "Image size (px).")
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("width", None, "Optional ResNet base width override (tests).")
flags.DEFINE_integer("steps", 6, "Timed steps per process.")
flags.DEFINE_integer("repeats", 2, "Pairs of processes per implementation.")
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
  return {"impl": impl, "image_size": size, "batch": batch, "steps": steps, "step_s_median": float(np.median(times)),
          "step_s_min": min(times), "minor_faults_per_step": faults / steps}


def _child(impl: str, setting: str) -> dict:
  env = {k: v for k, v in os.environ.items() if k not in ("GLIBC_TUNABLES", "QCNN_JAX_HUGE_PAGES")}
  env.update({"QCNN_JAX_HUGE_PAGES": "0"} if setting == "4k" else {"GLIBC_TUNABLES": hugepages.TUNABLE})
  command = [sys.executable, "-m", "experiments.benchmarks.huge_pages", f"--child={impl}", f"--size={FLAGS.size}",
             f"--batch={FLAGS.batch}", f"--steps={FLAGS.steps}"] + ([f"--width={FLAGS.width}"] if FLAGS.width else [])
  done = subprocess.run(command, env=env, capture_output=True, text=True, check=True)
  return {**json.loads(done.stdout.strip().splitlines()[-1]), "pages": setting}


def main(argv):
  del argv
  if FLAGS.child:
    print(json.dumps(time_process(FLAGS.child, FLAGS.size, FLAGS.batch, FLAGS.steps, FLAGS.width)))
    return
  for impl in FLAGS.impls:
    for repeat in range(FLAGS.repeats):
      for setting in ("4k", "huge") if repeat % 2 == 0 else ("huge", "4k"):
        row = _child(impl, setting)
        print(f"{impl:7s} {setting:4s}: median {row['step_s_median']:.3f} s/step (min {row['step_s_min']:.3f}), "
              f"{row['minor_faults_per_step']:,.0f} page faults/step")
        benchmarks.write_rows(FLAGS.out, [row])


if __name__ == "__main__":
  app.run(main)
