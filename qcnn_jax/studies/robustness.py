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

``corruption`` settings change the images instead, for any run (classical ones too): the split's
stored images under a MedMNIST-C corruption at a severity 1-5 (`qcnn_jax.data.corruptions`), or only
resampled to the corruptions' design size and back ("resampled"), evaluated with exact circuits.
"""

import csv
import dataclasses
import functools
import itertools
import json
import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import figure as mpl_figure

from qcnn_jax.data import corruptions
from qcnn_jax.evaluation import reports
from qcnn_jax.training import train
from qcnn_jax.data import pipeline
from qcnn_jax.models import heads
from qcnn_jax.models.quantum import execution as execution_lib
from qcnn_jax.models.quantum import layer, qcnn

KINDS = ("exact", "shots", "depolarizing", "amplitude_damping", "readout_error", "corruption")
CIRCUIT_KINDS = KINDS[1:5]
RESAMPLED = "resampled"
CSV_COLUMNS = ("kind", "setting", "n_seeds", "test_auc", "test_auc_std", "test_acc", "test_acc_std", "auc_drop",
               "acc_drop", "eval_s", "note")


@dataclasses.dataclass(frozen=True)
class Setting:
  """One evaluation condition: `kind` in KINDS, its `value` (shots, p or eps; the severity of a
  corruption; None for exact), the sampling `seed` (shots, corruptions) and the `corruption`'s
  registry name (or RESAMPLED)."""

  kind: str
  value: float | None = None
  seed: int = 0
  corruption: str | None = None

  def __post_init__(self):
    if self.kind not in KINDS:
      raise ValueError(f"robustness kind {self.kind!r} not in {KINDS}")
    if (self.kind == "corruption") != (self.corruption is not None):
      raise ValueError("a corruption setting needs `corruption`, and only it")

  @property
  def label(self) -> str:
    """The CSV's `setting`: e.g. "1000" (shots), "0.01" (p), "motion_blur/3", "resampled", "" (exact)."""
    if self.kind == "corruption":
      return self.corruption if self.value is None else f"{self.corruption}/{int(self.value)}"
    return "" if self.value is None else f"{self.value:g}"


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
    if not (isinstance(module, layer.QCNN) and context.method_name == "__call__") or setting.kind not in CIRCUIT_KINDS:
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


def corrupted_split(trainer: train.Trainer, split: str, setting: Setting, size: int | None) -> pipeline.ArraySplit:
  """The `split`'s stored images under a corruption `setting` (processed at `size` px, None: their own)."""
  source = trainer.splits[split]
  raw = pipeline.gather(source, np.arange(len(source)))
  corruption = None if setting.value is None else corruptions.Corruption(
      trainer.config.dataset, setting.corruption, int(setting.value))
  images = corruptions.corrupt(raw["image"], corruption, seed=setting.seed, size=size)
  return pipeline.ArraySplit(images, raw["label"], raw["index"])


def evaluate(trainer: train.Trainer, state, setting: Setting, split: str = "test",
             corruption_size: int | None = corruptions.DESIGN_SIZE) -> tuple[dict, dict[str, np.ndarray]]:
  """The `split`'s (classification report, predictions) under `setting`: circuit settings compile
  one step each; exact and corruption settings use the run's own compiled step."""
  if setting.kind not in CIRCUIT_KINDS:
    source = split if setting.kind == "exact" else corrupted_split(trainer, split, setting, corruption_size)
    return trainer.evaluate(state, source)
  step = jax.jit(functools.partial(eval_step, model=trainer.model, setting=setting))
  base = jax.random.PRNGKey(setting.seed)
  return trainer.evaluate(state, split, lambda s, b, number: step(s, b, jax.random.fold_in(base, number)))


def default_settings(shots=(100, 1_000, 10_000), shot_seeds: int = 3, noise_p=(1e-4, 1e-3, 1e-2, 5e-2),
                     readout_eps=(1e-3, 1e-2, 5e-2)) -> list[Setting]:
  """exact; shots x sampling seeds; both noise channels x p; readout error x eps."""
  settings = [Setting("exact")]
  settings += [Setting("shots", n, seed) for n in shots for seed in range(shot_seeds)]
  settings += [Setting(kind, p) for kind in ("depolarizing", "amplitude_damping") for p in noise_p]
  settings += [Setting("readout_error", eps) for eps in readout_eps]
  return settings


def corruption_settings(dataset: str, names=None, severities=corruptions.SEVERITIES,
                        seeds: int = 1) -> tuple[list[Setting], dict[str, str]]:
  """(resampled + each available corruption x severity x seed, {unavailable name: why}); `names`
  None: every corruption of `dataset` in the MedMNIST-C registry."""
  registry = corruptions.corruptions_for(dataset, severities)
  known = list(dict.fromkeys(c.name for c in registry))
  unknown = sorted(set(names or ()) - set(known))
  if unknown:
    raise ValueError(f"no MedMNIST-C corruption {unknown} for {dataset}; it has {known}")
  chosen = [c for c in registry if names is None or c.name in names]
  skipped = {c.name: why for c in chosen if c.severity == chosen[0].severity
             and (why := corruptions.available(c)) is not None}
  settings = [Setting("corruption", None, seed, RESAMPLED) for seed in range(seeds)]
  settings += [Setting("corruption", c.severity, seed, c.name) for c in chosen if c.name not in skipped
               for seed in range(seeds)]
  return settings, skipped


def aggregate(results: list[tuple[Setting, dict, float]], skipped: dict[str, str] | None = None) -> list[dict]:
  """One row per (kind, setting): mean and sample std over seeds, the drop from the exact setting
  (exact minus this: positive = worse), evaluation seconds; a row with a note per skipped corruption."""
  groups: dict[tuple, list] = {}
  for setting, report, seconds in results:
    groups.setdefault((setting.kind, setting.label), []).append((report, seconds))
  exact = groups.get(("exact", ""), [({}, 0)])[0][0]
  rows = []
  for (kind, label), group in groups.items():
    aucs, accs = [r["auc"] for r, _ in group], [r["acc"] for r, _ in group]
    row = {"kind": kind, "setting": label, "n_seeds": len(group), "test_auc": float(np.mean(aucs)),
           "test_auc_std": float(np.std(aucs, ddof=1)) if len(aucs) > 1 else "",
           "test_acc": float(np.mean(accs)), "test_acc_std": float(np.std(accs, ddof=1)) if len(accs) > 1 else "",
           "eval_s": float(np.sum([s for _, s in group])), "note": ""}
    for metric in ("auc", "acc"):
      row[f"{metric}_drop"] = exact[metric] - row[f"test_{metric}"] if exact else ""
    rows.append(row)
  rows += [{"kind": "corruption", "setting": name, "n_seeds": 0, "note": f"skipped: {why}"}
           for name, why in (skipped or {}).items()]
  return rows


def write_csv(rows: list[dict], path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(rows)
  return path


def write_predictions(settings: list[Setting], outputs: list[dict], task: str, path: str) -> str:
  """Saves every setting's test logits: labels (N, L), index (N,), logits (R, N, K) float32, the
  R settings as JSON and the MedMNIST `task` (`load_predictions` reads it back), for paired
  comparisons between runs."""
  if any(not np.array_equal(o["index"], outputs[0]["index"]) for o in outputs):
    raise ValueError("every setting must predict the same examples in the same order")
  tmp = f"{path}.tmp.npz"
  np.savez_compressed(tmp, labels=outputs[0]["label"], index=outputs[0]["index"],
                      logits=np.stack([o["logits"] for o in outputs]).astype(np.float32),
                      settings=json.dumps([dataclasses.asdict(s) for s in settings]), task=task)
  os.replace(tmp, path)
  return path


@dataclasses.dataclass(frozen=True)
class Predictions:
  """A run's `robustness_predictions.npz`: R settings, labels (N, L), index (N,), logits (R, N, K)."""

  settings: list[Setting]
  labels: np.ndarray
  index: np.ndarray
  logits: np.ndarray
  task: str


def load_predictions(path: str) -> Predictions:
  """Reads what `write_predictions` wrote."""
  with np.load(path) as f:
    return Predictions([Setting(**s) for s in json.loads(str(f["settings"]))], f["labels"], f["index"],
                       f["logits"], str(f["task"]))


def plot_corruptions(rows: list[dict], path: str) -> str:
  """Test AUC against severity, one line per corruption; exact and resampled AUCs as lines."""
  fig = mpl_figure.Figure(figsize=(6.5, 4), layout="constrained")
  ax = fig.subplots()
  curves: dict[str, list] = {}
  for r in rows:
    if r["kind"] == "corruption" and r["n_seeds"] and "/" in r["setting"]:
      name, severity = r["setting"].rsplit("/", 1)
      curves.setdefault(name, []).append((int(severity), r["test_auc"]))
  for name, points in curves.items():
    ax.plot(*zip(*sorted(points)), marker="o", label=name)
  for kind, setting, style in (("exact", "", "--"), ("corruption", RESAMPLED, ":")):
    for r in rows:
      if (r["kind"], r["setting"]) == (kind, setting):
        ax.axhline(r["test_auc"], color="black", linestyle=style, linewidth=1, label=setting or kind)
  ax.set_xlabel("MedMNIST-C severity")
  ax.set_ylabel("test AUC")
  ax.set_xticks(corruptions.SEVERITIES)
  ax.legend(fontsize=7, ncol=2)
  return reports.save_figure(fig, path)


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
