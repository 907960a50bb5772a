"""Run outputs: JSON-lines metrics, MedMNIST prediction CSVs, PNG plots and ``summary.json``.

Metric records are flat dicts with an ``epoch`` and/or ``step`` key and ``{split}_{metric}`` values,
e.g. ``{"epoch": 3, "train_loss": 0.41, "val_auc": 0.93}``. Plots use matplotlib's
object-oriented API (``Figure`` renders PNG through Agg), so no pyplot state or GUI backend is
touched.
"""

from collections.abc import Collection, Iterable, Mapping, Sequence
import csv
import gzip
import io
import json
import logging
import math
import numbers
import os
import tempfile
from typing import Any

from matplotlib import figure as mpl_figure
from matplotlib import ticker as mpl_ticker
import numpy as np
from sklearn import metrics as sklearn_metrics
import tensorboardX

from qcnn_jax.evaluation import metrics

SUMMARY_FILENAME = "summary.json"


def _json_default(value: Any) -> Any:
  """JSON fallback for numpy/JAX scalars and arrays."""
  if hasattr(value, "__array__"):
    return np.asarray(value).tolist()
  raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def to_jsonable(obj: Any) -> Any:
  """A copy of ``obj`` in JSON types (numpy/JAX scalars and arrays -> numbers/lists, tuples -> lists).

  Raises TypeError for objects JSON cannot represent.
  """
  return json.loads(json.dumps(obj, default=_json_default))


class MetricsWriter:
  """Appends metric records to a JSON-lines file, one flushed line per record, and streams their
  scalars to TensorBoard event files.

  Reopening the file after a crash appends; a last line cut by a kill is closed with a newline so
  it stays a single unreadable line that ``read_metrics`` skips.
  """

  def __init__(self, path: str | os.PathLike, tensorboard_dir: str | os.PathLike | None = None):
    """Opens ``path`` (created with its parent directory if needed) for appending; with
    ``tensorboard_dir``, also writes TensorBoard events there (tensorboardX, no TensorFlow)."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    self._file = open(path, "a+b")
    if self._file.tell() > 0:
      self._file.seek(-1, os.SEEK_END)
      if self._file.read(1) != b"\n":
        self._file.write(b"\n")
    self._events = tensorboardX.SummaryWriter(str(tensorboard_dir)) if tensorboard_dir else None

  def write(self, record: Mapping[str, Any], group: str = "metrics") -> None:
    """Appends one record (needs a ``step`` or ``epoch`` key) and flushes it to the OS.

    TensorBoard gets each finite number of the record as ``{group}/{key}`` at its ``step``
    (else its ``epoch``).
    """
    if "step" not in record and "epoch" not in record:
      raise ValueError(f"metric records need a 'step' or 'epoch' key, got keys {sorted(record)}")
    self._file.write(json.dumps(dict(record), default=_json_default).encode() + b"\n")
    self._file.flush()
    if self._events is not None:
      step = int(record["step"] if "step" in record else record["epoch"])
      for key, value in record.items():
        if key not in ("step", "epoch") and isinstance(value, numbers.Real) and math.isfinite(value):
          self._events.add_scalar(f"{group}/{key}", float(value), global_step=step)
      self._events.flush()

  def close(self) -> None:
    """Closes the file (and the event file)."""
    self._file.close()
    if self._events is not None:
      self._events.close()

  def __enter__(self) -> "MetricsWriter":
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def read_metrics(path: str | os.PathLike) -> list[dict[str, Any]]:
  """All records of a JSON-lines metrics file in file order; lines cut by a kill are skipped."""
  records = []
  with open(path, encoding="utf-8") as f:
    for number, line in enumerate(f, start=1):
      if not line.strip():
        continue
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError:
        logging.warning("%s:%d: skipping unreadable metrics line %r", path, number, line[:80])
  return records


def drop_metrics_after(path: str | os.PathLike, last_epoch: int) -> None:
  """Rewrites a metrics file (atomically) without the records of epochs after ``last_epoch``.

  A resumed run redoes the epochs after its checkpoint; their records from the killed attempt
  would otherwise appear twice. ``last_epoch=-1`` (no checkpoint) drops every record. A missing
  file is left missing.
  """
  if not os.path.exists(path):
    return
  records = read_metrics(path)
  kept = [r for r in records if r.get("epoch", -1) <= last_epoch]
  if len(kept) < len(records):
    write_text_atomic(path, "".join(json.dumps(r, default=_json_default) + "\n" for r in kept))


def predictions_filename(flag: str, split: str, auc: float, acc: float, run: str, size: int | None = None) -> str:
  """MedMNIST's result-file name ``{flag}{size_flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv``.

  This is ``medmnist.Evaluator.get_standard_evaluation_filename``; ``size_flag`` is empty for
  28-pixel images and ``_{size}`` otherwise. ``run`` names the model/run (no ``.`` or ``/``,
  which ``Evaluator.parse_and_evaluate`` cannot read back).
  """
  if "_" in flag:
    raise ValueError(f"MedMNIST flags contain no '_', got {flag!r}")
  if split not in ("train", "val", "test"):
    raise ValueError(f"split must be train, val or test, got {split!r}")
  if "." in run or "/" in run:
    raise ValueError(f"run {run!r} must not contain '.' or '/' (MedMNIST parses it from the file name)")
  size_flag = "" if size in (None, 28) else f"_{size}"
  return f"{flag}{size_flag}_{split}_[AUC]{auc:.3f}_[ACC]{acc:.3f}@{run}.csv"


def write_predictions_csv(out_dir: str | os.PathLike, flag: str, split: str, index, scores, *, auc: float,
                          acc: float, run: str, size: int | None = None) -> str:
  """Writes one split's scores as MedMNIST's ``Evaluator.evaluate(save_folder=...)`` does.

  Rows are ``index,score_0,score_1,...`` without a header, sorted by the official dataset index;
  ``medmnist.Evaluator.parse_and_evaluate`` reads the file back.

  Args:
    out_dir: directory for the file (created if needed).
    flag: MedMNIST flag, e.g. ``"pneumoniamnist"``.
    split: ``"train"``, ``"val"`` or ``"test"``.
    index: (N,) official position of each row in the split (unique; the loader may reorder).
    scores: (N, K) scores from ``metrics.scores_from_logits``, rows aligned with ``index``.
    auc: the split's MedMNIST AUC (written into the file name).
    acc: the split's MedMNIST ACC (written into the file name).
    run: model/run name after the ``@``.
    size: image size; 28 or None gives MedMNIST's unsuffixed flag.

  Returns:
    The path written.
  """
  index = np.asarray(index).astype(np.int64).reshape(-1)
  scores = np.asarray(scores, dtype=np.float64)
  if scores.ndim != 2 or scores.shape[0] != index.shape[0]:
    raise ValueError(f"scores {scores.shape} must be (N, K) with N = len(index) = {index.shape[0]}")
  if np.unique(index).size != index.size:
    raise ValueError("index has duplicates (were padding rows removed?)")
  os.makedirs(out_dir, exist_ok=True)
  path = os.path.join(out_dir, predictions_filename(flag, split, auc, acc, run, size))
  order = np.argsort(index, kind="stable")
  with open(path, "w", newline="") as f:
    writer = csv.writer(f)
    for i in order:
      writer.writerow([int(index[i])] + [repr(float(s)) for s in scores[i]])
  return path


def read_predictions_csv(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
  """Reads a MedMNIST predictions CSV, plain or gzip-compressed (``.csv.gz``, as run records keep
  them); returns ``index`` (N,) int64 and ``scores`` (N, K) float64."""
  table = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
  return table[:, 0].astype(np.int64), table[:, 1:]


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
  """Writes ``text`` (UTF-8) so that ``path`` holds either the old or the whole new file
  (`write_bytes_atomic`)."""
  write_bytes_atomic(path, text.encode("utf-8"))


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
  """Writes ``data`` so that ``path`` holds either the old or the whole new file.

  The bytes go to a temporary file in the same directory, are fsynced and then ``os.replace``d
  over ``path`` (atomic on POSIX); the directory is fsynced so the rename survives a crash.
  """
  directory = os.path.dirname(os.path.abspath(path))
  os.makedirs(directory, exist_ok=True)
  fd, tmp_path = tempfile.mkstemp(dir=directory, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      f.write(data)
      f.flush()
      os.fsync(f.fileno())
    os.replace(tmp_path, path)
  except BaseException:
    os.unlink(tmp_path)
    raise
  dir_fd = os.open(directory, os.O_RDONLY)
  try:
    os.fsync(dir_fd)
  finally:
    os.close(dir_fd)


def copy_files(source_dir: str | os.PathLike, target_dir: str | os.PathLike, names: Iterable[str],
               compress: Collection[str] = ()) -> list[str]:
  """Copies `names` (paths relative to `source_dir`) to the same places under `target_dir`, one by
  one in the given order, each atomically; a name in `compress` is written gzip-compressed (mtime 0,
  so the bytes depend on the content only) under `name + ".gz"`. Returns the paths written."""
  written = []
  for name in names:
    with open(os.path.join(source_dir, name), "rb") as f:
      data = f.read()
    if name in compress:
      name, data = name + ".gz", gzip.compress(data, mtime=0)
    write_bytes_atomic(os.path.join(target_dir, name), data)
    written.append(os.path.join(target_dir, name))
  return written


def csv_text(rows: Iterable[Mapping[str, Any]], columns: Sequence[str]) -> str:
  """CSV text of `rows` with the header `columns` (keys outside them are left out)."""
  text = io.StringIO()
  writer = csv.DictWriter(text, fieldnames=columns, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  return text.getvalue()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> None:
  """Writes ``obj`` as indented JSON atomically (see ``write_text_atomic``)."""
  write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def read_json(path: str | os.PathLike) -> Any:
  """The JSON value stored at ``path`` (``config.json``, ``summary.json``, ...)."""
  with open(path, encoding="utf-8") as f:
    return json.load(f)


def write_summary(workdir: str | os.PathLike, *, test_auc: float, test_acc: float, val_auc: float,
                  best_epoch: int, num_params: int, quantum_params: int, n_qubits: int, wall_time_s: float,
                  images_per_s: float, **extra: Any) -> str:
  """Atomically writes ``{workdir}/summary.json`` with the run's headline numbers.

  Args:
    workdir: run directory.
    test_auc: MedMNIST AUC on the test split of the best-by-val checkpoint.
    test_acc: MedMNIST ACC on the test split of the best-by-val checkpoint.
    val_auc: best validation AUC.
    best_epoch: epoch of the best validation AUC.
    num_params: trainable parameters, all of the model.
    quantum_params: trainable parameters of the quantum circuits.
    n_qubits: qubits per circuit (0 for classical models).
    wall_time_s: training wall time in seconds.
    images_per_s: training throughput in images per second.
    **extra: further JSON-serialisable entries (numpy/JAX values allowed).

  Returns:
    The path of ``summary.json``.
  """
  summary = dict(test_auc=test_auc, test_acc=test_acc, val_auc=val_auc, best_epoch=best_epoch,
                 num_params=num_params, quantum_params=quantum_params, n_qubits=n_qubits,
                 wall_time_s=wall_time_s, images_per_s=images_per_s, **extra)
  path = os.path.join(workdir, SUMMARY_FILENAME)
  write_json_atomic(path, summary)
  return path


def save_figure(fig: mpl_figure.Figure, path: str | os.PathLike) -> str:
  """Writes `fig` as a 120-dpi PNG at `path` (parent folders created); returns the path."""
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  fig.savefig(path, dpi=120, format="png")
  return str(path)


def plot_learning_curves(records: Iterable[Mapping[str, Any]], path: str | os.PathLike,
                         metric_names: Sequence[str] = ("loss", "auc", "acc"),
                         splits: Sequence[str] = ("train", "val")) -> str:
  """Plots ``{split}_{metric}`` against epoch, one panel per metric, as a PNG.

  Args:
    records: metric records (``read_metrics``); those without ``epoch`` are ignored, and for an
      epoch logged twice (a resumed run) the last value wins.
    path: output PNG path.
    metric_names: metrics to plot, one panel each.
    splits: split prefixes, one line each.

  Returns:
    ``path``.
  """
  curves: dict[str, dict[int, float]] = {f"{split}_{name}": {} for split in splits for name in metric_names}
  for record in records:
    if "epoch" in record:
      for key in curves.keys() & record.keys():
        curves[key][int(record["epoch"])] = float(record[key])
  fig = mpl_figure.Figure(figsize=(4.5 * len(metric_names), 3.6), layout="constrained")
  for ax, name in zip(fig.subplots(1, len(metric_names), squeeze=False)[0], metric_names):
    for split in splits:
      points = sorted(curves[f"{split}_{name}"].items())
      if points:
        ax.plot(*zip(*points), marker="o", markersize=3, label=split)
    ax.set(xlabel="epoch", ylabel=name, title=name)
    ax.xaxis.set_major_locator(mpl_ticker.MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    if ax.has_data():
      ax.legend()
  return save_figure(fig, path)


def plot_roc_curves(labels, scores, task: str, path: str | os.PathLike,
                    class_names: Sequence[str] | None = None, title: str = "ROC") -> str:
  """Plots ROC curves as a PNG: the positive class for binary tasks, else one-vs-rest per class/label.

  Args:
    labels: (N, 1) int labels, or (N, L) 0/1 for multi-label.
    scores: (N, K) scores from ``metrics.scores_from_logits``.
    task: MedMNIST task string.
    path: output PNG path.
    class_names: K names (defaults to column numbers).
    title: figure title.

  Returns:
    ``path``. Classes whose labels are all equal (ROC undefined) are listed as skipped in the legend.
  """
  scores = np.asarray(scores)
  names = list(class_names) if class_names is not None else [str(i) for i in range(scores.shape[1])]
  targets = metrics.column_targets(labels, task, scores.shape[1])
  columns = [scores.shape[1] - 1] if task == metrics.BINARY else range(scores.shape[1])
  fig = mpl_figure.Figure(figsize=(5.5, 5), layout="constrained")
  ax = fig.subplots()
  for i in columns:
    if np.unique(targets[:, i]).size < 2:
      ax.plot([], [], " ", label=f"{names[i]} (skipped: one class only)")
      continue
    fpr, tpr, _ = sklearn_metrics.roc_curve(targets[:, i], scores[:, i])
    ax.plot(fpr, tpr, label=f"{names[i]} (AUC {sklearn_metrics.auc(fpr, tpr):.3f})")
  ax.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=0.8)
  ax.set(xlabel="false positive rate", ylabel="true positive rate", title=title, xlim=(0, 1), ylim=(0, 1.01))
  ax.legend(fontsize="small", loc="lower right")
  return save_figure(fig, path)


def plot_confusion_matrix(matrix, class_names: Sequence[str], path: str | os.PathLike,
                          title: str = "Confusion matrix") -> str:
  """Plots a (C, C) confusion matrix (rows true, columns predicted; counts) as a PNG.

  Cells show the count and the row fraction (recall); the colour is the row fraction.
  Returns ``path``.
  """
  matrix = np.asarray(matrix, dtype=np.int64)
  if matrix.shape != (len(class_names), len(class_names)):
    raise ValueError(f"matrix {matrix.shape} does not match {len(class_names)} class names")
  fractions = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
  size = 2.5 + 0.6 * len(class_names)
  fig = mpl_figure.Figure(figsize=(size + 1.0, size), layout="constrained")
  ax = fig.subplots()
  image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
  fig.colorbar(image, ax=ax, label="fraction of true class")
  ticks = np.arange(len(class_names))
  ax.set_xticks(ticks, class_names, rotation=45, ha="right")
  ax.set_yticks(ticks, class_names)
  for (row, col), count in np.ndenumerate(matrix):
    ax.text(col, row, f"{count}\n{fractions[row, col]:.0%}", ha="center", va="center", fontsize="small",
            color="white" if fractions[row, col] > 0.5 else "black")
  ax.set(xlabel="predicted", ylabel="true", title=title)
  return save_figure(fig, path)
