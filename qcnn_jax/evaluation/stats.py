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

Headline comparisons use `two_level_bootstrap`, which counts both sources at once: it resamples
the outer units (backbones when several are pooled, else seeds) and the test examples together,
and turns the bootstrap's standard error into a t interval with a small-n correction; `holm`
adjusts the decisions across the rows of one table.
"""

from collections.abc import Callable, Sequence
import dataclasses
import functools

import numpy as np
import scipy.stats

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


@dataclasses.dataclass(frozen=True, kw_only=True)
class TwoLevelInterval(Interval):
  """`two_level_bootstrap`'s t interval (low, high) with what it was built from.

  Attributes:
    se: standard error of the estimate (outer level + test set, see `two_level_bootstrap`).
    df: degrees of freedom of the t quantile (Satterthwaite; n − 1 when the outer level dominates).
    p_value: two-sided p of "difference = 0" from the same t (for `holm`).
    percentile_low, percentile_high: percentile interval of the plain two-level bootstrap (units
      and examples resampled together; kept for comparison).
    units: number of outer units n; unit_level: "backbones" or "seeds".
    examples: whether test examples were resampled.
  """
  se: float
  df: float
  p_value: float
  percentile_low: float
  percentile_high: float
  units: int
  unit_level: str
  examples: bool


def _units(scores_a, scores_b) -> tuple[list[list[int]], list, list, str]:
  """Runs flattened ([R] score matrices of A and B) and the outer units as lists of run indices:
  one unit per backbone when there are several, else one per seed."""
  if len(scores_a) != len(scores_b) or any(len(a) != len(b) for a, b in zip(scores_a, scores_b)):
    raise ValueError("A and B need the same backbones with the same number of paired seeds")
  flat_a, flat_b = [s for g in scores_a for s in g], [s for g in scores_b for s in g]
  starts = np.cumsum([0] + [len(g) for g in scores_a])
  if len(scores_a) > 1:
    return [list(range(starts[g], starts[g + 1])) for g in range(len(scores_a))], flat_a, flat_b, "backbones"
  return [[r] for r in range(len(flat_a))], flat_a, flat_b, "seeds"


def two_level_bootstrap(labels, scores_a: Sequence[Sequence[np.ndarray]], scores_b: Sequence[Sequence[np.ndarray]],
                        task: str, *, examples: bool = True, num_resamples: int = 10_000, confidence: float = 0.95,
                        seed: int = 0, metric: str = "auc") -> TwoLevelInterval:
  """Interval for the mean paired difference in test AUC (or ``metric`` "acc"), A minus B, counting
  the outer units (seeds, or backbones when several are pooled) and the test set's own sampling
  error together.

  The statistic is the mean over the n outer units of each unit's mean over its seeds of
  d = AUC_A(run) − AUC_B(run). Its variance has three parts (d = μ + α_unit + β_testset + γ_both):
  σ_α²/n + σ_β² + σ_γ²/n. The sample variance s_u² of the n unit values on the one test set
  estimates σ_α² + σ_γ²; a paired bootstrap of the test examples (one resample shared by every
  run of A and B, so both the A/B pairing on each example and the runs' shared test set are kept)
  gives the units' covariance matrix C over resamples, whose mean off-diagonal entry c estimates
  σ_β², the part every unit shares. Hence SE² = s_u²/n + max(c, 0) (`_shared_share`: why not
  resample both levels). Small n: a t interval (`_t_interval`). Resamples where an AUC is undefined
  (a class absent) are left out and counted. Random stream (`numpy.random.default_rng(seed)`): unit
  picks `integers(0, n, (B, n))` first, then the example resamples (`_bootstrap_weights`).

  Args:
    labels: (N, 1) or (N, L) test labels, rows aligned with every score matrix.
    scores_a: G backbones × S_g seeds of (N, K) score matrices of model A (G = 1: one backbone).
    scores_b: the same shape for model B, paired with A by position.
    task: MedMNIST task string.
    examples: count the test set's sampling error (False: seeds/backbones only).
    num_resamples, confidence, seed: bootstrap size, nominal coverage, resampling seed.
  """
  units, flat_a, flat_b, level = _units(scores_a, scores_b)
  n, labels = len(units), np.asarray(labels)
  if n < 2:
    raise ValueError(f"need at least 2 outer units (seeds or backbones), got {n}")
  if metric not in ("auc", "acc"):
    raise ValueError(f"metric {metric!r} not in ('auc', 'acc')")
  values_under = functools.partial(_unit_values, labels, task, flat_a, flat_b, units, metric)
  rng = np.random.default_rng(seed)
  picks = rng.integers(0, n, (num_resamples, n))
  u0 = values_under(np.ones((1, labels.shape[0])))[:, 0]
  estimate, unit_share = float(u0.mean()), float(u0.var(ddof=1) / n)
  if examples:
    values = np.concatenate([values_under(w) for w in _bootstrap_weights(labels.shape[0], num_resamples, rng)], axis=1)
    shared = _shared_share(values)
    samples = values[picks, np.arange(num_resamples)[:, None]].mean(axis=1)
  else:
    shared, samples = 0.0, u0[picks].mean(axis=1)
  se, df, half, p_value = _t_interval(estimate, unit_share, shared, n, confidence)
  percentile = _interval(estimate, samples, confidence)
  return TwoLevelInterval(estimate, estimate - half, estimate + half, confidence, num_resamples,
                          percentile.num_undefined, se=se, df=df, p_value=p_value,
                          percentile_low=percentile.low, percentile_high=percentile.high, units=n, unit_level=level,
                          examples=examples)


def _unit_values(labels, task: str, flat_a, flat_b, units, metric: str, weights: np.ndarray) -> np.ndarray:
  """(n, b) unit means of metric_A − metric_B ("auc" or "acc") under (b, N) example weights."""
  value = lambda s: weighted_metrics(labels, s, task, weights)[metric]
  diff = np.stack([value(a) - value(b) for a, b in zip(flat_a, flat_b)])
  return np.stack([diff[u].mean(axis=0) for u in units])


def _shared_share(values: np.ndarray) -> float:
  """The test-set variance every unit shares: the mean off-diagonal covariance of (n, b) unit values
  over the example resamples where all are defined (floored at 0).

  Resampling units and examples together instead (the plain two-level bootstrap, still drawn for its
  percentile interval) counts σ_γ²/n twice and shrinks the outer level by (n − 1)/n; with several
  backbones the seeds inside one are not resampled either, as its seed mean already carries their
  spread (Davison & Hinkley 1997, §3.8).
  """
  n = values.shape[0]
  defined = values[:, ~np.isnan(values).any(axis=0)]
  cov = np.cov(defined) if defined.shape[1] > 1 else np.full((n, n), np.nan)
  return max(0.0, float((cov.sum() - np.trace(cov)) / (n * (n - 1))))


def _t_interval(estimate: float, unit_share: float, shared: float, n: int, confidence: float):
  """(SE, Satterthwaite df, half width, two-sided p) of the t interval of `two_level_bootstrap`.

  The interval is estimate ± t_df · SE with Satterthwaite's df = (n − 1)·(SE² / (s_u²/n))²: only the
  outer share is estimated from few values (n − 1 df), the test-set share from N examples counts as
  known. Without test-set noise it is the classical paired t interval over units; when the test set
  dominates, df grows and it tends to a normal interval. A t interval rather than BCa: BCa corrects
  skewness, not the small-n variance bias that makes percentile intervals over 5–10 units too narrow.
  """
  se = float(np.sqrt(unit_share + shared))
  df = float((n - 1) * (se**2 / unit_share) ** 2) if unit_share > 0 else np.inf
  half = scipy.stats.t.ppf(0.5 + confidence / 2, df) * se
  p_value = float(2 * scipy.stats.t.sf(abs(estimate) / se, df)) if se > 0 else float(estimate == 0.0)
  return se, df, half, p_value


def holm(p_values: Sequence[float], alpha: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
  """Holm's step-down adjustment of m p-values of one table (family-wise error ≤ alpha).

  Returns:
    (adjusted p-values (m,), rejected (m,) bool: adjusted p ≤ alpha), in the input order.
  """
  p = np.asarray(p_values, np.float64)
  order = np.argsort(p, kind="stable")
  adjusted = np.empty_like(p)
  adjusted[order] = np.minimum(1.0, np.maximum.accumulate(p[order] * (p.size - np.arange(p.size))))
  return adjusted, adjusted <= alpha
