"""MedMNIST evaluation metrics: AUC and ACC as MedMNIST defines them, plus per-class reports.

Tasks are MedMNIST's ``INFO[flag]["task"]`` strings. Models output logits:

  ``"binary-class"``               1 logit (sigmoid); labels (N, 1) in {0, 1}.
  ``"multi-class"``                C logits (softmax); labels (N, 1) in [0, C).
  ``"ordinal-regression"``         treated exactly like ``"multi-class"``.
  ``"multi-label, binary-class"``  L logits (sigmoid); labels (N, L) in {0, 1}.

``auc`` and ``acc`` reproduce ``medmnist.evaluator.getAUC``/``getACC`` (medmnist 3.0.2) without
importing medmnist. Where a class (or label) never occurs in ``labels`` its one-vs-rest AUC is
undefined: scikit-learn warns and returns NaN, so the mean AUC is NaN, as in MedMNIST.
"""

from collections.abc import Sequence
import warnings

import numpy as np
import scipy.special
from sklearn import exceptions as sklearn_exceptions
from sklearn import metrics as sklearn_metrics

BINARY = "binary-class"
MULTI_CLASS = "multi-class"
ORDINAL = "ordinal-regression"
MULTI_LABEL = "multi-label, binary-class"
TASKS = (BINARY, MULTI_CLASS, ORDINAL, MULTI_LABEL)


def _check_task(task: str) -> None:
  if task not in TASKS:
    raise ValueError(f"unknown task {task!r}; expected one of {TASKS}")


def _single_labels(labels) -> np.ndarray:
  """(N, 1) or (N,) integer labels -> (N,) int64."""
  labels = np.asarray(labels)
  if labels.ndim == 2 and labels.shape[1] == 1:
    labels = labels[:, 0]
  if labels.ndim != 1:
    raise ValueError(f"single-label tasks expect labels of shape (N, 1) or (N,), got {labels.shape}")
  return labels.astype(np.int64)


def scores_from_logits(logits, task: str) -> np.ndarray:
  """Turns model logits into the scores MedMNIST's evaluator expects.

  Args:
    logits: float array (N, K): K = 1 for binary-class, C for multi-class/ordinal, L for
      multi-label.
    task: MedMNIST task string.

  Returns:
    float64 array: (N, 2) ``[1 - p, p]`` with ``p = sigmoid(logit)`` for binary-class (MedMNIST
    reads the last column); (N, C) softmax probabilities for multi-class/ordinal; (N, L)
    per-label sigmoid probabilities for multi-label.
  """
  _check_task(task)
  logits = np.asarray(logits, dtype=np.float64)
  if logits.ndim != 2:
    raise ValueError(f"logits must have shape (N, K), got {logits.shape}")
  if task == BINARY:
    if logits.shape[1] != 1:
      raise ValueError(f"binary-class models output 1 logit, got shape {logits.shape}")
    p = scipy.special.expit(logits[:, 0])
    return np.stack([1.0 - p, p], axis=1)
  if task == MULTI_LABEL:
    return scipy.special.expit(logits)
  return scipy.special.softmax(logits, axis=1)


def _positive_scores(scores) -> np.ndarray:
  """Binary-class scores (N, 2) or (N,) -> positive-class scores (N,)."""
  scores = np.asarray(scores)
  return scores[:, -1] if scores.ndim == 2 else scores


def auc(labels, scores, task: str) -> float:
  """Area under the ROC curve as MedMNIST defines it (``getAUC``).

  Args:
    labels: (N, 1) int class labels, or (N, L) 0/1 for multi-label.
    scores: ``scores_from_logits`` output: (N, 2) (or (N,) positive scores) for binary-class,
      (N, C) for multi-class/ordinal, (N, L) for multi-label.
    task: MedMNIST task string.

  Returns:
    Binary: AUC of the positive-class score. Multi-class/ordinal: mean one-vs-rest AUC over the C
    score columns. Multi-label: mean AUC over the L labels. A float in [0, 1], or NaN when a class
    or label is absent from ``labels`` (see module docstring).
  """
  _check_task(task)
  if task == BINARY:
    return float(sklearn_metrics.roc_auc_score(_single_labels(labels), _positive_scores(scores)))
  scores = np.asarray(scores)
  return float(np.mean(_column_aucs(column_targets(labels, task, scores.shape[1]), scores)))


def column_targets(labels, task: str, num_columns: int) -> np.ndarray:
  """0/1 int64 targets (N, K) matching K score columns: multi-label labels as given, else one-hot."""
  if task == MULTI_LABEL:
    return np.asarray(labels).astype(np.int64)
  return (_single_labels(labels)[:, None] == np.arange(num_columns)).astype(np.int64)


def _column_aucs(targets: np.ndarray, scores: np.ndarray) -> list[float]:
  """AUC of each score column against its 0/1 target column; targets and scores (N, K)."""
  return [float(sklearn_metrics.roc_auc_score(targets[:, i], scores[:, i])) for i in range(scores.shape[1])]


def predictions(scores, task: str, threshold: float = 0.5) -> np.ndarray:
  """Hard predictions from scores, with MedMNIST's decision rules.

  Args:
    scores: as for ``auc``.
    task: MedMNIST task string.
    threshold: probability threshold for binary-class and multi-label tasks.

  Returns:
    int64 array: (N,) class indices for single-label tasks (binary: ``p > threshold``,
    multi-class/ordinal: argmax), or (N, L) 0/1 for multi-label (``p > threshold``).
  """
  _check_task(task)
  scores = np.asarray(scores)
  if task == BINARY:
    return (_positive_scores(scores) > threshold).astype(np.int64)
  if task == MULTI_LABEL:
    return (scores > threshold).astype(np.int64)
  return np.argmax(scores, axis=1).astype(np.int64)


def acc(labels, scores, task: str, threshold: float = 0.5) -> float:
  """Accuracy as MedMNIST defines it (``getACC``).

  Args:
    labels: as for ``auc``.
    scores: as for ``auc``.
    task: MedMNIST task string.
    threshold: probability threshold for binary-class and multi-label tasks.

  Returns:
    Fraction in [0, 1] of correct predictions (``predictions``); for multi-label the per-label
    accuracies averaged over the L labels.
  """
  predicted = predictions(scores, task, threshold)
  if task == MULTI_LABEL:
    return float(np.mean(np.asarray(labels) == predicted))
  return float(np.mean(_single_labels(labels) == predicted))


def _counts(labels, predicted, task: str, num_classes: int):
  """(labels as sklearn takes them, balanced accuracy, confusion matrix, per-class precision, recall,
  F1, support) of hard predictions; multi-label tasks per label as binary problems."""
  if task == MULTI_LABEL:
    labels = np.asarray(labels).astype(np.int64)
    balanced = np.mean([sklearn_metrics.balanced_accuracy_score(labels[:, i], predicted[:, i])
                        for i in range(num_classes)])
    confusion, class_ids = sklearn_metrics.multilabel_confusion_matrix(labels, predicted), None
  else:
    labels = _single_labels(labels)
    balanced = sklearn_metrics.balanced_accuracy_score(labels, predicted)
    class_ids = np.arange(num_classes)
    confusion = sklearn_metrics.confusion_matrix(labels, predicted, labels=class_ids)
  return labels, balanced, confusion, sklearn_metrics.precision_recall_fscore_support(
      labels, predicted, labels=class_ids, average=None, zero_division=0)


def classification_report(labels, logits, task: str, class_names: Sequence[str] | None = None,
                          threshold: float = 0.5) -> dict:
  """All evaluation metrics of one split, JSON-serialisable.

  Args:
    labels: (N, 1) int class labels, or (N, L) 0/1 for multi-label.
    logits: (N, K) model logits (see ``scores_from_logits``).
    task: MedMNIST task string.
    class_names: K' names, K' = 2 for binary-class, C or L otherwise (MedMNIST's
      ``INFO[flag]["label"]`` values); defaults to ``"0"``, ``"1"``, ...
    threshold: probability threshold for binary-class and multi-label tasks.

  Returns:
    A dict of Python floats/ints/lists (undefined values are NaN): ``task``, ``num_examples``,
    ``class_names``, ``auc`` and ``acc`` (MedMNIST definitions), ``balanced_accuracy``,
    ``precision_macro``, ``recall_macro``, ``f1_macro``, per-class lists ``precision``, ``recall``,
    ``f1``, ``support`` (examples of the class; positives for multi-label) and ``auc_per_class``
    (one-vs-rest), and ``confusion_matrix``: (K', K') rows = true class, columns = predicted, or for
    multi-label (L, 2, 2) per-label ``[[tn, fp], [fn, tp]]``. Single-label precision/recall/F1 are
    per class (both classes for binary), multi-label ones per label as binary problems; classes
    never predicted get precision 0.
  """
  scores = scores_from_logits(logits, task)
  predicted = predictions(scores, task, threshold)
  num_classes = scores.shape[1]
  names = list(class_names) if class_names is not None else [str(i) for i in range(num_classes)]
  if len(names) != num_classes:
    raise ValueError(f"{len(names)} class names for {num_classes} score columns")
  with warnings.catch_warnings():
    # Absent classes: NaN AUC and a warning; the report keeps the NaN and drops the warning.
    warnings.simplefilter("ignore", sklearn_exceptions.UndefinedMetricWarning)
    warnings.filterwarnings("ignore", message="y_pred contains classes not in y_true")
    auc_per_class = _column_aucs(column_targets(labels, task, num_classes), scores)
    labels, balanced, confusion, (precision, recall, f1, support) = _counts(labels, predicted, task, num_classes)
  return {
      "task": task,
      "num_examples": int(scores.shape[0]),
      "class_names": names,
      # Binary: the positive column's one-vs-rest AUC is MedMNIST's AUC.
      "auc": auc_per_class[-1] if task == BINARY else float(np.mean(auc_per_class)),
      "acc": acc(labels, scores, task, threshold),
      "balanced_accuracy": float(balanced),
      "precision_macro": float(np.mean(precision)), "recall_macro": float(np.mean(recall)),
      "f1_macro": float(np.mean(f1)),
      "precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist(), "support": support.tolist(),
      "auc_per_class": auc_per_class,
      "confusion_matrix": confusion.tolist(),
  }
