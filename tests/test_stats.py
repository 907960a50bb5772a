"""Bootstrap intervals of paired model differences, and the published-results table."""

import numpy as np
import pytest
from sklearn import metrics as sklearn_metrics

from qcnn_jax.evaluation import metrics, stats
from qcnn_jax.studies import published


def test_weighted_auc_matches_sklearn_on_resampled_data_with_ties():
  rng = np.random.default_rng(0)
  targets = rng.integers(0, 2, 200)
  scores = np.round(rng.normal(targets, 1.0), 1)  # many ties
  picks = rng.integers(0, 200, (5, 200))
  counts = np.stack([np.bincount(p, minlength=200) for p in picks]).astype(float)
  expected = [sklearn_metrics.roc_auc_score(targets[p], scores[p]) for p in picks]
  np.testing.assert_allclose(stats.weighted_auc(targets, scores, counts), expected, rtol=1e-12)


@pytest.mark.parametrize("task,num_outputs", [(metrics.BINARY, 1), (metrics.MULTI_CLASS, 4),
                                              (metrics.MULTI_LABEL, 3)])
def test_weighted_metrics_with_unit_weights_equal_medmnist_metrics(task, num_outputs):
  rng = np.random.default_rng(1)
  if task == metrics.MULTI_LABEL:
    labels = rng.integers(0, 2, (150, num_outputs))
    logits = rng.normal(size=(150, num_outputs)) + labels
  else:
    labels = rng.integers(0, max(num_outputs, 2), (150, 1))
    logits = rng.normal(size=(150, num_outputs)) + (labels if num_outputs == 1 else np.eye(num_outputs)[labels[:, 0]])
  scores = metrics.scores_from_logits(logits, task)
  got = stats.weighted_metrics(labels, scores, task, np.ones((1, 150)))
  assert got["auc"][0] == pytest.approx(metrics.auc(labels, scores, task))
  assert got["acc"][0] == pytest.approx(metrics.acc(labels, scores, task))


def binary_runs(rng, labels: np.ndarray, separation: float, seeds: int = 3) -> list[np.ndarray]:
  """Per-seed binary scores (n, 2) for `labels` (n, 1) whose AUC grows with `separation`."""
  return [metrics.scores_from_logits(rng.normal(size=labels.shape) + separation * (2 * labels - 1), metrics.BINARY)
          for _ in range(seeds)]


def test_example_bootstrap_covers_the_true_difference_and_is_deterministic():
  rng = np.random.default_rng(2)
  labels = rng.integers(0, 2, (400, 1))
  strong, weak = binary_runs(rng, labels, 1.5), binary_runs(rng, labels, 0.5)
  # True AUC difference of the two score models: Phi(2 * sep / sqrt(2)) for unit-variance noise.
  true_diff = 0.9831 - 0.7602
  first = stats.example_bootstrap(labels, strong, weak, metrics.BINARY, num_resamples=2000, seed=7)
  again = stats.example_bootstrap(labels, strong, weak, metrics.BINARY, num_resamples=2000, seed=7)
  other = stats.example_bootstrap(labels, strong, weak, metrics.BINARY, num_resamples=2000, seed=8)
  assert first == again
  assert first["auc"] != other["auc"]
  assert first["auc"].contains(true_diff) and first["auc"].low > 0
  assert first["acc"].low > 0 and first["auc"].num_resamples == 2000 and first["auc"].num_undefined == 0


def test_example_bootstrap_narrows_with_more_test_examples_and_is_zero_for_identical_models():
  rng = np.random.default_rng(3)
  widths = []
  for n in (100, 1600):
    labels = rng.integers(0, 2, (n, 1))
    a, b = binary_runs(rng, labels, 1.0), binary_runs(rng, labels, 1.0)
    auc = stats.example_bootstrap(labels, a, b, metrics.BINARY, num_resamples=1000)["auc"]
    widths.append(auc.high - auc.low)
    assert auc.contains(0.0)  # equally good models
  assert widths[1] < widths[0] / 2.5  # ~1/sqrt(n): 4x narrower expected
  identical = stats.example_bootstrap(labels, a, a, metrics.BINARY, num_resamples=200)
  assert (identical["auc"].low, identical["auc"].high) == (0.0, 0.0)


def test_seed_bootstrap_interval_tracks_the_spread_over_seeds():
  tight = stats.seed_bootstrap([0.90, 0.91, 0.92], [0.80, 0.81, 0.82], num_resamples=5000)
  loose = stats.seed_bootstrap([0.99, 0.80, 0.95], [0.80, 0.85, 0.80], num_resamples=5000)
  assert tight.estimate == pytest.approx(0.10) and tight.low == pytest.approx(0.10)
  assert tight.high == pytest.approx(0.10)
  assert loose.low < 0 < loose.high and loose.contains(loose.estimate)
  assert stats.seed_bootstrap([0.99, 0.80, 0.95], [0.80, 0.85, 0.80], num_resamples=5000) == loose
  with pytest.raises(ValueError):
    stats.seed_bootstrap([], [])


def test_published_table_has_every_2d_dataset_and_the_anchor_values():
  rows = {(r.dataset, r.method): r for r in published.all_results()}
  for flag in ("pathmnist", "chestmnist", "dermamnist", "octmnist", "pneumoniamnist", "retinamnist",
               "breastmnist", "bloodmnist", "tissuemnist", "organamnist", "organcmnist", "organsmnist"):
    assert {m for d, m in rows if d == flag} == {"ResNet-18 (28)", "ResNet-18 (224)", "ResNet-50 (28)",
                                                 "ResNet-50 (224)", "auto-sklearn", "AutoKeras",
                                                 "Google AutoML Vision"}
  anchors = {("breastmnist", "ResNet-50 (28)"): (0.857, 0.812), ("breastmnist", "ResNet-18 (28)"): (0.901, 0.863),
             ("retinamnist", "ResNet-50 (28)"): (0.726, 0.528), ("pneumoniamnist", "ResNet-50 (28)"): (0.948, 0.854),
             ("pathmnist", "ResNet-18 (28)"): (0.983, 0.907)}
  for key, (auc, acc) in anchors.items():
    assert (rows[key].test_auc, rows[key].test_acc) == (auc, acc)
  assert [(r.method, r.test_acc) for r in published.published("medical_mnist")] == [
      ("MQCNN", 0.996), ("ResNet-50", 0.989), ("QCNN", 0.975)]
  for row in rows.values():
    assert row.source in published.sources()
    assert all(v is None or 0 < v <= 1 for v in (row.test_auc, row.test_acc))
  medmnist_cells = [(r.test_auc, r.test_acc) for r in rows.values() if r.source == "medmnist_v2"]
  assert len(medmnist_cells) == 84 and None not in {v for cell in medmnist_cells for v in cell}  # Table 3 is complete


def test_paired_bootstrap_of_a_difference_of_differences():
  rng = np.random.default_rng(3)
  labels = rng.integers(0, 2, (300, 1))
  clean_a, *corrupted_a = binary_runs(rng, labels, 1.5, seeds=3)
  clean_b, *corrupted_b = binary_runs(rng, labels, 1.0, seeds=3)
  drop = lambda m: m[0] - m[1:].mean(0)
  got = stats.paired_bootstrap(labels, [clean_a, *corrupted_a, clean_b, *corrupted_b],
                               lambda m: drop(m[:3]) - drop(m[3:]), metrics.BINARY, num_resamples=500, seed=4)
  auc = lambda s: metrics.auc(labels, s, metrics.BINARY)
  expected = (auc(clean_a) - np.mean([auc(s) for s in corrupted_a])) - (auc(clean_b) - np.mean([auc(s) for s in corrupted_b]))
  assert got["auc"].estimate == pytest.approx(expected, abs=1e-12)
  assert got["auc"].low < got["auc"].estimate < got["auc"].high
  # Two runs reduce to example_bootstrap with one seed each (the same resamples for the same seed).
  pair = stats.paired_bootstrap(labels, [clean_a, clean_b], lambda m: m[0] - m[1], metrics.BINARY, num_resamples=500,
                                seed=4)
  single = stats.example_bootstrap(labels, [clean_a], [clean_b], metrics.BINARY, num_resamples=500, seed=4)
  assert (pair["auc"].low, pair["auc"].high) == (single["auc"].low, single["auc"].high)


def _reference_two_level(labels, scores_a, scores_b, num_resamples, seed, confidence=0.95):
  """`stats.two_level_bootstrap` written out with loops and scikit-learn's AUC on resampled rows."""
  import scipy.stats  # pylint: disable=g-import-not-at-top
  y = labels[:, 0]

  def auc(scores, rows):
    if scores.shape[1] == 2:
      return sklearn_metrics.roc_auc_score(y[rows], scores[rows, 1])
    return np.mean([sklearn_metrics.roc_auc_score(y[rows] == c, scores[rows, c]) for c in range(scores.shape[1])])

  if len(scores_a) > 1:
    units = [list(zip(a, b)) for a, b in zip(scores_a, scores_b)]
  else:
    units = [[pair] for pair in zip(scores_a[0], scores_b[0])]
  n, num_examples = len(units), len(y)
  rng = np.random.default_rng(seed)
  picks = rng.integers(0, n, (num_resamples, n))
  rows = rng.integers(0, num_examples, (num_resamples, num_examples))
  value = lambda unit, r: np.mean([auc(a, r) - auc(b, r) for a, b in unit])
  u0 = np.array([value(u, np.arange(num_examples)) for u in units])
  resampled = np.array([[value(u, rows[b]) for b in range(num_resamples)] for u in units])  # (n, B)
  centred = resampled - resampled.mean(axis=1, keepdims=True)
  offdiag = [np.sum(centred[i] * centred[j]) / (num_resamples - 1) for i in range(n) for j in range(n) if i != j]
  unit_share = np.var(u0, ddof=1) / n
  se = np.sqrt(unit_share + max(0.0, np.mean(offdiag)))
  df = (n - 1) * (se**2 / unit_share) ** 2
  half = scipy.stats.t.ppf(0.5 + confidence / 2, df) * se
  joint = [np.mean([resampled[picks[b, j], b] for j in range(n)]) for b in range(num_resamples)]
  return u0.mean(), se, df, u0.mean() - half, u0.mean() + half, np.percentile(joint, [2.5, 97.5])


@pytest.mark.parametrize("backbones,seeds,classes", [(2, 3, 2), (1, 4, 3)])
def test_two_level_bootstrap_equals_a_slow_reference(backbones, seeds, classes):
  rng = np.random.default_rng(5)
  labels = rng.integers(0, classes, (40, 1))
  onehot = np.eye(classes)[labels[:, 0]]
  task = metrics.BINARY if classes == 2 else metrics.MULTI_CLASS
  runs = lambda sep: [[metrics.scores_from_logits(sep * onehot + rng.normal(size=onehot.shape), metrics.MULTI_CLASS)
                       for _ in range(seeds)] for _ in range(backbones)]
  a, b = runs(1.5), runs(1.0)
  got = stats.two_level_bootstrap(labels, a, b, task, num_resamples=60, seed=3)
  estimate, se, df, low, high, percentile = _reference_two_level(labels, a, b, 60, 3)
  assert got.unit_level == ("backbones" if backbones > 1 else "seeds") and got.units == (backbones if backbones > 1 else seeds)
  np.testing.assert_allclose([got.estimate, got.se, got.df, got.low, got.high], [estimate, se, df, low, high],
                             rtol=1e-9)
  np.testing.assert_allclose([got.percentile_low, got.percentile_high], percentile, rtol=1e-9)
  assert got.low < got.estimate < got.high and 0 < got.p_value < 1
  acc = stats.two_level_bootstrap(labels, a, b, task, num_resamples=60, seed=3, metric="acc")
  score = lambda runs: np.mean([np.mean([metrics.acc(labels, s, task) for s in g]) for g in runs])
  assert acc.estimate == pytest.approx(score(a) - score(b)) and acc.estimate != got.estimate
  with pytest.raises(ValueError, match="metric 'f1'"):
    stats.two_level_bootstrap(labels, a, b, task, metric="f1")


def _simulated_comparison(rng, *, shared: float, n_test: int = 100, seeds: int = 5, tau: float = 0.1):
  """Labels, A and B runs (1 backbone × `seeds`) and the true mean ΔAUC of a binormal model.

  A run's logit = sep·y + h + e: sep ~ N(μ, τ²) per run (seed variation), h ~ N(0, shared²) per
  test example and model, shared by all its seeds (the test set's own noise), e ~ N(0, 1) per run
  and example. Population AUC of a run: Φ(sep / sqrt(2(1 + shared²))); averaged over sep:
  Φ(μ / sqrt(2(1 + shared²) + τ²)).
  """
  import scipy.stats  # pylint: disable=g-import-not-at-top
  labels = rng.integers(0, 2, (n_test, 1))
  runs, truth = [], []
  for mu in (1.2, 1.0):
    h = shared * rng.normal(size=(n_test, 1))
    runs.append([[metrics.scores_from_logits((mu + tau * rng.normal()) * labels + h + rng.normal(size=(n_test, 1)),
                                             metrics.BINARY) for _ in range(seeds)]])
    truth.append(scipy.stats.norm.cdf(mu / np.sqrt(2 * (1 + shared**2) + tau**2)))
  return labels, runs[0], runs[1], truth[0] - truth[1]


def test_two_level_intervals_cover_the_truth_and_seeds_only_intervals_miss_the_test_sets_noise():
  rng = np.random.default_rng(11)
  covered, widths = {True: [], False: []}, {True: [], False: []}
  for repeat in range(200):
    labels, a, b, truth = _simulated_comparison(rng, shared=0.8)
    for examples in (True, False):
      interval = stats.two_level_bootstrap(labels, a, b, metrics.BINARY, examples=examples, num_resamples=200,
                                           seed=repeat)
      covered[examples].append(interval.contains(truth))
      widths[examples].append(interval.high - interval.low)
  assert 0.90 <= np.mean(covered[True]) <= 0.99  # nominal 0.95; binomial sd over 200 repeats 0.015
  assert np.mean(covered[False]) < 0.85  # seeds only: blind to the shared test set
  assert np.mean(widths[False]) < 0.8 * np.mean(widths[True])
  # Not every repeat: where the test set adds little, its share raises Satterthwaite's df, and
  # t_df·SE can fall just below t_(n−1)·SE_seeds.
  assert np.mean(np.less(widths[False], widths[True])) > 0.9


def test_with_few_seeds_the_t_interval_covers_where_the_percentile_interval_is_too_narrow():
  rng = np.random.default_rng(12)
  t_covered, percentile_covered = [], []
  for repeat in range(200):  # no shared test-set noise: seed variation only, 5 seeds
    labels, a, b, truth = _simulated_comparison(rng, shared=0.0, n_test=60, tau=0.3)
    interval = stats.two_level_bootstrap(labels, a, b, metrics.BINARY, examples=False, num_resamples=400,
                                         seed=repeat)
    t_covered.append(interval.contains(truth))
    percentile_covered.append(interval.percentile_low <= truth <= interval.percentile_high)
    assert interval.df == pytest.approx(4.0)  # the classical paired t over 5 seeds
  assert 0.90 <= np.mean(t_covered) <= 0.99 and np.mean(percentile_covered) < 0.89


def test_holm_adjusts_step_down_and_keeps_the_input_order():
  adjusted, rejected = stats.holm([0.01, 0.04, 0.03, 0.005])
  # Sorted 0.005·4, 0.01·3, 0.03·2, 0.04·1 -> 0.02, 0.03, 0.06, max(0.04, 0.06).
  np.testing.assert_allclose(adjusted, [0.03, 0.06, 0.06, 0.02])
  assert rejected.tolist() == [True, False, False, True]
  assert stats.holm([0.3, 0.9])[0].tolist() == [0.6, 0.9] and stats.holm([0.7, 0.9])[0].tolist() == [1.0, 1.0]
