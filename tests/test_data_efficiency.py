"""Data-efficiency study: stratified subsets, subset runs, paired report."""

import csv
import dataclasses

import ml_collections
import numpy as np
import pytest

from experiments.configs import data_efficiency as config_module
from qcnn_jax.studies import data_efficiency, frozen_heads
from qcnn_jax.training import frozen
from tests.test_heads import feature_set, head_config


def test_stratified_subsets_keep_each_class_share_and_differ_by_seed():
  labels = np.array([[0]] * 70 + [[1]] * 30)
  a, b = (frozen.stratified_subset(labels, 0.1, s) for s in (0, 1))
  assert len(a) == len(b) == 10 and np.sum(labels[a, 0] == 1) == 3 and np.sum(labels[b, 0] == 1) == 3
  assert not np.array_equal(a, b) and np.array_equal(a, frozen.stratified_subset(labels, 0.1, 0))
  tiny = frozen.stratified_subset(labels, 0.01, 0)  # every class keeps at least one example
  assert sorted(labels[tiny, 0]) == [0, 1]
  assert len(frozen.stratified_subset(labels, 1.0, 3)) == 100
  with pytest.raises(ValueError, match=r"in \(0, 1\]"):
    frozen.stratified_subset(labels, 0.0, 0)


def test_a_subset_run_equals_a_run_on_the_subset_alone():
  fs = feature_set()
  config = head_config(kind="quantum", bottleneck_norm=True, calibrate=False)  # no prior: nothing else differs
  subset = frozen.stratified_subset(fs.labels["train"], 0.5, 2)
  together = frozen.train_seeds(config, fs, [2, 2], subsets=[subset, np.arange(len(fs.labels["train"]))])
  alone_fs = dataclasses.replace(fs, features={**fs.features, "train": fs.features["train"][subset]},
                                 labels={**fs.labels, "train": fs.labels["train"][subset]})
  alone = frozen.train_seeds(config, alone_fs, [2])[0]
  assert together[0].records[0]["step"] == alone.records[0]["step"] == len(subset) // config.batch_size
  np.testing.assert_allclose(together[0].logits["test"], alone.logits["test"], atol=1e-5)
  assert not np.allclose(together[0].logits["test"], together[1].logits["test"], atol=1e-4)


def test_the_study_trains_every_fraction_and_reports_paired_differences(tmp_path):
  config = config_module.get_config()
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
