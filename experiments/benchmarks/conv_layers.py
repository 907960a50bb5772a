r"""Per-layer profile of ResNet-50's convolutions: the project's ``resnet.Conv`` against torch.

  python -m experiments.benchmarks.conv_layers --size=28 --batch=32 --conv_impls=xla,onednn --out=conv_layers.json

Every convolution of the model (found by intercepting ``resnet.Conv`` while the model runs on a
(batch, size, size, channels) input) is grouped by shape; each distinct shape is timed alone as
three jitted programs: forward, input gradient and kernel gradient (``jax.vjp`` with respect to
one argument) for each of `--conv_impls`, and, with torch installed, as ``torch.nn.functional.conv2d`` and
``torch.ops.aten.convolution_backward`` (input or weight gradient) on the same shapes. One JSON row
per (shape, pass): milliseconds per call (median of ``--repeats``), the layer count, and the
time per train step (count x ms). Shows which kernels, forward or backward, hold the gap to
torchvision in ``train_step``. XLA flags apply as set in ``XLA_FLAGS`` (see ``runtime``).
"""

import collections
import statistics
import time

import flax.linen as nn
import jax
import jax.numpy as jnp
from absl import app, flags

from experiments import benchmarks

from qcnn_jax.models import get_model
from qcnn_jax.models import resnet

flags.DEFINE_integer("size", 28, "Image size (px).")
flags.DEFINE_integer("batch", 32, "Batch size.")
flags.DEFINE_integer("channels", 1, "Input channels.")
flags.DEFINE_string("model", "resnet50", "Model whose convolutions are profiled.")
flags.DEFINE_integer("repeats", 7, "Timed calls per program (median).")
flags.DEFINE_list("conv_impls", ["xla"], "resnet.Conv implementations to time (resnet.CONV_IMPLS).")
flags.DEFINE_bool("torch", True, "Also time torch's convolutions (needs torch).")
flags.DEFINE_string("out", None, "JSON-lines output file.")
FLAGS = flags.FLAGS

PASSES = ("forward", "input_grad", "kernel_grad")


def conv_layers(model_name: str, batch: int, size: int, channels: int) -> collections.Counter:
  """Counter of (H, W, C, F, k, stride) over every ``resnet.Conv`` call of the model's forward."""
  shapes = collections.Counter()

  def record(next_fun, args, kwargs, context):
    module = context.module
    if isinstance(module, resnet.Conv) and context.method_name == "__call__":
      _, h, w, c = args[0].shape
      shapes[(h, w, c, module.features, module.kernel_size, module.strides)] += 1
    return next_fun(*args, **kwargs)

  model = get_model(model_name, 1)
  images = jnp.zeros((batch, size, size, channels))
  with nn.intercept_methods(record):
    jax.eval_shape(lambda x: model.init(jax.random.PRNGKey(0), x, train=False), images)
  return shapes


def _median_ms(fn, *args, wait=jax.block_until_ready) -> float:
  """Median milliseconds of ``wait(fn(*args))`` over ``--repeats`` calls, after one warm-up call."""
  wait(fn(*args))
  times = []
  for _ in range(FLAGS.repeats):
    start = time.perf_counter()
    wait(fn(*args))
    times.append(time.perf_counter() - start)
  return 1e3 * statistics.median(times)


def time_jax(shape, batch: int, conv_impl: str = "xla") -> dict:
  """ms per call of the forward, input gradient and kernel gradient of ``resnet.Conv``."""
  h, w, c, f, k, s = shape
  conv = resnet.Conv(f, k, s, conv_impl=conv_impl)
  x = jax.random.normal(jax.random.PRNGKey(0), (batch, h, w, c))
  params = conv.init(jax.random.PRNGKey(1), x)
  y = conv.apply(params, x)
  g = jax.random.normal(jax.random.PRNGKey(2), y.shape)
  forward = jax.jit(conv.apply)
  input_grad = jax.jit(lambda p, x, g: jax.vjp(lambda x: conv.apply(p, x), x)[1](g)[0])
  kernel_grad = jax.jit(lambda p, x, g: jax.vjp(lambda p: conv.apply(p, x), p)[1](g)[0])
  return {"forward": _median_ms(forward, params, x), "input_grad": _median_ms(input_grad, params, x, g),
          "kernel_grad": _median_ms(kernel_grad, params, x, g)}


def time_torch(shape, batch: int) -> dict:
  """The same three passes with torch's CPU convolution (NCHW, as torchvision trains)."""
  import torch  # pylint: disable=g-import-not-at-top
  h, w, c, f, k, s = shape
  x = torch.randn(batch, c, h, w)
  weight = torch.randn(f, c, k, k)
  y = torch.nn.functional.conv2d(x, weight, stride=s, padding=k // 2)
  g = torch.randn_like(y)

  def backward(mask):
    return lambda: torch.ops.aten.convolution_backward(g, x, weight, None, [s, s], [k // 2] * 2, [1, 1], False,
                                                       [0, 0], 1, mask)

  passes = {"forward": lambda: torch.nn.functional.conv2d(x, weight, stride=s, padding=k // 2),
            "input_grad": backward([True, False, False]), "kernel_grad": backward([False, True, False])}
  with torch.no_grad():  # CPU torch returns when the result is ready
    return {name: _median_ms(fn, wait=lambda out: out) for name, fn in passes.items()}


def _rows(shape, count: int, impl: str, jax_ms: dict, torch_ms: dict) -> list[dict]:
  """One row per pass for one layer shape timed with implementation `impl` (and torch, when timed)."""
  h, w, c, f, k, s = shape
  rows = []
  for name in PASSES:
    row = {"model": FLAGS.model, "image_size": FLAGS.size, "batch": FLAGS.batch, "conv_impl": impl, "height": h,
           "width": w, "in_channels": c, "out_channels": f, "kernel": k, "stride": s, "count": count, "pass": name,
           "jax_ms": jax_ms[name], "jax_step_ms": count * jax_ms[name]}
    if name in torch_ms:
      row.update(torch_ms=torch_ms[name], torch_step_ms=count * torch_ms[name], ratio=torch_ms[name] / jax_ms[name])
    rows.append(row)
  return rows


def main(argv):
  del argv
  shapes = conv_layers(FLAGS.model, FLAGS.batch, FLAGS.size, FLAGS.channels)
  rows, totals = [], collections.Counter()
  print(f"{'H x W, C -> F, k/s':>26} {'count':>5} " + " ".join(f"{p + ' jax/torch ms':>26}" for p in PASSES))
  for shape, count in sorted(shapes.items(), key=lambda item: -item[0][0]):
    torch_ms = time_torch(shape, FLAGS.batch) if FLAGS.torch else {}
    for name in PASSES:
      totals["torch", name] += count * torch_ms.get(name, 0.0)
    h, w, c, f, k, s = shape
    for impl in FLAGS.conv_impls:
      new = _rows(shape, count, impl, time_jax(shape, FLAGS.batch, impl), torch_ms)
      for row in new:
        totals[impl, row["pass"]] += row["jax_step_ms"]
      cells = [f"{r['jax_ms']:9.2f} / {r.get('torch_ms', float('nan')):7.2f} ({r.get('ratio', float('nan')):4.2f}x)"
               for r in new]
      print(f"{f'{h}x{w}, {c} -> {f}, {k}/{s}':>26} {impl:>6} {count:>5} " + " ".join(f"{cell:>26}" for cell in cells),
            flush=True)
      rows += new
  for impl in FLAGS.conv_impls:
    for name in PASSES:
      ratio = totals["torch", name] / totals[impl, name] if totals["torch", name] else float("nan")
      print(f"total {name} ({impl}): jax {totals[impl, name]:.0f} ms, torch {totals['torch', name]:.0f} ms per step "
            f"({ratio:.2f}x torch's speed)")
  benchmarks.write_rows(FLAGS.out, rows)


if __name__ == "__main__":
  app.run(main)
