"""Data-efficiency study: stratified subsets, subset runs, paired report."""

import csv
import dataclasses
import json
import os

import ml_collections
import numpy as np
import pytest

from experiments.configs import data_efficiency as config_module
from experiments.configs import data_efficiency_width16 as width16_config
from qcnn_jax.data import pipeline
from qcnn_jax.studies import data_efficiency, frozen_heads
from qcnn_jax.training import frozen
from tests.test_heads import feature_set, head_config


def test_stratified_subsets_keep_each_class_share_differ_by_seed_and_nest():
  labels = np.array([[0]] * 70 + [[1]] * 30)
  for seed in (0, 1):  # one seed's subsets are nested: 1% ⊂ 10% ⊂ 50% ⊂ 100%
    sizes = [frozen.stratified_subset(labels, f, seed) for f in (0.01, 0.1, 0.5, 1.0)]
    assert all(set(a) < set(b) for a, b in zip(sizes, sizes[1:]))
  a, b = (frozen.stratified_subset(labels, 0.1, s) for s in (0, 1))
  assert len(a) == len(b) == 10 and np.sum(labels[a, 0] == 1) == 3 and np.sum(labels[b, 0] == 1) == 3
  assert not np.array_equal(a, b) and np.array_equal(a, frozen.stratified_subset(labels, 0.1, 0))
  tiny = frozen.stratified_subset(labels, 0.01, 0)  # every class keeps at least one example
  assert sorted(labels[tiny, 0]) == [0, 1]
  assert len(frozen.stratified_subset(labels, 1.0, 3)) == 100
  with pytest.raises(ValueError, match=r"in \(0, 1\]"):
    frozen.stratified_subset(labels, 0.0, 0)


def test_a_subset_run_equals_a_run_on_the_subset_alone():
  """With fit_on_subset, standardisation, prior and class weights come from the run's own subset, as
  they would from a training split that is that subset (without it they differ)."""
  fs = feature_set()
  config = head_config(kind="quantum", bottleneck_norm=True, calibrate=True)
  config.standardize, config.fit_on_subset, config.class_weights = True, True, "balanced"
  subset = frozen.stratified_subset(fs.labels["train"], 0.2, 2)
  together = frozen.train_seeds(config, fs, [2, 2], subsets=[subset, np.arange(len(fs.labels["train"]))])
  alone_fs = dataclasses.replace(fs, features={**fs.features, "train": fs.features["train"][subset]},
                                 labels={**fs.labels, "train": fs.labels["train"][subset]})
  alone = frozen.train_seeds(config, alone_fs, [2])[0]
  assert together[0].records[0]["step"] == alone.records[0]["step"] == len(subset) // config.batch_size
  np.testing.assert_allclose(together[0].logits["test"], alone.logits["test"], atol=1e-5)
  assert not np.allclose(together[0].logits["test"], together[1].logits["test"], atol=1e-4)
  config.fit_on_subset = False
  whole_split_fit = frozen.train_seeds(config, fs, [2], subsets=[subset])[0]
  assert not np.allclose(whole_split_fit.logits["test"], alone.logits["test"], atol=1e-4)


def test_a_round_of_min_steps_per_epoch_holds_whole_passes_over_the_subset():
  fs = feature_set()
  config = head_config(kind="linear")
  config.min_steps_per_epoch = 10
  subset = frozen.stratified_subset(fs.labels["train"], 0.25, 0)  # 24 examples: one step of 16 per pass
  run = frozen.train_seeds(config, fs, [0], subsets=[subset])[0]
  assert [r["step"] for r in run.records] == [10, 20, 30]
  whole = frozen.train_seeds(config, fs, [0])[0]  # 6 steps per pass: two passes per round
  assert [r["step"] for r in whole.records] == [12, 24, 36]


def test_the_width16_protocol_trains_every_fraction_and_reports_paired_differences(tmp_path):
  config = width16_config.get_config()
  config.study.features = ml_collections.ConfigDict({"breastmnist": feature_set().save(str(tmp_path / "f.npz"))})
  config.study.base.num_epochs, config.study.base.batch_size, config.study.base.head.n_qubits = 2, 16, 4
  config.study.lr_search.block, config.study.lr_search.head, config.study.lr_search.seeds = (1e-2, 3e-2), (1e-2,), (0,)
  config.study.seeds = (0, 1, 2)
  config.study.bootstrap.num_resamples = 200
  config.fractions = (0.25, 1.0)
  config.rates_root = str(tmp_path / "rates")
  root = str(tmp_path / "runs")
  with pytest.raises(FileNotFoundError, match="never searched"):  # the head study searches, not this one
    data_efficiency.train(config, root)
  for design in config.designs:
    frozen_heads.search_rates(config.study, config.rates_root, "breastmnist", design)
  # A second feature set whose rates were never searched: refused in training, left out of the report.
  config.study.features.pneumoniamnist = feature_set().save(str(tmp_path / "g.npz"))
  with pytest.raises(FileNotFoundError, match="never searched"):
    data_efficiency.train(config, root, datasets=["pneumoniamnist"])
  data_efficiency.train(config, root, datasets=["breastmnist"])
  md = data_efficiency.write_report(config, root, str(tmp_path / "out"))
  rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
  assert len(rows) == 2 * len(config.designs) and {r["n_seeds"] for r in rows} == {"3"}
  assert sorted({int(r["n_train"]) for r in rows}) == [24, 96]  # 25% of 96, stratified
  diffs = list(csv.DictReader(open(tmp_path / "out" / "differences.csv")))
  assert len(diffs) == 2 * len(config.comparisons)
  for d in diffs:
    a = [r for r in rows if r["model"] == d["a"] and r["train_fraction"] == d["train_fraction"]][0]
    b = [r for r in rows if r["model"] == d["b"] and r["train_fraction"] == d["train_fraction"]][0]
    assert float(d["delta_auc"]) == pytest.approx(float(a["test_auc_mean"]) - float(b["test_auc_mean"]), abs=1e-9)
    assert float(d["low"]) <= float(d["delta_auc"]) <= float(d["high"])
  assert (tmp_path / "out" / "data_efficiency.png").stat().st_size > 1000
  assert "## breastmnist" in open(md).read() and "pneumoniamnist" not in open(md).read()


def test_a_study_without_feature_files_says_so_instead_of_training_nothing(tmp_path):
  """train_heads used to exit 0 with nothing trained when no feature file existed."""
  features = ml_collections.ConfigDict({"breastmnist": str(tmp_path / "a.npz"), "retinamnist": str(tmp_path / "b.npz")})
  with pytest.raises(FileNotFoundError, match=r"a\.npz, .*b\.npz: nothing trained\. Make one with python -m "
                                              r"experiments\.extract_features"):
    frozen_heads.feature_sets(features)
  feature_set().save(features.breastmnist)
  assert frozen_heads.feature_sets(features) == ["breastmnist"]
  with pytest.raises(FileNotFoundError, match=r"b\.npz"):
    frozen_heads.feature_sets(features, ["retinamnist"])
  with pytest.raises(ValueError, match="not in the study"):
    frozen_heads.feature_sets(features, ["pathmnist"])


def test_the_study_searches_rates_per_fraction_and_gives_every_fraction_the_whole_splits_steps(tmp_path):
  config = config_module.get_config()
  config.study.features = ml_collections.ConfigDict({"breastmnist": feature_set().save(str(tmp_path / "f.npz"))})
  config.study.base.num_epochs, config.study.base.batch_size, config.study.base.head.n_qubits = 1, 64, 4
  config.study.lr_search.block, config.study.lr_search.head = (1e-2,), (1e-2, 3e-2)
  config.study.lr_search.seeds, config.study.lr_search.bounds, config.study.seeds = (0,), None, (0, 1)
  config.fractions = (0.25, 1.0)
  root = tmp_path / "runs"
  with pytest.raises(FileNotFoundError, match="run the families study"):
    data_efficiency.train(config, str(root / "none"))
  # The families study chose these on the whole split (a headline.csv as its report writes it).
  config.families_from = str(tmp_path / "families")
  os.makedirs(config.families_from)
  headline = [{"table": "headline", "features": "breastmnist", "design": config_module.QUANTUM, "other": "linear_std"},
              {"table": "own", "features": "breastmnist", "design": config_module.QUANTUM, "other": "linear_raw"}]
  with open(os.path.join(config.families_from, frozen_heads.HEADLINE_FILE), "w", encoding="utf-8") as f:
    f.write(frozen_heads.reports.csv_text(headline, frozen_heads.HEADLINE_COLUMNS))
  assert data_efficiency.plan(config, "breastmnist") == ([config_module.QUANTUM, "linear_std"],
                                                          [(config_module.QUANTUM, "linear_std")])
  data_efficiency.train(config, str(root))
  for design in (config_module.QUANTUM, "linear_std"):
    for fraction in ("f0.25", "f1"):
      assert (root / "breastmnist" / design / fraction / frozen_heads.LR_SEARCH_FILE).exists()
  steps = pipeline.steps_per_epoch(546, 64)  # BreastMNIST's published training split, batches of 64
  for fraction in ("f0.25", "f1"):
    run = root / "breastmnist" / "linear_std" / fraction / "seed1"
    recorded = json.loads((run / "config.json").read_text())
    assert recorded["fit_on_subset"] and recorded["min_steps_per_epoch"] == steps
    assert json.loads((run / "metrics.jsonl").read_text().splitlines()[0])["step"] >= steps
  md = data_efficiency.write_report(config, str(root), str(tmp_path / "out"))
  assert "searched on validation at each fraction" in open(md).read() and "| Δ vs linear |" in open(md).read()
  rows = list(csv.DictReader(open(tmp_path / "out" / "results.csv")))
  assert len(rows) == 4 and {r["n_seeds"] for r in rows} == {"2"}
