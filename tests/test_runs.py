"""One run folder type: finished means summary.json and a config.json of the expected config; the
reported test predictions are chosen deterministically; records drop machine paths."""

import json

import pytest

from qcnn_jax.studies import runs

CONFIG = {"model": "resnet50", "seed": 0, "learning_rate": 0.001, "data_dir": "/somewhere/data"}


def make_run(folder, config=CONFIG, summary=None, predictions=()):
  folder.mkdir(parents=True)
  (folder / "config.json").write_text(json.dumps(config))
  if summary is not None:
    (folder / "summary.json").write_text(json.dumps(summary))
  (folder / "predictions").mkdir()
  for name in predictions:
    (folder / "predictions" / name).write_text("0,0.5\n")
  return runs.RunFolder(str(folder))


def test_finished_needs_a_summary_and_the_same_config_up_to_non_result_keys(tmp_path):
  started = make_run(tmp_path / "started")
  assert not started.finished(CONFIG)
  done = make_run(tmp_path / "done", summary={"test_auc": 0.8, "test_acc": 0.7})
  assert done.finished(CONFIG) and done.finished(dict(CONFIG, data_dir=None))  # a path is not a result
  assert not done.finished(dict(CONFIG, learning_rate=0.01))
  assert done.finished(None)


def test_the_reported_test_predictions_are_the_ones_named_with_the_summary(tmp_path):
  names = ["b_test_[AUC]0.800_[ACC]0.700@m-seed0.csv", "b_test_[AUC]0.812_[ACC]0.690@m-seed0.csv.gz"]
  run = make_run(tmp_path / "r", summary={"test_auc": 0.8123, "test_acc": 0.69}, predictions=names)
  assert run.test_predictions().endswith(names[1])
  one = make_run(tmp_path / "one", summary={"test_auc": 0.5, "test_acc": 0.5}, predictions=names[:1])
  assert one.test_predictions().endswith(names[0])
  ambiguous = make_run(tmp_path / "a", summary={"test_auc": 0.5, "test_acc": 0.5}, predictions=names)
  with pytest.raises(FileNotFoundError, match="remove the stale ones"):
    ambiguous.test_predictions()
  with pytest.raises(FileNotFoundError, match="no test predictions CSV"):
    make_run(tmp_path / "none", summary={}).test_predictions()


def test_records_drop_machine_paths_only(tmp_path):
  make_run(tmp_path / "rec", summary={})
  runs.drop_machine_paths(str(tmp_path / "rec"))
  assert json.loads((tmp_path / "rec" / "config.json").read_text()) == dict(CONFIG, data_dir=None)
  assert runs.seed_dir(3) == "seed3"
