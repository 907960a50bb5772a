"""qcnn_jax.evaluation.reports: JSONL metrics, MedMNIST prediction CSVs (read back by medmnist), plots, summary."""

import contextlib
import io
import json
import os
import pathlib

import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.evaluation import metrics
from qcnn_jax.evaluation import reports

with contextlib.redirect_stdout(io.StringIO()):  # medmnist prints a torch hint on import
  from medmnist import evaluator as mm_evaluator

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_writer_appends_and_reads_back(tmp_path):
  path = tmp_path / "logs" / "metrics.jsonl"
  with reports.MetricsWriter(path) as writer:
    writer.write({"epoch": 1, "train_loss": np.float32(0.5), "val_auc": jnp.asarray(0.75)})
    writer.write({"step": 10, "lr": 1e-3})
    assert len(path.read_text().splitlines()) == 2  # flushed before close
  with reports.MetricsWriter(path) as writer:  # a resumed run appends
    writer.write({"epoch": 2, "train_loss": 0.25})
  assert reports.read_metrics(path) == [
      {"epoch": 1, "train_loss": 0.5, "val_auc": 0.75}, {"step": 10, "lr": 1e-3}, {"epoch": 2, "train_loss": 0.25}]
  with reports.MetricsWriter(path) as writer, pytest.raises(ValueError, match="'step' or 'epoch'"):
    writer.write({"loss": 1.0})


def test_metrics_line_cut_by_kill_is_skipped(tmp_path):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"epoch": 1, "val_auc": 0.5}\n{"epoch": 2, "val_')  # killed mid-line
  with reports.MetricsWriter(path) as writer:
    writer.write({"epoch": 2, "val_auc": 0.6})
  assert reports.read_metrics(path) == [{"epoch": 1, "val_auc": 0.5}, {"epoch": 2, "val_auc": 0.6}]


def _official_evaluator(root):
  class LocalEvaluator(mm_evaluator.Evaluator):
    """medmnist's Evaluator reading its labels from ``root`` instead of ~/.medmnist."""

    def __init__(self, flag, split, size=None):
      super().__init__(flag, split, size=size, root=str(root))

  return LocalEvaluator


@pytest.mark.parametrize("flag,k,size", [("pneumoniamnist", 1, None), ("bloodmnist", 8, 64), ("chestmnist", 14, 28)])
def test_predictions_csv_is_medmnist_readable(tmp_path, flag, k, size):
  task = mm_evaluator.INFO[flag]["task"]
  rng = np.random.default_rng(0)
  n = 40
  if task == metrics.MULTI_LABEL:
    labels = rng.integers(0, 2, (n, k))
  else:
    labels = rng.integers(0, max(k, 2), (n, 1))
    labels[:k, 0] = np.arange(k)
  np.savez(tmp_path / f"{flag}{'' if size in (None, 28) else f'_{size}'}.npz", test_labels=labels)
  scores = metrics.scores_from_logits(rng.normal(size=(n, k)), task)
  auc, acc = metrics.auc(labels, scores, task), metrics.acc(labels, scores, task)
  order = rng.permutation(n)  # the loader delivered examples shuffled
  out = tmp_path / "preds"
  path = reports.write_predictions_csv(out, flag, "test", order, scores[order], auc=auc, acc=acc, run="resnet18_0",
                                       size=size)

  evaluator_cls = _official_evaluator(tmp_path)
  official = evaluator_cls(flag, "test", size=size)
  assert os.path.basename(path) == official.get_standard_evaluation_filename(
      mm_evaluator.Metrics(auc, acc), run="resnet18_0")
  index, read_scores = reports.read_predictions_csv(path)
  np.testing.assert_array_equal(index, np.arange(n))
  np.testing.assert_array_equal(read_scores, scores)  # full float precision, official order
  with contextlib.redirect_stdout(io.StringIO()):
    parsed = evaluator_cls.parse_and_evaluate(path)
  assert parsed.AUC == pytest.approx(auc, rel=1e-12) and parsed.ACC == pytest.approx(acc, rel=1e-12)


def test_predictions_csv_rejects_bad_input(tmp_path):
  scores = np.full((3, 2), 0.5)
  with pytest.raises(ValueError, match="duplicates"):
    reports.write_predictions_csv(tmp_path, "bloodmnist", "val", [0, 1, 1], scores, auc=0.5, acc=0.5, run="r")
  with pytest.raises(ValueError, match="must not contain"):
    reports.write_predictions_csv(tmp_path, "bloodmnist", "val", [0, 1, 2], scores, auc=0.5, acc=0.5, run="lr0.1")
  with pytest.raises(ValueError, match="split"):
    reports.write_predictions_csv(tmp_path, "bloodmnist", "dev", [0, 1, 2], scores, auc=0.5, acc=0.5, run="r")
  assert not list(tmp_path.iterdir())


def test_summary_written_atomically(tmp_path):
  common = dict(test_acc=0.8, val_auc=0.9, best_epoch=7, num_params=np.int64(1234), quantum_params=48, n_qubits=8,
                wall_time_s=12.5, images_per_s=np.float32(300.0))
  path = reports.write_summary(tmp_path, test_auc=0.85, model="qcnn", per_class=np.array([0.1, 0.2]), **common)
  summary = json.loads(open(path).read())
  assert summary == dict(common, test_auc=0.85, num_params=1234, images_per_s=300.0, model="qcnn",
                         per_class=[0.1, 0.2])
  with pytest.raises(TypeError):  # not serialisable: the previous summary survives, no temp file left
    reports.write_summary(tmp_path, test_auc=0.99, bad=object(), **common)
  assert json.loads(open(path).read())["test_auc"] == 0.85
  assert os.listdir(tmp_path) == ["summary.json"]


def _assert_png(path):
  with open(path, "rb") as f:
    assert f.read(8) == PNG_MAGIC
  assert os.path.getsize(path) > 5000


def test_plots_are_written(tmp_path):
  records = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "train_auc": 0.5 + e / 20, "val_auc": 0.5 + e / 25,
              "train_acc": 0.5, "val_acc": 0.6} for e in range(1, 6)] + [{"step": 3, "lr": 0.1}]
  _assert_png(reports.plot_learning_curves(records, tmp_path / "curves.png"))

  rng = np.random.default_rng(0)
  labels = rng.integers(0, 3, (50, 1))
  labels[labels == 2] = 0  # class 2 absent: skipped in the ROC legend
  scores = metrics.scores_from_logits(rng.normal(size=(50, 3)), metrics.MULTI_CLASS)
  _assert_png(reports.plot_roc_curves(labels, scores, metrics.MULTI_CLASS, tmp_path / "roc.png", ["a", "b", "c"]))
  binary = metrics.scores_from_logits(rng.normal(size=(50, 1)), metrics.BINARY)
  _assert_png(reports.plot_roc_curves(labels.clip(0, 1), binary, metrics.BINARY, tmp_path / "roc_binary.png"))

  report = metrics.classification_report(labels, np.log(scores), metrics.MULTI_CLASS, ["adipose", "background", "c"])
  _assert_png(reports.plot_confusion_matrix(report["confusion_matrix"], report["class_names"], tmp_path / "cm.png"))
  with pytest.raises(ValueError, match="class names"):
    reports.plot_confusion_matrix(report["confusion_matrix"], ["a", "b"], tmp_path / "bad.png")


def test_readme_tables_are_the_reports_tables(tmp_path, monkeypatch):
  """Every generated table and sentence block of the README equals the table (first paragraph) of the
  report it names (no hand-typed numbers), and a stale block is found and rewritten."""
  from experiments import readme_tables  # pylint: disable=g-import-not-at-top
  root = pathlib.Path(__file__).resolve().parents[1]
  monkeypatch.chdir(root)
  for page in (root / "README.md", root / "docs" / "results.md", root / "docs" / "studies.md",
               root / "docs" / "performance.md"):
    text = page.read_text(encoding="utf-8")
    assert readme_tables.BLOCK.search(text), f"{page} has no generated table"
    assert readme_tables.refresh(text) == (text, []), page
  report = tmp_path / "report.md"
  report.write_text("# R\n\n## Answer\n\ntext\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nmore\n\n| x |\n", encoding="utf-8")
  block = f"<!-- table: {report}#Answer -->\n| a | b |\n|---|---|\n| 1 | 3 |\n<!-- end table -->"
  new, stale = readme_tables.refresh(f"intro\n{block}\nafter\n")
  assert stale == [f"{report}#Answer"] and "| 1 | 2 |\n<!-- end table -->\nafter" in new and "| 1 | 3 |" not in new
  sentence = f"<!-- text: {report}#Answer -->\nold words\n<!-- end text -->"
  new, stale = readme_tables.refresh(f"{sentence}\n")
  assert stale == [f"{report}#Answer"] and new == f"<!-- text: {report}#Answer -->\ntext\n<!-- end text -->\n"
