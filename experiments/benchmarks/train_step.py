r"""Train-step throughput and compile time of the models, and the quantum part's share.

  python -m experiments.benchmarks.train_step --models=resnet50,resnet50_qcnn --sizes=28,64 \
      --batch=128 --out=train_step.json

One JSON row per (model, size): impl (= model), image_size, batch, images_per_s (jitted train
step, Adam, steady state), step_cpu_s (the process's CPU seconds per step, all threads: less
sensitive than step_s to other processes on the machine), compile_s (trace + compile with an empty persistent compilation cache),
compile_s_warm (the same served by the cache), first_call_s (first call: trace + compile + run), dtype,
the options given (`--width`, `--dtype`, `--n_qubits`, `--execution` go to the models that take
them), and for hybrid models quantum_share: the fraction of the step spent in the quantum head, measured as
1 - t(step with the quantum head replaced by its classical control of equal shape) / t(step).

`--models=torchvision_resnet50` adds the same step in PyTorch, for a side-by-side ratio: torchvision's
ResNet-50 with the stem ours picks for the size (3x3 stride-1 conv and no max-pool up to 32 px, as
MedMNIST's ResNet (28)), Adam, BCE-with-logits, on CUDA when there is a GPU. torch is never a
dependency of qcnn_jax: install it in its own environment (see experiments/benchmarks/qcnn.py).

`--grad_out=FILE.npz` also saves each JAX model's gradient at its initial parameters on the timed
batch (same seeds in every process), which `experiments.benchmarks.xla_flags` compares between XLA
settings.
"""

import functools
import tempfile
import time

import jax
from jax import flatten_util
import numpy as np
from absl import app, flags

from experiments import benchmarks

from qcnn_jax import runtime
from qcnn_jax.training import train
from qcnn_jax.models import MODELS, get_model
from qcnn_jax.models.resnet import resolve_stem

flags.DEFINE_list("models", ["resnet50", "resnet50_qcnn", "qcnn", "quanv_resnet50"], "Models to time.")
flags.DEFINE_list("sizes", ["28", "64"], "Image sizes (px).")
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("channels", 1, "Input channels.")
flags.DEFINE_integer("steps", 5, "Timed steps after the first (compiling) one.")
flags.DEFINE_string("width", None, "Optional ResNet base width override.")
flags.DEFINE_string("dtype", None, "Compute dtype of the ResNet (e.g. bfloat16); default float32.")
flags.DEFINE_integer("n_qubits", None, "Qubits of the quantum models' circuit; default the model's (8).")
flags.DEFINE_string("execution", None, "QCNN execution (auto, fused, statevector, gates); default: the model's (auto).")
flags.DEFINE_string("out", None, "JSON-lines output file.")
flags.DEFINE_string("grad_out", None, "Optional .npz file: each JAX model's gradient at its initial parameters on "
                    "the timed batch, one flat float32 vector per '<model>_<size>' key (to compare XLA settings).")
FLAGS = flags.FLAGS

TORCHVISION = "torchvision_resnet50"
# A hybrid's classical stand-in with the same input and output shapes (for the quantum share).
CLASSICAL_TWIN = {"resnet50_qcnn": "resnet50_mlp"}
GRADIENTS: dict[str, np.ndarray] = {}  # filled for --grad_out


def time_step(name: str, size: int, batch: int) -> dict:
  """Compile time and steady-state images/s of one jitted Adam train step of model `name`."""
  if name == TORCHVISION:
    return time_torch_step(size, batch)
  requested = {"width": int(FLAGS.width) if FLAGS.width else None, "dtype": FLAGS.dtype,
               "n_qubits": FLAGS.n_qubits, "execution": FLAGS.execution}
  options = {k: v for k, v in requested.items() if v is not None and k in MODELS[name][1]}
  model = get_model(name, 1, **options)
  state, step, batch_dict = benchmarks.train_step_inputs(model, batch, size, FLAGS.channels)
  if FLAGS.grad_out:
    GRADIENTS[f"{name}_{size}"] = initial_gradient(model, state, batch_dict)

  def compile_seconds():
    jax.clear_caches()
    start = time.perf_counter()
    step.lower(state, batch_dict).compile()
    return time.perf_counter() - start

  runtime.enable_compilation_cache(tempfile.mkdtemp(prefix="train_step_bench_cache_"))
  compile_s = compile_seconds()  # empty persistent cache
  compile_s_warm = compile_seconds()  # served by the persistent cache just filled
  start = time.perf_counter()
  state, metrics = step(state, batch_dict)
  jax.block_until_ready(metrics)
  first_call_s = time.perf_counter() - start
  start, cpu_start = time.perf_counter(), time.process_time()
  for _ in range(FLAGS.steps):
    state, metrics = step(state, batch_dict)
  jax.block_until_ready(metrics)
  per_step = (time.perf_counter() - start) / FLAGS.steps
  return {"impl": name, "image_size": size, "batch": batch, "images_per_s": batch / per_step,
          "step_s": per_step, "step_cpu_s": (time.process_time() - cpu_start) / FLAGS.steps, "compile_s": compile_s, "compile_s_warm": compile_s_warm,
          "first_call_s": first_call_s, "backend": jax.default_backend(),
          "dtype": options.get("dtype", "float32"),
          **{k: options[k] for k in ("width", "n_qubits", "execution") if k in options}}


def initial_gradient(model, state: train.TrainState, batch: dict) -> np.ndarray:
  """Flat (P,) float32 gradient of the train step's loss at ``state``'s parameters."""
  loss = functools.partial(train.train_loss, state=state, batch=batch, model=model, task="binary-class")
  return np.asarray(flatten_util.ravel_pytree(jax.jit(jax.grad(loss, has_aux=True))(state.params)[0])[0])


def torch_step(size: int, batch: int):
  """One Adam step of torchvision's ResNet-50 (the stem ours picks for the size, BCE-with-logits;
  float32, or bfloat16 autocast with --dtype; CUDA when there is a GPU) on a fixed random batch:
  a function running it and returning the loss tensor."""
  import torch  # pylint: disable=g-import-not-at-top
  import torchvision  # pylint: disable=g-import-not-at-top
  device = "cuda" if torch.cuda.is_available() else "cpu"
  model = torchvision.models.resnet50(num_classes=1)
  if resolve_stem("auto", size, size) == "cifar":
    model.conv1 = torch.nn.Conv2d(FLAGS.channels, 64, 3, 1, 1, bias=False)
    model.maxpool = torch.nn.Identity()
  else:
    model.conv1 = torch.nn.Conv2d(FLAGS.channels, 64, 7, 2, 3, bias=False)
  model = model.to(device).train()
  optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
  images = torch.randn(batch, FLAGS.channels, size, size, device=device)
  labels = (torch.arange(batch, device=device) % 2).float()[:, None]
  autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=FLAGS.dtype == "bfloat16")

  def step():
    optimizer.zero_grad(set_to_none=True)
    with autocast:
      loss = torch.nn.functional.binary_cross_entropy_with_logits(model(images).float(), labels)
    loss.backward()
    optimizer.step()
    return loss

  return step


def time_torch_step(size: int, batch: int) -> dict:
  """The same measurement for torchvision's ResNet-50 (`torch_step`)."""
  import torch  # pylint: disable=g-import-not-at-top
  step = torch_step(size, batch)
  start = time.perf_counter()
  step().item()  # .item() synchronises CUDA too
  compile_s = time.perf_counter() - start
  start, cpu_start = time.perf_counter(), time.process_time()
  for _ in range(FLAGS.steps):
    loss = step()
  loss.item()
  per_step = (time.perf_counter() - start) / FLAGS.steps
  return {"impl": TORCHVISION, "image_size": size, "batch": batch, "images_per_s": batch / per_step,
          "step_s": per_step, "step_cpu_s": (time.process_time() - cpu_start) / FLAGS.steps, "compile_s": compile_s,
          "backend": "cuda" if torch.cuda.is_available() else "cpu", "dtype": FLAGS.dtype or "float32",
          "torch_threads": torch.get_num_threads()}


def main(argv):
  del argv
  for size in map(int, FLAGS.sizes):
    rows = []
    for name in FLAGS.models:
      row = time_step(name, size, FLAGS.batch)
      if name in CLASSICAL_TWIN:
        twin = time_step(CLASSICAL_TWIN[name], size, FLAGS.batch)
        row["quantum_share"] = max(0.0, 1.0 - twin["step_s"] / row["step_s"])
      rows.append(row)
      share = f"  quantum share {row['quantum_share']:.1%}" if "quantum_share" in row else ""
      warm = row.get("compile_s_warm", float("nan"))  # torchvision rows have no persistent cache
      print(f"{name:>20} {size:>3} px: {row['images_per_s']:8.1f} images/s, compile {row['compile_s']:6.1f} s "
            f"(warm {warm:5.1f} s){share}", flush=True)
    sized = {r["impl"]: r for r in rows}
    if TORCHVISION in sized:  # side-by-side ratio, measured in this run
      for name, row in sized.items():
        if name.startswith("resnet50"):
          row["vs_torchvision"] = row["images_per_s"] / sized[TORCHVISION]["images_per_s"]
          print(f"{name:>20} {size:>3} px: {row['vs_torchvision']:.2f}x torchvision's images/s", flush=True)
    benchmarks.write_rows(FLAGS.out, rows)
  if FLAGS.grad_out:
    np.savez(FLAGS.grad_out, **GRADIENTS)


if __name__ == "__main__":
  app.run(main)
