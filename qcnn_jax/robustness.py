"""A trained run's test metrics when its circuits run under finite shots, noise or readout error.

The run's own model and metrics evaluate every setting: while the model is applied, each QCNN
module's call is intercepted (`flax.linen.intercept_methods`) and its readout recomputed with the
same spec, trained angles and encoding inputs, but

* ``shots``: sampled with `n` shots per example (PennyLane ``default.qubit``, a PRNG key per batch
  derived from the sampling seed), several seeds per `n`;
* ``depolarizing`` / ``amplitude_damping``: that channel with probability `p` on both wires after
  every two-qubit block (density matrices, ``default.mixed``);
* ``readout_error``: a symmetric bit flip with probability `eps` on each measured qubit, applied
  exactly to the readout: <Z> -> (1 - 2 eps) <Z>, probabilities -> (M (x) ... (x) M) p with
  M = [[1 - eps, eps], [eps, 1 - eps]].

Everything else of the model (backbone, bottleneck, readout layer, residual path) is unchanged, so
the "exact" setting reproduces the run's `summary.json` test metrics.
"""

import csv
import dataclasses
import functools
import itertools
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import figure as mpl_figure

from qcnn_jax import reports, train
from qcnn_jax.models import heads
from qcnn_jax.models.quantum import execution as execution_lib
from qcnn_jax.models.quantum import layer, qcnn

KINDS = ("exact", "shots", "depolarizing", "amplitude_damping", "readout_error")
CSV_COLUMNS = ("kind", "setting", "n_seeds", "test_auc", "test_auc_std", "test_acc", "test_acc_std", "eval_s")


@dataclasses.dataclass(frozen=True)
class Setting:
  """One evaluation condition: `kind` in KINDS, its `value` (shots, p or eps; None for exact) and
  the sampling `seed` (shots only)."""

  kind: str
  value: float | None = None
  seed: int = 0

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"robustness kind {self.kind!r} not in {KINDS}")


def flip_readout(values, spec: qcnn.QCNNSpec, eps: float):
  """Raw readout (B, R) after a symmetric bit flip with probability `eps` on each measured qubit:
  <Z> values, or all 2**n_readout probabilities (big-endian over the readout wires)."""
  if spec.readout != "probs":
    return (1.0 - 2.0 * eps) * values
  flip = jnp.array([[1.0 - eps, eps], [eps, 1.0 - eps]], values.dtype)
  probs = values.reshape((-1,) + (2,) * spec.n_readout)
  for axis in range(1, spec.n_readout + 1):
    probs = jnp.moveaxis(jnp.tensordot(probs, flip, axes=([axis], [1])), -1, axis)
  return probs.reshape(values.shape)


def circuit_interceptor(setting: Setting, key):
  """A `nn.intercept_methods` interceptor running every QCNN call under `setting` (`key`: shots)."""
  calls = itertools.count()

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if not (isinstance(module, layer.QCNN) and context.method_name == "__call__") or setting.kind == "exact":
      return next_fun(*args, **kwargs)
    spec, params = module.circuit_spec, module.variables["params"]
    angles = {"conv": params["quantum_conv"], "pool": params["quantum_pool"]}
    features = args[0].astype(layer.float_dtype())
    if setting.kind == "readout_error":  # flip all outcomes, then keep n_outcomes as the model does
      raw = execution_lib.qcnn_apply(dataclasses.replace(spec, n_outcomes=None), angles, features,
                                     execution=module.execution)
      flipped = flip_readout(raw, spec, setting.value)
      return flipped if spec.readout != "probs" else qcnn.postprocess(spec, flipped)
    if setting.kind == "shots":
      return execution_lib.qcnn_apply(spec, angles, features, execution="fused", shots=int(setting.value),
                                      key=jax.random.fold_in(key, next(calls)))
    return execution_lib.qcnn_apply(spec, angles, features, execution="fused",
                                    noise=execution_lib.Noise(setting.kind, float(setting.value)))

  return interceptor


def eval_step(state, batch, key, *, model, setting: Setting):
  """`train.eval_step` with the circuits under `setting`."""
  with nn.intercept_methods(circuit_interceptor(setting, key)):
    logits, probe = heads.apply_probed(model, {"params": state.params, "batch_stats": state.batch_stats},
                                       batch["image"], train=False)
  return logits.astype(jnp.float32), probe


def evaluate(trainer: train.Trainer, state, setting: Setting, split: str = "test") -> dict:
  """The `split`'s classification report under `setting` (one compiled step per setting)."""
  step = jax.jit(functools.partial(eval_step, model=trainer.model, setting=setting))
  base = jax.random.PRNGKey(setting.seed)
  report, _ = trainer.evaluate(state, split, lambda s, b, number: step(s, b, jax.random.fold_in(base, number)))
  return report


def default_settings(shots=(100, 1_000, 10_000), shot_seeds: int = 3, noise_p=(1e-4, 1e-3, 1e-2, 5e-2),
                     readout_eps=(1e-3, 1e-2, 5e-2)) -> list[Setting]:
  """exact; shots x sampling seeds; both noise channels x p; readout error x eps."""
  settings = [Setting("exact")]
  settings += [Setting("shots", n, seed) for n in shots for seed in range(shot_seeds)]
  settings += [Setting(kind, p) for kind in ("depolarizing", "amplitude_damping") for p in noise_p]
  settings += [Setting("readout_error", eps) for eps in readout_eps]
  return settings


def aggregate(results: list[tuple[Setting, dict, float]]) -> list[dict]:
  """One row per (kind, value): mean and sample std over sampling seeds, evaluation seconds."""
  groups: dict[tuple, list] = {}
  for setting, report, seconds in results:
    groups.setdefault((setting.kind, setting.value), []).append((report, seconds))
  rows = []
  for (kind, value), group in groups.items():
    aucs, accs = [r["auc"] for r, _ in group], [r["acc"] for r, _ in group]
    rows.append({"kind": kind, "setting": "" if value is None else value, "n_seeds": len(group),
                 "test_auc": float(np.mean(aucs)), "test_auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else "",
                 "test_acc": float(np.mean(accs)), "test_acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else "",
                 "eval_s": float(np.sum([s for _, s in group]))})
  return rows


def write_csv(rows: list[dict], path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  return path


def plot(rows: list[dict], path: str) -> str:
  """Test AUC against shots, and against p / eps for each noise kind; the exact AUC as a line."""
  exact = next(r["test_auc"] for r in rows if r["kind"] == "exact")
  fig = mpl_figure.Figure(figsize=(10, 3.8), layout="constrained")
  ax_shots, ax_noise = fig.subplots(1, 2)
  for ax, kinds, xlabel in ((ax_shots, ("shots",), "shots per example"),
                            (ax_noise, ("depolarizing", "amplitude_damping", "readout_error"), "p (noise) / eps (readout)")):
    for kind in kinds:
      points = sorted((float(r["setting"]), r["test_auc"], r["test_auc_std"] or 0.0) for r in rows if r["kind"] == kind)
      if points:
        x, y, err = zip(*points)
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=kind)
    ax.axhline(exact, color="black", linestyle="--", linewidth=1, label="exact")
    ax.set_xscale("log")
    ax.set_xlabel(xlabel)
    ax.set_ylabel("test AUC")
    ax.legend(fontsize=8)
  return reports.save_figure(fig, path)
