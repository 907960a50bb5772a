r"""ResNet-50 train step with XLA's and oneDNN's convolutions, beside torchvision's, interleaved in one process.

  python -m experiments.benchmarks.conv_impl --sizes=28,64 --batches=32,128 --rounds=8 \
      --out=results/benchmarks/conv_impl_cpu.json

For each (size, batch) the jitted Adam train steps of ``resnet50`` with ``conv_impl`` "xla" and
"onednn" (``qcnn_jax.models.onednn``) and, where torch imports, torchvision's ResNet-50 step of
``train_step`` run one step each per round, in an order reversed every round, so a load change on a
shared machine reaches every row alike. One JSON row per (size, batch, impl): seconds per step
(median and minimum over rounds), images/s at the median, ``vs_torchvision`` (torchvision's median
step over this row's: > 1 is faster, from the same rounds); for the Flax rows the relative L2
distance of the float32 gradient at the initial parameters (train_step's seeds) to a float64
reference of the same parameters and images (``grad_vs_float64``), and for "onednn" to the "xla"
float32 gradient (``grad_vs_xla``). Needs the onednn extra (``pip install -e ".[onednn]"``).
"""

import statistics
import time

import jax
import jax.numpy as jnp
import numpy as np
from absl import app, flags

from experiments import benchmarks
from experiments.benchmarks import train_step as train_step_bench

from qcnn_jax.models import get_model

flags.DEFINE_list("impls", ["xla", "onednn"], "conv_impl values timed (resnet.CONV_IMPLS).")
flags.DEFINE_integer("rounds", 8, "Rounds of one step per implementation (order reversed every round).")
flags.DEFINE_list("batches", ["32"], "Batch sizes.")
flags.DEFINE_bool("torch", True, "Also time torchvision's step (needs torch and torchvision).")
FLAGS = flags.FLAGS


def _float64_gradient(model, state, batch) -> np.ndarray:
  """The same gradient computed in float64 (parameters, batch statistics and images cast up)."""
  with jax.enable_x64(True):
    up = lambda tree: jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), tree)
    state64 = state.replace(params=up(state.params), batch_stats=up(state.batch_stats))
    return train_step_bench.initial_gradient(model.clone(dtype=jnp.float64), state64, up(batch)).astype(np.float64)


def _flax_step(impl: str, size: int, batch: int, reference: dict):
  """(step() running one train step and waiting for it, row fields of its gradient checks, gradient);
  `reference` caches the float64 gradient (the same for every impl: same seeds)."""
  model = get_model("resnet50", 1, conv_impl=impl)
  state, step, data = benchmarks.train_step_inputs(model, batch, size, 1)
  grad = train_step_bench.initial_gradient(model, state, data).astype(np.float64)
  if "grad" not in reference:
    reference["grad"] = _float64_gradient(get_model("resnet50", 1), state, data)
  fields = {"grad_vs_float64": float(np.linalg.norm(grad - reference["grad"]) / np.linalg.norm(reference["grad"]))}
  holder = {"state": state}

  def run():
    holder["state"], metrics = step(holder["state"], data)
    jax.block_until_ready(metrics)

  return run, fields, grad


def _torch_step(size: int, batch: int):
  model_step = train_step_bench.torch_step(size, batch)
  return lambda: model_step().item()


def measure(size: int, batch: int) -> list[dict]:
  """The rows of one (size, batch): steps interleaved over FLAGS.rounds rounds."""
  runs, rows, grads, reference = {}, {}, {}, {}
  for impl in FLAGS.impls:
    runs[impl], rows[impl], grads[impl] = _flax_step(impl, size, batch, reference)
  if FLAGS.torch and benchmarks.importable("torchvision"):
    runs[train_step_bench.TORCHVISION], rows[train_step_bench.TORCHVISION] = _torch_step(size, batch), {}
  for run in runs.values():  # compile / warm up
    run()
  times = {name: [] for name in runs}
  names = list(runs)
  for round_ in range(FLAGS.rounds):
    for name in names if round_ % 2 == 0 else names[::-1]:
      start = time.perf_counter()
      runs[name]()
      times[name].append(time.perf_counter() - start)
  out = []
  for name in names:
    median = statistics.median(times[name])
    row = {"impl": name, "image_size": size, "batch": batch, "rounds": FLAGS.rounds, "step_s_median": median,
           "step_s_min": min(times[name]), "images_per_s": batch / median, **rows[name]}
    if train_step_bench.TORCHVISION in times:
      row["vs_torchvision"] = statistics.median(times[train_step_bench.TORCHVISION]) / median
    if name == "onednn" and "xla" in grads:
      row["grad_vs_xla"] = float(np.linalg.norm(grads[name] - grads["xla"]) / np.linalg.norm(grads["xla"]))
    out.append(row)
    print(f"{size:>3} px batch {batch:>3} {name:>20}: median {median:.3f} s/step (min {row['step_s_min']:.3f}), "
          f"{row['images_per_s']:6.1f} images/s, vs torchvision {row.get('vs_torchvision', float('nan')):.2f}x", flush=True)
  return out


def main(argv):
  del argv
  for size in map(int, FLAGS.sizes):
    for batch in map(int, FLAGS.batches):
      benchmarks.write_rows(FLAGS.out, measure(size, batch))


if __name__ == "__main__":
  app.run(main)
