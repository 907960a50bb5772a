"""Benchmarks: `python -m experiments.benchmarks.<name> --out=FILE.json` (one JSON row per line).

Rows are appended to `--out` as soon as they are measured, so several invocations (e.g. one per
qubit count) collect in one file and a run killed midway keeps its finished rows.
"""

import functools
import json

import jax
import jax.numpy as jnp
import optax

from qcnn_jax import malloc
from qcnn_jax.training import train


def write_rows(path: str | None, rows: list[dict]) -> None:
  """Appends `rows` as JSON lines to `path` (nothing when `path` is None), each with ``malloc``: the
  glibc malloc setting this process started with (`qcnn_jax.malloc`), unless the row names its own."""
  if path:
    with open(path, "a") as f:
      f.writelines(json.dumps({"malloc": malloc.active(), **row}) + "\n" for row in rows)


def importable(module: str) -> bool:
  """Whether an optional benchmark package imports; prints why a row is skipped when not."""
  try:
    __import__(module)
  except ImportError as e:
    print(f"{module}: row skipped, `import {module}` failed ({e}); see the benchmark's optional environment")
    return False
  return True


def train_step_inputs(model, batch: int, size: int, channels: int):
  """(Adam train state at the model's initial parameters, jitted train step donating the state,
  batch of normal (batch, size, size, channels) images with alternating binary labels): what the
  step benchmarks time, with the same seeds in every process."""
  images = jax.random.normal(jax.random.PRNGKey(0), (batch, size, size, channels))
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.PRNGKey(1), images[:1])
  state = train.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.adam(1e-3),
                                  batch_stats=variables.get("batch_stats", {}))
  step = jax.jit(functools.partial(train.train_step, model=model, task="binary-class"), donate_argnums=0)
  return state, step, {"image": images, "label": (jnp.arange(batch) % 2)[:, None]}
