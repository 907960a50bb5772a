"""Paired comparisons of two models trained with the same seeds: percentile bootstrap intervals.

Two intervals for the difference "model A minus model B" in test AUC and ACC:

* `seed_bootstrap`: resamples seeds. Each seed gives one paired difference; the interval is for
  the mean difference over training runs and reflects run-to-run (seed) variation only. With 3
  seeds there are just 10 distinct resamples, so this interval is coarse and optimistic.
* `example_bootstrap`: resamples test examples, the same resample for both models and every seed.
  On each resample every run's metric is recomputed, averaged over seeds per model, and the
  seed-averaged difference is taken. The interval reflects the sampling error of a finite test
  set for these trained models (how much the difference could change on another test set from
  the same distribution), keeping the pairing of the two models on each example; it does not
  cover seed variation beyond the seeds that were run.

Both use the percentile method on a `numpy.random.default_rng(seed)` stream, so the same inputs
and seed give the same interval.
"""

from collections.abc import Callable, Sequence
import dataclasses

import numpy as np

from qcnn_jax.evaluation import metrics

# Bootstrap weights are built in chunks of at most this many (resample, example) cells.
_CHUNK_CELLS = 1 << 22


@dataclasses.dataclass(frozen=True)
class Interval:
  """A point estimate of a difference with its bootstrap interval.

  Attributes:
    estimate: the difference on the original data (A minus B).
    low, high: percentile interval bounds.
    confidence: nominal coverage, e.g. 0.95.
    num_resamples: bootstrap resamples drawn.
    num_undefined: resamples where the statistic was undefined (NaN AUC: a class absent from the
      resample); they are left out of the percentiles.
  """
  estimate: float
  low: float
  high: float
  confidence: float
  num_resamples: int
  num_undefined: int = 0

  def contains(self, value: float) -> bool:
    return self.low <= value <= self.high

  def format(self, digits: int = 3) -> str:
    """E.g. "+0.012 [-0.004, +0.027]"."""
    return f"{self.estimate:+.{digits}f} [{self.low:+.{digits}f}, {self.high:+.{digits}f}]"


def _interval(estimate: float, samples: np.ndarray, confidence: float) -> Interval:
  """Percentile interval of bootstrap `samples` (B,), NaNs left out."""
  finite = samples[~np.isnan(samples)]
  tail = 50.0 * (1.0 - confidence)
  low, high = np.percentile(finite, [tail, 100.0 - tail]) if finite.size else (np.nan, np.nan)
  return Interval(float(estimate), float(low), float(high), confidence, int(samples.size),
                  int(samples.size - finite.size))


def seed_bootstrap(metric_a: Sequence[float], metric_b: Sequence[float], *, num_resamples: int = 10_000,
                   confidence: float = 0.95, seed: int = 0) -> Interval:
  """Interval for the mean paired difference of a per-seed metric (e.g. test AUC).

  Args:
    metric_a: (S,) metric of model A, one value per seed.
    metric_b: (S,) metric of model B for the same seeds in the same order.
    num_resamples: bootstrap resamples of the S seeds (with replacement).
    confidence: nominal coverage in (0, 1).
    seed: seed of the resampling.
  """
  diff = np.asarray(metric_a, np.float64) - np.asarray(metric_b, np.float64)
  if diff.ndim != 1 or diff.size == 0:
    raise ValueError(f"need two equal-length, non-empty 1-D sequences; got shapes {np.shape(metric_a)} "
                     f"and {np.shape(metric_b)}")
  picks = np.random.default_rng(seed).integers(0, diff.size, (num_resamples, diff.size))
  return _interval(diff.mean(), diff[picks].mean(axis=1), confidence)


def gate_effect(gate_on: Sequence[dict], gate_off: Sequence[dict], **bootstrap) -> dict:
  """What a residual head's gate g adds on test, over seeds: `gate_on` holds each seed's test_auc and
  test_acc (summary.json), `gate_off` the same seeds' residual_gate, test_auc_gate_off and
  test_acc_gate_off (`train.gate_off_report`).

  Returns:
    gate_min, gate_max (g over seeds), test_auc / test_auc_gate_off (seed means) and the
    `Interval`s "seed_auc", "seed_acc" of gate on − gate off (`seed_bootstrap` with `bootstrap`).
  """
  gates = [off["residual_gate"] for off in gate_off]
  effect = {"gate_min": min(gates), "gate_max": max(gates),
            "test_auc": float(np.mean([on["test_auc"] for on in gate_on])),
            "test_auc_gate_off": float(np.mean([off["test_auc_gate_off"] for off in gate_off]))}
  for key in ("auc", "acc"):
    effect[f"seed_{key}"] = seed_bootstrap([on[f"test_{key}"] for on in gate_on],
                                           [off[f"test_{key}_gate_off"] for off in gate_off], **bootstrap)
  return effect


def weighted_auc(targets: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """ROC AUC of one binary column under example weights, for many weightings at once.

  With integer weights (bootstrap counts) this equals scikit-learn's AUC of the resampled data;
  ties count one half, as in the Mann-Whitney statistic.

  Args:
    targets: (N,) 0/1 labels.
    scores: (N,) scores, higher = more positive.
    weights: (B, N) non-negative weights (or (N,)).

  Returns:
    (B,) AUCs (a scalar array for 1-D weights); NaN where the weighted data lack a class.
  """
  order = np.argsort(scores, kind="stable")
  sorted_scores, positive = scores[order], targets[order].astype(bool)
  w = np.atleast_2d(weights)[:, order]
  starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])  # tie groups
  pos = np.add.reduceat(w * positive, starts, axis=1)
  neg = np.add.reduceat(w * ~positive, starts, axis=1)
  below = np.cumsum(neg, axis=1) - neg  # negative weight strictly below each tie group
  pairs = pos.sum(axis=1) * neg.sum(axis=1)
  wins = (pos * (below + 0.5 * neg)).sum(axis=1)
  with np.errstate(invalid="ignore", divide="ignore"):
    auc = np.where(pairs > 0, wins / pairs, np.nan)
  return auc if np.ndim(weights) == 2 else auc[0]


def weighted_metrics(labels, scores, task: str, weights: np.ndarray) -> dict[str, np.ndarray]:
  """MedMNIST AUC and ACC (`qcnn_jax.evaluation.metrics` definitions) under example weights.

  Args:
    labels: (N, 1) int class labels, or (N, L) 0/1 for multi-label.
    scores: (N, K) scores as in predictions CSVs (`metrics.scores_from_logits`).
    task: MedMNIST task string.
    weights: (B, N) example weights, e.g. bootstrap counts.

  Returns:
    {"auc": (B,), "acc": (B,)}; with all-ones weights these equal `metrics.auc` and `metrics.acc`.
  """
  scores = np.asarray(scores, np.float64)
  targets = metrics.column_targets(labels, task, scores.shape[1])
  columns = [scores.shape[1] - 1] if task == metrics.BINARY else range(scores.shape[1])
  auc = np.mean([weighted_auc(targets[:, i], scores[:, i], weights) for i in columns], axis=0)
  predicted = metrics.predictions(scores, task)
  truth = np.asarray(labels).astype(np.int64)
  correct = (truth == predicted).mean(axis=1) if task == metrics.MULTI_LABEL else truth[:, 0] == predicted
  acc = weights @ correct.astype(np.float64) / weights.sum(axis=1)
  return {"auc": auc, "acc": acc}


def _bootstrap_weights(num_examples: int, num_resamples: int, rng: np.random.Generator):
  """Yields (b, N) count matrices of resamples with replacement, b summing to num_resamples."""
  chunk = max(1, _CHUNK_CELLS // num_examples)
  for start in range(0, num_resamples, chunk):
    size = min(chunk, num_resamples - start)
    picks = rng.integers(0, num_examples, (size, num_examples)) + num_examples * np.arange(size)[:, None]
    yield np.bincount(picks.ravel(), minlength=size * num_examples).reshape(size, num_examples).astype(np.float64)


def paired_bootstrap(labels, scores: Sequence[np.ndarray], statistic: Callable[[np.ndarray], np.ndarray], task: str, *,
                     num_resamples: int = 10_000, confidence: float = 0.95, seed: int = 0) -> dict[str, Interval]:
  """Paired bootstrap over test examples of a statistic of several runs' metrics.

  Every run is scored on the same resample of the test examples, so differences between runs keep
  their pairing (e.g. a model's drop under corruptions against another model's).

  Args:
    labels: (N, 1) or (N, L) test labels, rows aligned with every score matrix.
    scores: R score matrices (N, K), one per run (or per evaluation condition).
    statistic: maps the runs' metric values (R, B) on B resamples to the statistic (B,).
    task: MedMNIST task string.
    num_resamples: bootstrap resamples of the N examples.
    confidence: nominal coverage in (0, 1).
    seed: seed of the resampling.

  Returns:
    {"auc": Interval, "acc": Interval}.
  """
  labels = np.asarray(labels)
  num_examples = labels.shape[0]
  if not scores:
    raise ValueError("need at least one score matrix")
  if any(np.shape(s)[0] != num_examples for s in scores):
    raise ValueError(f"every score matrix needs {num_examples} rows, aligned with labels")

  def on(weights: np.ndarray) -> dict[str, np.ndarray]:
    per_run = [weighted_metrics(labels, s, task, weights) for s in scores]
    return {k: statistic(np.stack([m[k] for m in per_run])) for k in ("auc", "acc")}

  estimate = on(np.ones((1, num_examples)))
  chunks = [on(w) for w in _bootstrap_weights(num_examples, num_resamples, np.random.default_rng(seed))]
  return {k: _interval(estimate[k][0], np.concatenate([c[k] for c in chunks]), confidence)
          for k in ("auc", "acc")}


def example_bootstrap(labels, scores_a: Sequence[np.ndarray], scores_b: Sequence[np.ndarray], task: str, *,
                      num_resamples: int = 10_000, confidence: float = 0.95,
                      seed: int = 0) -> dict[str, Interval]:
  """Paired bootstrap over test examples of the seed-averaged difference A minus B.

  Args:
    labels: (N, 1) or (N, L) test labels, rows aligned with every score matrix.
    scores_a: S score matrices (N, K) of model A, one per seed.
    scores_b: S score matrices (N, K) of model B, same seeds (any order: only the seed means are
      compared, so A and B need not be paired by seed).
    task: MedMNIST task string.
    num_resamples: bootstrap resamples of the N examples.
    confidence: nominal coverage in (0, 1).
    seed: seed of the resampling.

  Returns:
    {"auc": Interval, "acc": Interval}.
  """
  if not scores_a or not scores_b:
    raise ValueError("need at least one score matrix per model")
  split = len(scores_a)
  return paired_bootstrap(labels, [*scores_a, *scores_b], lambda m: m[:split].mean(0) - m[split:].mean(0), task,
                          num_resamples=num_resamples, confidence=confidence, seed=seed)


def per_class_bootstrap(labels, scores, task: str, *, num_resamples: int = 2000, confidence: float = 0.95,
                        seed: int = 0) -> list[dict[str, Interval]]:
  """Bootstrap intervals over test examples of each score column's one-vs-rest AUC, recall
  (sensitivity) and precision, with MedMNIST's decision rules (`metrics.predictions`).

  Args:
    labels: (N, 1) int class labels, or (N, L) 0/1 for multi-label.
    scores: (N, K) scores (`metrics.scores_from_logits`): K = 2 for binary-class, C or L otherwise.
    task: MedMNIST task string.
    num_resamples, confidence, seed: as in `paired_bootstrap`.

  Returns:
    K dicts {"auc", "recall", "precision": Interval}; undefined resamples (a class absent, or never
    predicted) are left out of the percentiles and counted.
  """
  scores = np.asarray(scores, np.float64)
  num_examples, num_columns = scores.shape
  targets = metrics.column_targets(labels, task, num_columns).astype(np.float64)
  predicted = metrics.predictions(scores, task)
  if predicted.ndim == 1:
    predicted = predicted[:, None] == np.arange(num_columns)
  predicted = predicted.astype(np.float64)

  def on(weights: np.ndarray) -> dict[str, np.ndarray]:
    """(K, B) statistics under (B, N) weights."""
    hits = weights @ (targets * predicted)
    with np.errstate(invalid="ignore", divide="ignore"):
      return {"auc": np.stack([weighted_auc(targets[:, k], scores[:, k], weights) for k in range(num_columns)]),
              "recall": (hits / (weights @ targets)).T, "precision": (hits / (weights @ predicted)).T}

  estimate = on(np.ones((1, num_examples)))
  chunks = [on(w) for w in _bootstrap_weights(num_examples, num_resamples, np.random.default_rng(seed))]
  return [{k: _interval(estimate[k][c, 0], np.concatenate([chunk[k][c] for chunk in chunks]), confidence)
           for k in ("auc", "recall", "precision")} for c in range(num_columns)]
