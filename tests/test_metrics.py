"""qcnn_jax.evaluation.metrics against medmnist's own evaluator (medmnist 3.0.2, installed without torch)."""

import contextlib
import io
import json
import math

import numpy as np
import pytest
from sklearn import exceptions as sklearn_exceptions

from qcnn_jax.evaluation import metrics

with contextlib.redirect_stdout(io.StringIO()):  # medmnist prints a torch hint on import
  from medmnist import evaluator as mm_evaluator
  from medmnist.info import INFO

# (task, logits per example) as MedMNIST datasets use them.
TASK_SHAPES = [(metrics.BINARY, 1), (metrics.MULTI_CLASS, 9), (metrics.ORDINAL, 5), (metrics.MULTI_LABEL, 14)]


def _random_case(task, k, seed, n=64):
  """Random logits (N, k) and MedMNIST-style labels; logits include exact zeros (p = 0.5 ties)."""
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(n, k)) * 2.0
  logits[:4] = 0.0
  if task == metrics.MULTI_LABEL:
    labels = rng.integers(0, 2, size=(n, k))
  else:
    labels = rng.integers(0, max(k, 2), size=(n, 1))
    labels[: max(k, 2), 0] = np.arange(max(k, 2))  # every class present
  return logits, labels


def test_all_medmnist_tasks_are_known():
  assert {info["task"] for info in INFO.values()} <= set(metrics.TASKS)


@pytest.mark.parametrize("task,k", TASK_SHAPES)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_acc_equal_medmnist(task, k, seed):
  logits, labels = _random_case(task, k, seed)
  scores = metrics.scores_from_logits(logits, task)
  assert metrics.auc(labels, scores, task) == pytest.approx(mm_evaluator.getAUC(labels, scores, task), rel=1e-12)
  assert metrics.acc(labels, scores, task) == pytest.approx(mm_evaluator.getACC(labels, scores, task), rel=1e-12)
  assert metrics.acc(labels, scores, task, threshold=0.7) == pytest.approx(
      mm_evaluator.getACC(labels, scores, task, threshold=0.7), rel=1e-12)
  report = metrics.classification_report(labels, logits, task)
  assert report["auc"] == pytest.approx(mm_evaluator.getAUC(labels, scores, task), rel=1e-12)
  assert report["acc"] == pytest.approx(mm_evaluator.getACC(labels, scores, task), rel=1e-12)


def test_binary_accepts_positive_column_only():
  logits, labels = _random_case(metrics.BINARY, 1, 3)
  scores = metrics.scores_from_logits(logits, metrics.BINARY)
  assert metrics.auc(labels, scores[:, 1], metrics.BINARY) == metrics.auc(labels, scores, metrics.BINARY)
  assert metrics.acc(labels, scores[:, 1], metrics.BINARY) == metrics.acc(labels, scores, metrics.BINARY)


def test_scores_from_logits_shapes_and_values():
  logits = np.array([[0.0], [2.0], [-1.0]])
  scores = metrics.scores_from_logits(logits, metrics.BINARY)
  p = 1 / (1 + np.exp(-logits[:, 0]))
  np.testing.assert_allclose(scores, np.stack([1 - p, p], 1))
  multi = metrics.scores_from_logits(np.array([[1.0, 2.0, 3.0]]), metrics.MULTI_CLASS)
  np.testing.assert_allclose(multi, np.exp([[1.0, 2.0, 3.0]]) / np.exp([1.0, 2.0, 3.0]).sum())
  np.testing.assert_allclose(metrics.scores_from_logits(np.zeros((2, 3)), metrics.MULTI_LABEL), 0.5)
  with pytest.raises(ValueError, match="1 logit"):
    metrics.scores_from_logits(np.zeros((3, 2)), metrics.BINARY)
  with pytest.raises(ValueError, match="unknown task"):
    metrics.scores_from_logits(logits, "regression")


@pytest.mark.parametrize("task,k", TASK_SHAPES)
def test_absent_class_gives_nan_auc_like_medmnist(task, k):
  logits, labels = _random_case(task, k, 7)
  if task == metrics.MULTI_LABEL:
    labels[:, 0] = 0  # label 0 never positive
  elif task == metrics.BINARY:
    labels[:] = 1  # only positives
  else:
    labels[labels == k - 1] = 0  # last class never occurs
  scores = metrics.scores_from_logits(logits, task)
  with pytest.warns(sklearn_exceptions.UndefinedMetricWarning):
    ours = metrics.auc(labels, scores, task)
  with pytest.warns(sklearn_exceptions.UndefinedMetricWarning):
    theirs = mm_evaluator.getAUC(labels, scores, task)
  assert math.isnan(ours) and math.isnan(theirs)
  assert metrics.acc(labels, scores, task) == pytest.approx(mm_evaluator.getACC(labels, scores, task))
  report = metrics.classification_report(labels, logits, task)  # no warning escapes, NaN kept
  assert math.isnan(report["auc"])
  assert sum(math.isnan(a) for a in report["auc_per_class"]) == (2 if task == metrics.BINARY else 1)


def test_report_multi_class_by_hand():
  labels = np.array([[0], [0], [1], [1], [2], [2]])
  logits = np.log(np.array([[.8, .1, .1], [.1, .8, .1], [.1, .8, .1], [.1, .8, .1], [.1, .1, .8], [.8, .1, .1]]))
  report = metrics.classification_report(labels, logits, metrics.MULTI_CLASS, class_names=["a", "b", "c"])
  assert report["confusion_matrix"] == [[1, 1, 0], [0, 2, 0], [1, 0, 1]]
  np.testing.assert_allclose(report["precision"], [0.5, 2 / 3, 1.0])
  np.testing.assert_allclose(report["recall"], [0.5, 1.0, 0.5])
  np.testing.assert_allclose(report["f1"], [0.5, 0.8, 2 / 3])
  assert report["support"] == [2, 2, 2]
  assert report["acc"] == pytest.approx(4 / 6)
  assert report["balanced_accuracy"] == pytest.approx((0.5 + 1.0 + 0.5) / 3)
  assert report["f1_macro"] == pytest.approx((0.5 + 0.8 + 2 / 3) / 3)
  assert report["class_names"] == ["a", "b", "c"] and report["num_examples"] == 6
  assert json.loads(json.dumps(report)) == report


def test_report_binary_and_multi_label_by_hand():
  labels = np.array([[1], [1], [0], [0]])
  logits = np.array([[2.0], [-1.0], [-3.0], [0.5]])  # predictions 1, 0, 0, 1
  report = metrics.classification_report(labels, logits, metrics.BINARY, class_names=["normal", "pneumonia"])
  assert report["confusion_matrix"] == [[1, 1], [1, 1]]
  assert report["precision"] == [0.5, 0.5] and report["recall"] == [0.5, 0.5]
  assert report["auc"] == pytest.approx(0.75) and report["auc_per_class"][0] == report["auc_per_class"][1]

  ml_labels = np.array([[1, 0], [1, 1], [0, 0], [0, 1]])
  ml_logits = np.array([[1.0, -1.0], [-1.0, 1.0], [-1.0, 1.0], [1.0, 1.0]])  # predictions [1,0],[0,1],[0,1],[1,1]
  report = metrics.classification_report(ml_labels, ml_logits, metrics.MULTI_LABEL)
  assert report["confusion_matrix"] == [[[1, 1], [1, 1]], [[1, 1], [0, 2]]]
  np.testing.assert_allclose(report["precision"], [0.5, 2 / 3])
  np.testing.assert_allclose(report["recall"], [0.5, 1.0])
  assert report["support"] == [2, 2]
  assert report["acc"] == pytest.approx((0.5 + 0.75) / 2)
  assert report["balanced_accuracy"] == pytest.approx((0.5 + 0.75) / 2)
  assert json.loads(json.dumps(report)) == report


def test_report_rejects_wrong_number_of_class_names():
  with pytest.raises(ValueError, match="class names"):
    metrics.classification_report(np.array([[0], [1]]), np.zeros((2, 1)), metrics.BINARY, class_names=["only"])
