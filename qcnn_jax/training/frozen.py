"""Training heads on frozen features, S seeds at once: one `jax.vmap`-ed, `lax.scan`-ed program.

`train_seeds(config, feature_set, seeds, rates, subsets)` trains one head design
(`qcnn_jax.models.heads`) once per run — a seed, optionally with its own learning rate per role
and its own subset of the training split — with the loop of `qcnn_jax.training.train`: same optimizer
(`create_optimizer`: one rate per role, schedule, clipping), same loss (`class_weights` included),
same per-epoch data order (`pipeline.epoch_order(n, seed, epoch)`, last partial batch dropped),
same NaN guard, validation AUC after every epoch and the best-validation epoch's parameters kept
per run — but with the features on the device, each epoch one `lax.scan` over its steps and the
runs stacked on a leading axis under `jax.vmap`. Every update is linear in its base rate, so the
optimizer runs at unit rates and `train.scale_by_role` applies each run's own (a learning-rate
grid is one program). The program compiles once for all runs, and run k of a vmapped program
equals that run alone (tests/test_heads.py).

Per-epoch diagnostics (on the validation split, per seed): `saturated` (share of bottleneck units
with |tanh| > 0.99), `grad_norm_quantum` / `grad_norm_classical` (mean over the epoch's steps),
`angle_shift_rms` / `angle_shift_max` (how far the circuit angles moved from their initial
values, radians), `readout_min` / `readout_max` (range of the blocks' readout values), `residual_gate`
(g of a residual head), `val_loss` (unweighted loss on the selection split: what chooses among
heads on a saturated set, `studies.families`). summary.json has the reported epoch's `val_loss` and
`angle_shift`: mean |Δθ| (radians) of the circuit angles from their initial values, so that a
near-fixed circuit shows in the report (absent for heads without circuit angles). A residual head's
summary.json also has the reported epoch's gate and its test metrics with g set to 0
(`train.gate_off_entries`), as end-to-end runs have.
"""

import dataclasses
import json
import os
import time
from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from qcnn_jax.data import pipeline
from qcnn_jax.data.features import FeatureSet
from qcnn_jax.evaluation import metrics, provenance, reports
from qcnn_jax.models import heads
from qcnn_jax.training.diagnostics import (angle_shift, count_params, grad_norms, quantum_leaves, residual_gate,
                                           summarize_probe)
from qcnn_jax.training.optim import ROLES, base_rates, create_optimizer, role_labels, scale_by_role
from qcnn_jax.training.steps import check_finite, class_weights, keep_if_finite, per_example_loss
from qcnn_jax.training.train import class_names, gate_off_entries, improves


@dataclasses.dataclass
class SeedResult:
  """One seed's run: per-epoch records, selected epoch, reports and logits of val/test, timing, and
  for a residual head its gate and gate-off test metrics (`train.gate_off_report`'s entries)."""

  seed: int
  records: list[dict[str, Any]]
  best_epoch: int
  val_auc: float
  reports: dict[str, dict]
  logits: dict[str, np.ndarray]
  num_params: int
  quantum_params: int
  timing: dict[str, float]  # compile_s, train_s of the whole (all-seed) program
  rates: dict[str, float]  # base learning rate per optimiser role (`train.param_role`)
  gate_off: dict[str, float] = dataclasses.field(default_factory=dict)
  val_loss: float = float("nan")  # selection split's loss at best_epoch
  angle_shift: float | None = None  # mean |Δθ| (radians) of the circuit angles, best epoch vs init


def build_head(config: ml_collections.ConfigDict, feature_set: FeatureSet) -> heads.FeatureHead:
  """The head `config.head` describes, with the training split's prior logits."""
  options = {k: v for k, v in config.head.to_dict().items() if v is not None}
  prior = heads.prior_logits(feature_set.labels["train"], feature_set.task, feature_set.num_outputs)
  return heads.FeatureHead(feature_set.num_outputs, prior=prior, **options)


def stratified_subset(labels: np.ndarray, fraction: float, seed: int) -> np.ndarray:
  """Sorted indices of a stratified random subset of a training split: of each class (first label
  column) round(fraction · its count) examples, at least 1, the first ones of the class in an order
  drawn by numpy's PCG64 seeded by `seed`. The order does not depend on `fraction`, so one seed's
  subsets are nested (1% ⊂ 5% ⊂ …); the size per class depends only on `fraction`, so every seed's
  subset has the same length.

  Args:
    labels: (N, L) integer labels.
    fraction: in (0, 1].
    seed: subset seed (pair runs of different heads by giving them the same seed).
  """
  if not 0.0 < fraction <= 1.0:
    raise ValueError(f"train fraction must be in (0, 1], got {fraction}")
  column = np.asarray(labels)[:, 0]
  rng = np.random.default_rng([seed, 7919])
  picked = [rng.permutation(np.flatnonzero(column == c))[:max(1, round(fraction * np.sum(column == c)))]
            for c in np.unique(column)]
  return np.sort(np.concatenate(picked))


def _epoch_fn(head, tx, labels, task: str):
  """epoch(params, opt_state, order (steps, B), rates {role: ()}, fit index (), class weights or None,
  x (U, N, D), y) -> (params, opt_state, step metrics); `tx` has unit rates, the run's own are
  applied by `scale_by_role` (vmapped over runs)."""
  def loss_fn(params, x, y, weights):
    return per_example_loss(head.apply({"params": params}, x), y, task, weights).mean()

  def step(carry, idx):
    params, opt_state, rates, fit, weights, x_all, y_all = carry
    loss, grads = jax.value_and_grad(loss_fn)(params, x_all[fit, idx], y_all[idx], weights)
    def update():
      updates, new_opt = tx.update(grads, opt_state, params)
      return optax.apply_updates(params, scale_by_role(updates, labels, rates)), new_opt

    (params, opt_state), finite = keep_if_finite(loss, optax.global_norm(grads), update, (params, opt_state),
                                                 lambda new: new[0])
    return (params, opt_state, rates, fit, weights, x_all, y_all), {"loss": loss, "finite": finite,
                                                                    **grad_norms(grads)}

  def epoch(params, opt_state, order, rates, fit, weights, x, y):
    (params, opt_state, *_), out = jax.lax.scan(step, (params, opt_state, rates, fit, weights, x, y), order)
    return params, opt_state, out

  return epoch


def _forward_fn(head):
  """forward(params, fit index (), x (U, N, D)) -> (logits, per-example diagnostics `heads.probe_stats`)."""
  return lambda params, fit, x: heads.apply_probed(head, {"params": params}, x[fit])


def _diagnostics(probe: dict, params, init_params) -> list[dict[str, float]]:
  """Per-seed validation diagnostics (`heads.probe_stats`, averaged or ranged over examples) and
  circuit-angle shift from the initial values (host numpy), as `train.train_and_evaluate` records."""
  out = []
  for s in range(jax.tree.leaves(params)[0].shape[0]):
    trained, initial = (jax.tree.map(lambda p: p[s], tree) for tree in (params, init_params))
    record = summarize_probe({k: v[s] for k, v in probe.items()})
    record.update(angle_shift([a - b for a, b in zip(quantum_leaves(trained), quantum_leaves(initial))]))
    record.update(residual_gate(trained))
    out.append(record)
  return out


@dataclasses.dataclass
class _Fit:
  """What the runs fit on their training examples: every split's features standardised per distinct
  fit, {split: (U, N, D)} on the device, each run's fit index `which` (R,), and each run's prior
  logits (K,) and class weights (stacked over runs; None when unweighted)."""
  x: dict[str, Any]
  which: Any
  priors: list[tuple[float, ...]]
  weights: Any


def _fit(config, feature_set: FeatureSet, subsets) -> _Fit:
  """With `fit_on_subset`, each run's standardisation statistics (`standardize`), prior and class
  weights come from its own training subset; otherwise from the whole training split (U = 1)."""
  own, standardize = bool(config.get("fit_on_subset")), bool(config.get("standardize"))
  labels = feature_set.labels["train"]
  rows = [np.asarray(s) if own else None for s in subsets]
  keys = [tuple(r) if own and standardize else () for r in rows]
  fits = list(dict.fromkeys(keys))
  sets = [feature_set.standardized(np.asarray(k) if k else None) if standardize else feature_set for k in fits]
  x = {split: jnp.asarray(np.stack([s.features[split] for s in sets])) for split in feature_set.features}
  mine = [labels if r is None else labels[r] for r in rows]
  priors = [heads.prior_logits(y, feature_set.task, feature_set.num_outputs) for y in mine]
  weights = [class_weights(y, feature_set.task, feature_set.num_outputs, config.get("class_weights")) for y in mine]
  return _Fit(x, jnp.asarray([fits.index(k) for k in keys]), priors,
              None if weights[0] is None else jnp.asarray(np.stack(weights)))


def _orders(config, seeds, subsets, batch_size: int):
  """(orders(e) -> (R, steps, B) training-split indices of round e, steps per round): a round is
  ⌈min_steps_per_epoch / steps per pass⌉ whole passes over each run's subset (one without that key;
  `pipeline.epoch_order`, last partial batch dropped), so a small subset can get the optimiser steps
  of the whole split between two evaluations."""
  n = len(subsets[0])
  steps = pipeline.steps_per_epoch(n, batch_size)
  passes = max(1, -(-int(config.get("min_steps_per_epoch") or 0) // steps))
  orders = lambda e: jnp.asarray(np.stack([np.concatenate([
      subset[pipeline.epoch_order(n, s, e * passes + p)[:steps * batch_size]].reshape(steps, -1)
      for p in range(passes)]) for s, subset in zip(seeds, subsets)]))
  return orders, steps * passes


@dataclasses.dataclass
class _Program:
  """A compiled all-runs program: `epoch(params, opt_state, orders, rates, which, weights, x, y)`
  and `forward(params, which, x)` (vmapped over runs), the initial parameters and optimiser state
  (stacked), the per-role rates, the epoch data order, the compile time and the data on the device
  (`_Fit`, the training labels; moved there once, not every epoch)."""
  epoch: Any
  forward: Any
  params: Any
  opt_state: Any
  rates: dict
  orders: Any
  compile_s: float
  fit: _Fit
  y_train: Any


def _init(head, dim: int, seeds, priors):
  """(R, ...) stacked initial parameters: run r's from PRNGKey(seeds[r]) with its bias at priors[r]."""
  inits = {prior: jax.jit(lambda key, h=head.clone(prior=prior): h.init(key, jnp.zeros((1, dim)))["params"])
           for prior in dict.fromkeys(priors)}
  return jax.tree.map(lambda *p: jnp.stack(p), *[inits[p](jax.random.PRNGKey(s)) for s, p in zip(seeds, priors)])


def _compile(config, head, feature_set: FeatureSet, seeds, rates, subsets, selection: str) -> _Program:
  """Initialises every run's parameters, builds the unit-rate optimiser and compiles the programs."""
  fit, y_train = _fit(config, feature_set, subsets), jnp.asarray(feature_set.labels["train"])
  orders, steps = _orders(config, seeds, subsets, min(config.batch_size, len(subsets[0])))
  params = _init(head, feature_set.dim, seeds, fit.priors)
  single = jax.tree.map(lambda p: p[0], params)
  tx = create_optimizer(config, single, steps * config.num_epochs, rates=dict.fromkeys(ROLES, 1.0))
  opt_state = jax.vmap(tx.init)(params)
  run_rates = {role: jnp.asarray([r[role] for r in rates], jnp.float32) for role in ROLES}
  start = time.time()  # compiled ahead of time, so that compile_s is measured apart from training
  epoch_fn = _epoch_fn(head, tx, role_labels(single), feature_set.task)
  epoch = jax.jit(jax.vmap(epoch_fn, in_axes=(0, 0, 0, 0, 0, 0, None, None))).lower(
      params, opt_state, orders(0), run_rates, fit.which, fit.weights, fit.x["train"], y_train).compile()
  forward = jax.jit(jax.vmap(_forward_fn(head), in_axes=(0, 0, None))).lower(
      params, fit.which, fit.x[selection]).compile()
  return _Program(epoch, forward, params, opt_state, run_rates, orders, time.time() - start, fit, y_train)


def _epoch_records(program: _Program, params, out, feature_set: FeatureSet, selection: str, epoch: int,
                   init_params) -> list[dict]:
  """Each run's record of one epoch: train loss, AUC/ACC on the selection split, diagnostics."""
  task = feature_set.task
  logits, probe = jax.device_get(program.forward(params, program.fit.which, program.fit.x[selection]))
  diagnostics = _diagnostics(probe, jax.device_get(params), init_params)
  labels, steps = feature_set.labels[selection], out["loss"].shape[1]
  records = []
  for i, diag in enumerate(diagnostics):
    scores = metrics.scores_from_logits(logits[i], task)
    records.append({"epoch": epoch, "step": (epoch + 1) * steps, "train_loss": float(out["loss"][i].mean()),
                    f"{selection}_loss": float(per_example_loss(jnp.asarray(logits[i]), jnp.asarray(labels), task).mean()),
                    f"{selection}_auc": metrics.auc(labels, scores, task),
                    f"{selection}_acc": metrics.acc(labels, scores, task),
                    "grad_norm_quantum": float(out["grad_norm_quantum"][i].mean()),
                    "grad_norm_classical": float(out["grad_norm_classical"][i].mean()), **diag})
  return records


def train_seeds(config: ml_collections.ConfigDict, feature_set: FeatureSet, seeds: Sequence[int],
                rates: Sequence[dict[str, float]] | None = None,
                subsets: Sequence[np.ndarray] | None = None) -> list[SeedResult]:
  """Trains the head of `config` once per entry of `seeds` (with its `rates`) in one vmapped program.

  Args:
    config: head study run config (`experiments/configs/heads.py`): `head` (FeatureHead options),
      `standardize` (features standardised with the training split's statistics), optionally
      `fit_on_subset` (standardisation, prior logits and class weights from each run's own subset),
      `min_steps_per_epoch` (`_orders`) and `select_epoch_by` ("auc", default, or "loss": `_score`),
      and the optimisation keys of
      `experiments/configs/medmnist.py` (`class_weights` included).
    feature_set: frozen features (`qcnn_jax.data.features`) with a train split and, for selection,
      a val split (without one the last epoch is reported, as `train.improves` rules); test if any.
    seeds: training seed of each run (parameter initialisation and data order); may repeat.
    rates: base learning rate per role (`train.ROLES`) of each run; default `train.base_rates(config)`
      for every run. Runs differing only in rates form a learning-rate search.
    subsets: training examples of each run (indices into the training split, all of one length n;
      `stratified_subset`); default the whole split. The batch size is then min(batch_size, n).

  Returns:
    One SeedResult per run, in the order of `seeds`.
  """
  rates = list(rates) if rates is not None else [base_rates(config)] * len(seeds)
  subsets = ([np.arange(len(feature_set.labels["train"]))] * len(seeds) if subsets is None
             else [np.asarray(i) for i in subsets])
  selection = "val" if "val" in feature_set.features else "train"
  head = build_head(config, feature_set)
  program = _compile(config, head, feature_set, seeds, rates, subsets, selection)
  params, opt_state, init_params = program.params, program.opt_state, jax.device_get(program.params)
  best = {"score": np.full(len(seeds), -np.inf), "epoch": np.full(len(seeds), -1), "params": init_params}
  by_loss = config.get("select_epoch_by") == "loss"
  records: list[list[dict]] = [[] for _ in seeds]
  start = time.time()
  for e in range(config.num_epochs):
    params, opt_state, out = program.epoch(params, opt_state, program.orders(e), program.rates, program.fit.which,
                                           program.fit.weights, program.fit.x["train"], program.y_train)
    out = jax.device_get(out)
    for i in range(len(seeds)):
      check_finite(out["finite"][i], e * out["finite"].shape[1] + 1)
    host_params = jax.device_get(params)
    for i, record in enumerate(_epoch_records(program, params, out, feature_set, selection, e, init_params)):
      records[i].append(record)
      score = _score(record, selection, by_loss)
      if improves(score, best["score"][i], selection):
        best["score"][i], best["epoch"][i] = score, e
        best["params"] = jax.tree.map(lambda b, p: _set_row(b, i, p[i]), best["params"], host_params)
  return _results(head, feature_set, program.fit, seeds, rates, best, records, init_params, selection,
                  {"compile_s": program.compile_s, "train_s": time.time() - start})


def _score(record: dict, selection: str, by_loss: bool) -> float:
  """What chooses the reported epoch (higher is better): the selection split's AUC, or with
  `select_epoch_by: "loss"` (for a saturated validation split, where AUC cannot rank epochs) its
  negated loss."""
  return -record[f"{selection}_loss"] if by_loss else record[f"{selection}_auc"]


def _set_row(array: np.ndarray, i: int, row: np.ndarray) -> np.ndarray:
  array = np.array(array, copy=True)
  array[i] = row
  return array


def mean_angle_shift(params, init_params) -> float | None:
  """Mean |Δθ| (radians) of the circuit angles (`quantum_leaves`) between two parameter trees of
  one run; None without circuit angles."""
  shifts = [np.ravel(a - b) for a, b in zip(quantum_leaves(params), quantum_leaves(init_params))]
  return float(np.mean(np.abs(np.concatenate(shifts)))) if shifts else None


def _results(head, feature_set: FeatureSet, fit: _Fit, seeds, rates, best, records, init_params, selection: str,
             timing: dict[str, float]) -> list[SeedResult]:
  """Reports of the best-validation parameters of every seed on val and test (and on test with the
  residual gate at 0, for a residual head), with the best epoch's selection loss and angle shift."""
  apply = jax.jit(jax.vmap(lambda p, i, x: head.apply({"params": p}, x[i]), in_axes=(0, 0, None)))
  logits = {split: np.asarray(apply(best["params"], fit.which, fit.x[split]))
            for split in ("val", "test") if split in feature_set.features}
  test_off = (np.asarray(apply(heads.gate_off(best["params"]), fit.which, fit.x["test"]))
              if "test" in logits and residual_gate(jax.tree.map(lambda p: p[0], best["params"])) else None)
  names = class_names(feature_set.meta["label_names"], feature_set.task)
  report = lambda split, x: metrics.classification_report(feature_set.labels[split], x, feature_set.task, names)
  results = []
  for i, seed in enumerate(seeds):
    one = jax.tree.map(lambda p: p[i], best["params"])
    num_params, quantum_params = count_params(one)
    split_reports = {split: report(split, logits[split][i]) for split in logits}
    gate_off = {} if test_off is None else gate_off_entries(one, report("test", test_off[i]))
    results.append(SeedResult(int(seed), records[i], int(best["epoch"][i]),
                              records[i][int(best["epoch"][i])][f"{selection}_auc"], split_reports,
                              {split: logits[split][i] for split in logits}, num_params, quantum_params, timing,
                              dict(rates[i]), gate_off, records[i][int(best["epoch"][i])][f"{selection}_loss"],
                              mean_angle_shift(one, jax.tree.map(lambda p: p[i], init_params))))
  return results


def record_config(config: ml_collections.ConfigDict, seed: int, rates: dict[str, float]) -> dict[str, Any]:
  """The config.json of one run: the study's run config with the run's seed and base learning rates
  (`learning_rate` for the "rest" role, `block_learning_rate` for the "block" role)."""
  run_config = config.to_dict()
  run_config["seed"] = seed
  run_config["learning_rate"], run_config["block_learning_rate"] = rates["rest"], rates["block"]
  return run_config


def write_run(result: SeedResult, workdir: str, config: ml_collections.ConfigDict, feature_set: FeatureSet,
              wall_time_s: float, **extra) -> str:
  """Writes one seed's run like `qcnn_jax.training.train` does: config.json, metrics.jsonl, metrics_final.json,
  val/test predictions (MedMNIST CSVs) and summary.json (last, so its presence means finished; with
  the `extra` entries)."""
  os.makedirs(workdir, exist_ok=True)
  run_config = record_config(config, result.seed, result.rates)
  reports.write_json_atomic(os.path.join(workdir, "config.json"), run_config)
  reports.write_text_atomic(os.path.join(workdir, "metrics.jsonl"),
                            "".join(json.dumps(reports.to_jsonable(r)) + "\n" for r in result.records))
  reports.write_json_atomic(os.path.join(workdir, "metrics_final.json"), result.reports)
  flag = feature_set.meta["dataset"].replace("_", "")
  for split, report in result.reports.items():
    scores = metrics.scores_from_logits(result.logits[split], feature_set.task)
    reports.write_predictions_csv(os.path.join(workdir, "predictions"), flag, split, feature_set.index[split],
                                  scores, auc=report["auc"], acc=report["acc"],
                                  run=f"{config.design}-seed{result.seed}", size=feature_set.meta.get("size"))
  test = result.reports["test"]
  reports.write_summary(
      workdir, test_auc=test["auc"], test_acc=test["acc"], val_auc=result.val_auc, best_epoch=result.best_epoch + 1,
      num_params=result.num_params, quantum_params=result.quantum_params,
      n_qubits=config.head.n_qubits if config.head.kind in ("quantum", "product") else 0,
      wall_time_s=wall_time_s, images_per_s=float("nan"), dataset=feature_set.meta["dataset"], model=config.design,
      kind=config.head.kind, seed=result.seed, num_epochs=config.num_epochs, selection_split="val", **result.timing,
      lr_block=result.rates["block"], lr_head=result.rates["rest"], val_loss=result.val_loss,
      **({} if result.angle_shift is None else {"angle_shift": result.angle_shift}),
      features=feature_set.meta, **{f"test_{k}": test[k] for k in ("precision_macro", "recall_macro", "f1_macro",
                                                                    "balanced_accuracy")},
      **result.gate_off, **extra, provenance=provenance.provenance(run_config))
  return workdir
