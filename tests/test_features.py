"""Feature export of a trained run: shapes, indices, and the run's own head reproduces its metrics."""

import json

import numpy as np
import pytest

from qcnn_jax.evaluation import metrics
from qcnn_jax.data import features as feature_files
from qcnn_jax.studies import features
from qcnn_jax.training import train
from test_train import SPLITS, synthetic_breast, tiny_config  # pylint: disable=unused-import  # fixture


@pytest.fixture(scope="module")
def resnet_run(tmp_path_factory, synthetic_breast):
  tmp_path = tmp_path_factory.mktemp("resnet")
  config = tiny_config(synthetic_breast, tmp_path / "tfds", model="resnet50",
                       model_options={"width": 4, "stem": "cifar"})
  workdir = tmp_path / "run"
  summary = train.train_and_evaluate(config, str(workdir))
  return workdir, summary


def test_exported_features_with_the_runs_own_head_give_its_test_metrics(resnet_run, tmp_path):
  workdir, summary = resnet_run
  fs = features.extract(str(workdir), str(tmp_path / "f.npz"))
  assert fs.dim == 8 * 4 * 4 and fs.task == metrics.BINARY and fs.meta["source_epoch"] == summary["best_epoch"]
  for split, n in SPLITS.items():
    assert fs.features[split].shape == (n, fs.dim) and fs.labels[split].shape == (n, 1)
    assert sorted(fs.index[split].tolist()) == list(range(n))
  kernel, bias = fs.fc
  logits = fs.features["test"] @ kernel + bias
  assert metrics.auc(fs.labels["test"], metrics.scores_from_logits(logits, fs.task), fs.task) == pytest.approx(
      summary["test_auc"], abs=1e-6)
  final = json.loads((workdir / "metrics_final.json").read_text())
  assert metrics.classification_report(fs.labels["val"], fs.features["val"] @ kernel + bias, fs.task)[
      "acc"] == pytest.approx(final["val"]["acc"])
  assert feature_files.load(str(tmp_path / "f.npz")).meta == fs.meta
  assert not any(isinstance(v, str) and v.startswith("/") for v in fs.meta.values())  # no machine path
  assert len(fs.meta["source_config_sha256"]) == 64


def test_a_model_without_a_resnet_is_refused(tmp_path, synthetic_breast):
  config = tiny_config(synthetic_breast, tmp_path / "tfds", model="qcnn", model_options={"n_qubits": 4})
  with pytest.raises(ValueError, match="no ResNet backbone"):
    features.backbone_module(config)
