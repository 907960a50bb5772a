"""The grid runner and its report, with a fake train function (no model is trained here)."""

import csv
import glob
import importlib
import os

from absl import flags
import ml_collections
import numpy as np
import pytest

from experiments import cli
from experiments import grid as grid_cli
from experiments.configs import grid_smoke, medmnist
from qcnn_jax.evaluation import metrics, reports
from qcnn_jax.studies import grid
from qcnn_jax.training import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

NUM_TEST = 80
LABELS = np.random.default_rng(0).integers(0, 2, (NUM_TEST, 1))
INDEX = np.arange(NUM_TEST, dtype=np.int64)
QUALITY = {"resnet50_qcnn": 2.0, "resnet50_mlp": 1.0}  # logit separation of the fake predictions


def fake_test_auc(model: str, seed: int) -> float:
  return {"resnet50_qcnn": 0.90, "resnet50_mlp": 0.80}[model] + 0.01 * seed


def make_grid(datasets=("breastmnist", "pneumoniamnist"), seeds=(0, 1, 2)) -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "test grid"
  c.base = medmnist.get_config()
  c.base.num_epochs = 1
  c.datasets = datasets
  c.models = ml_collections.ConfigDict({"resnet50_qcnn": {"n_qubits": 4}, "resnet50_mlp": {"n_qubits": 4}})
  c.seeds = seeds
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"),)
  c.dataset_overrides = ml_collections.ConfigDict({"pneumoniamnist": {"size": 64, "preprocess": {"channels": 3}}})
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 300, "confidence": 0.9, "seed": 0})
  return c


class FakeTrain:
  """Stands in for train.train_and_evaluate: records calls, writes summary.json and test predictions."""

  def __init__(self, fail_on=(), kill_on=None):
    self.calls, self.fail_on, self.kill_on = [], fail_on, kill_on

  def __call__(self, config, workdir, overwrite=False):
    del overwrite
    key = (config.dataset, config.model, config.seed)
    self.calls.append(key)
    if key == self.kill_on:
      raise KeyboardInterrupt  # like a killed process: not caught by the grid
    if key in self.fail_on:
      raise FloatingPointError("Non-finite loss")
    write_finished_run(workdir, *key, config=config)
    return reports.read_json(os.path.join(workdir, reports.SUMMARY_FILENAME))


def write_finished_run(workdir: str, dataset: str, model: str, seed: int, config: ml_collections.ConfigDict) -> None:
  """What train.train_and_evaluate leaves: config.json, test predictions and summary.json."""
  reports.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
  rng = np.random.default_rng(seed)
  logits = rng.normal(size=(NUM_TEST, 1)) + QUALITY[model] * (2 * LABELS - 1)
  scores = metrics.scores_from_logits(logits, metrics.BINARY)
  reports.write_predictions_csv(os.path.join(workdir, "predictions"), dataset, "test", INDEX[::-1],
                                scores[::-1], auc=0.5, acc=0.5, run=f"{model}-seed{seed}")
  auc = fake_test_auc(model, seed)
  reports.write_json_atomic(os.path.join(workdir, "metrics_final.json"), {"val": {"balanced_accuracy": 0.6 + seed / 100}})
  reports.write_summary(workdir, test_auc=auc, test_acc=auc - 0.1, val_auc=auc, best_epoch=1, num_params=1000,
                        quantum_params=40 if "qcnn" in model else 0, n_qubits=4, wall_time_s=10.0 * (seed + 1),
                        images_per_s=100.0, test_precision_macro=0.7, test_recall_macro=0.6, test_f1_macro=0.65,
                        dataset=dataset, model=model, seed=seed)


@pytest.fixture
def fake_train(monkeypatch):
  fake = FakeTrain()
  monkeypatch.setattr(train, "train_and_evaluate", fake)
  fake.label_loads = []

  def load_test_labels(config):
    fake.label_loads.append(config.dataset)
    return metrics.BINARY, INDEX, LABELS

  monkeypatch.setattr(grid, "load_test_labels", load_test_labels)
  return fake


def test_expand_builds_one_standard_workdir_and_config_per_run(tmp_path):
  runs = grid.expand(make_grid(), str(tmp_path))
  assert len(runs) == 2 * 2 * 3 and len({r.workdir for r in runs}) == 12
  run = runs[-1]
  assert run.workdir == str(tmp_path / "pneumoniamnist" / "resnet50_qcnn" / "seed2")
  assert (run.config.dataset, run.config.model, run.config.seed, run.config.size) == ("pneumoniamnist",
                                                                                      "resnet50_qcnn", 2, 64)
  assert run.config.preprocess.channels == 3 and run.config.model_options.to_dict() == {"n_qubits": 4}
  assert runs[0].config.size == 28 and runs[0].config.num_epochs == 1
  subset = grid.expand(make_grid(), str(tmp_path), datasets=["breastmnist"], seeds=[1])
  assert [(r.dataset, r.model, r.seed) for r in subset] == [("breastmnist", "resnet50_mlp", 1),
                                                            ("breastmnist", "resnet50_qcnn", 1)]
  with pytest.raises(ValueError, match="octmnist"):
    grid.expand(make_grid(), str(tmp_path), datasets=["octmnist"])


def test_a_row_can_name_its_model_so_one_model_appears_with_several_options(tmp_path):
  config = make_grid()
  config.models = ml_collections.ConfigDict({
      "qcnn_so4": {"model": "qcnn", "conv_unit": "so4", "overrides": {"block_learning_rate": 0.01,
                                                                      "preprocess": {"augment": True}}},
      "qcnn": {}})
  runs = grid.expand(config, str(tmp_path), datasets=["breastmnist"], seeds=[0])
  assert [(r.model, r.config.model, r.config.model_options.to_dict()) for r in runs] == [
      ("qcnn", "qcnn", {}), ("qcnn_so4", "qcnn", {"conv_unit": "so4"})]
  assert runs[1].workdir == str(tmp_path / "breastmnist" / "qcnn_so4" / "seed0")
  assert (runs[0].config.block_learning_rate, runs[0].config.preprocess.augment) == (None, False)
  assert (runs[1].config.block_learning_rate, runs[1].config.preprocess.augment) == (0.01, True)
  assert runs[1].config.preprocess.mean == 0.5  # the rest of the nested base config is kept


def test_train_runs_skips_finished_runs_and_resumes_a_killed_grid_in_order(tmp_path, fake_train):
  config = make_grid(datasets=("breastmnist",))
  runs = grid.expand(config, str(tmp_path))
  order = [(r.dataset, r.model, r.seed) for r in runs]
  write_finished_run(runs[1].workdir, *order[1], config=runs[1].config)  # finished earlier: skipped
  fake_train.kill_on = order[3]
  with pytest.raises(KeyboardInterrupt):
    grid.train_runs(config, str(tmp_path), runs)
  assert fake_train.calls == [order[0], order[2], order[3]]
  os.makedirs(runs[3].workdir)  # the killed run had started: it is retried first, then the rest
  reports.write_json_atomic(os.path.join(runs[3].workdir, "config.json"), {})
  assert runs[3].status() == grid.STARTED and runs[4].status() == grid.PENDING
  fake_train.kill_on, fake_train.calls = None, []
  assert grid.train_runs(config, str(tmp_path), runs) == {}
  assert fake_train.calls == order[3:]
  assert all(r.status() == grid.FINISHED for r in runs)
  fake_train.calls = []
  grid.train_runs(config, str(tmp_path), runs)
  assert fake_train.calls == []


def test_report_aggregates_seeds_lists_pending_and_failed_runs_and_joins_published(tmp_path, fake_train):
  config = make_grid()
  fake_train.fail_on = {("breastmnist", "resnet50_mlp", 2)}
  subset = grid.expand(config, str(tmp_path), datasets=["breastmnist"])
  failures = grid.train_runs(config, str(tmp_path), subset)
  assert list(failures.values()) == ["FloatingPointError: Non-finite loss"]
  csv_path, md_path = grid.write_report(config, str(tmp_path), failures=failures)
  assert fake_train.label_loads == ["breastmnist"]  # read once for the ensembles and comparisons

  with open(csv_path, newline="") as f:
    rows = {(r["dataset"], r["model"]): r for r in csv.DictReader(f)}
  assert len(rows) == 4
  qcnn = rows[("breastmnist", "resnet50_qcnn")]
  aucs = [fake_test_auc("resnet50_qcnn", s) for s in (0, 1, 2)]
  assert (qcnn["n_seeds"], qcnn["n_runs"], qcnn["seeds"]) == ("3", "3", "0 1 2")
  assert float(qcnn["test_auc_mean"]) == pytest.approx(np.mean(aucs))
  assert float(qcnn["test_auc_std"]) == pytest.approx(np.std(aucs, ddof=1))
  assert float(qcnn["test_acc_mean"]) == pytest.approx(np.mean(aucs) - 0.1)
  assert float(qcnn["wall_time_s"]) == pytest.approx(20.0)
  assert float(qcnn["test_f1_macro_mean"]) == pytest.approx(0.65)
  assert float(qcnn["val_auc_mean"]) == pytest.approx(np.mean(aucs))  # what a choice between rows may use
  assert float(qcnn["val_balanced_accuracy_mean"]) == pytest.approx(0.61)
  assert rows[("breastmnist", "resnet50_mlp")]["n_seeds"] == "2"
  pending = rows[("pneumoniamnist", "resnet50_qcnn")]
  assert (pending["n_seeds"], pending["test_auc_mean"], pending["test_auc_std"]) == ("0", "", "")
  # Seed ensemble: the seeds' probabilities averaged per example, scored by medmnist's evaluator.
  from medmnist.evaluator import getACC, getAUC  # pylint: disable=g-import-not-at-top
  probs = np.mean([metrics.scores_from_logits(np.random.default_rng(s).normal(size=(NUM_TEST, 1))
                                              + QUALITY["resnet50_qcnn"] * (2 * LABELS - 1), metrics.BINARY)
                   for s in (0, 1, 2)], axis=0)
  assert float(qcnn["ensemble_test_auc"]) == pytest.approx(getAUC(LABELS, probs, metrics.BINARY))
  assert float(qcnn["ensemble_test_acc"]) == pytest.approx(getACC(LABELS, probs, metrics.BINARY))
  assert pending["ensemble_test_auc"] == ""

  md = open(md_path).read()
  assert "12 runs: 5 finished, 0 started (partial), 7 pending" in md
  assert f"{np.mean(aucs):.3f} ± {np.std(aucs, ddof=1):.3f}" in md
  assert f"| {np.mean(aucs):.3f} / 0.610 |" in md
  assert "| breastmnist | resnet50_mlp | 2 | failed: FloatingPointError: Non-finite loss |" in md
  assert md.count("| pending |") == 6
  assert "| ResNet-50 (28) | 0.857 | 0.812 | [medmnist_v2] |" in md
  assert "| ResNet-50 (28) | 0.948 | 0.854 | [medmnist_v2] |" in md  # pneumoniamnist, though pending
  assert "10.1038/s41597-022-01721-8" in md
  run_lines = [line for line in md.split("## Runs")[1].splitlines() if line.startswith("| breastmnist | resnet50_qcnn |")]
  assert len(run_lines) == 3 and all(line.count("[") == 2 for line in run_lines)  # AUC and ACC intervals
  assert "Brackets: 90% bootstrap interval of the run's own metric over test examples" in md  # the grid's
  assert all("[" not in line for line in md.splitlines() if "| pending |" in line)
  comparison = next(line for line in md.splitlines() if line.startswith("| breastmnist | resnet50_qcnn | resnet50_mlp"))
  assert "| 0 1 |" in comparison and comparison.count("[") == 4  # seeds both finished; 4 intervals
  config.digits = 4  # Medical MNIST grids: differences of a few test errors
  _, md_path = grid.write_report(config, str(tmp_path), failures=failures)
  assert f"{np.mean(aucs):.4f} ± {np.std(aucs, ddof=1):.4f}" in open(md_path).read()


def test_comparisons_pair_seeds_and_bootstrap_over_test_examples(tmp_path, fake_train):
  config = make_grid(datasets=("breastmnist",))
  grid.train_runs(config, str(tmp_path), grid.expand(config, str(tmp_path)))
  (result,) = grid.compare(config, grid.expand(config, str(tmp_path)))
  assert result["seeds"] == [0, 1, 2]
  assert result["seed_auc"].estimate == pytest.approx(0.10)
  example = result["example_auc"]
  assert example.low < example.estimate < example.high and example.low > 0  # stronger fake predictions
  assert example.confidence == 0.9 and example.num_resamples == 300
  assert [result] == grid.compare(config, grid.expand(config, str(tmp_path)))  # seeded
  (quick,) = grid.compare(config, grid.expand(config, str(tmp_path)), example_intervals=False)
  assert "example_auc" not in quick and quick["seed_auc"] == result["seed_auc"]


def test_each_run_gets_its_test_metric_with_an_interval_over_test_examples(tmp_path, fake_train):
  """The estimate is medmnist's evaluator on the run's own predictions; the interval covers it."""
  config = make_grid(seeds=(0, 1))
  runs = grid.expand(config, str(tmp_path))
  grid.train_runs(config, str(tmp_path), runs[:1])
  _, md_path = grid.write_report(config, str(tmp_path), datasets=[runs[0].dataset])
  assert "4 runs: 1 finished" in open(md_path).read()  # of 8: one dataset's
  intervals = grid.run_intervals(config, runs)
  assert list(intervals) == runs[:1]  # finished runs only
  from medmnist.evaluator import getACC, getAUC  # pylint: disable=g-import-not-at-top
  probs = metrics.scores_from_logits(np.random.default_rng(runs[0].seed).normal(size=(NUM_TEST, 1))
                                     + QUALITY[runs[0].model] * (2 * LABELS - 1), metrics.BINARY)
  auc, acc = intervals[runs[0]]["auc"], intervals[runs[0]]["acc"]
  assert auc.estimate == pytest.approx(getAUC(LABELS, probs, metrics.BINARY))
  assert acc.estimate == pytest.approx(getACC(LABELS, probs, metrics.BINARY))
  assert auc.low < auc.estimate < auc.high and acc.low < acc.estimate < acc.high
  assert (auc.confidence, auc.num_resamples) == (0.9, 300)


def test_report_tolerates_missing_predictions_but_not_a_bug(tmp_path, fake_train, monkeypatch, caplog):
  config = make_grid(datasets=("breastmnist",), seeds=(0, 1))
  runs = grid.expand(config, str(tmp_path))
  grid.train_runs(config, str(tmp_path), runs)

  def broken_bootstrap(*args, **kwargs):
    raise ValueError("a bug in the bootstrap")

  with monkeypatch.context() as patch:
    patch.setattr(grid.stats, "example_bootstrap", broken_bootstrap)
    with pytest.raises(ValueError, match="a bug in the bootstrap"):  # not a note in the report
      grid.compare(config, runs)

  (victim,) = [r for r in runs if (r.model, r.seed) == ("resnet50_mlp", 1)]
  for path in glob.glob(os.path.join(victim.workdir, "predictions", "*")):
    os.remove(path)
  assert set(grid.ensembles(runs)) == {("breastmnist", "resnet50_qcnn")}
  assert "no seed ensemble for breastmnist resnet50_mlp: no test predictions CSV" in caplog.text
  (result,) = grid.compare(config, runs)
  assert result["example_note"].startswith("no test predictions CSV") and "seed_auc" in result


def test_gate_effects_read_summaries_or_a_matching_evaluation_of_the_same_checkpoint(tmp_path, fake_train):
  """Seed 0's summary holds the gate-off metrics; seed 1 is an older run evaluated afterwards
  (metrics_eval.json); seed 2's evaluation is of another checkpoint (its test AUC differs) and is
  left out, as are the models without those metrics."""
  config = make_grid(datasets=("breastmnist",))
  root = str(tmp_path)
  runs = grid.expand(config, root)
  grid.train_runs(config, root, runs)
  hybrid = {r.seed: r for r in runs if r.model == "resnet50_qcnn"}
  summary0 = reports.read_json(hybrid[0].summary_path)
  reports.write_json_atomic(hybrid[0].summary_path, {**summary0, "residual_gate": 0.5, "test_auc_gate_off": 0.80,
                                                     "test_acc_gate_off": 0.70})
  for seed, test_auc in ((1, fake_test_auc("resnet50_qcnn", 1)), (2, 0.123)):
    reports.write_json_atomic(os.path.join(hybrid[seed].workdir, "metrics_eval.json"),
                              {"epoch": 0, "test": {"auc": test_auc}, "residual_gate": -0.01,
                               "test_auc_gate_off": 0.90, "test_acc_gate_off": 0.81})
  (effect,) = grid.gate_effects(config, grid.expand(config, root))
  assert (effect["model"], effect["seeds"], effect["gate_min"], effect["gate_max"]) == ("resnet50_qcnn", [0, 1], -0.01, 0.5)
  assert effect["test_auc"] == pytest.approx(0.905) and effect["test_auc_gate_off"] == pytest.approx(0.85)
  # on − off per seed: AUC 0.90 − 0.80 and 0.91 − 0.90; ACC (AUC − 0.1) 0.80 − 0.70 and 0.81 − 0.81.
  assert effect["seed_auc"].estimate == pytest.approx(0.055) and effect["seed_acc"].estimate == pytest.approx(0.05)
  _, md_path = grid.write_report(config, root)
  md = open(md_path).read()
  assert "## What the residual gate adds" in md and "| breastmnist | resnet50_qcnn | 0 1 | -0.01, 0.5 | 0.905 | 0.850 |" in md


def test_cli_only_report_rebuilds_results_without_training(tmp_path, fake_train, monkeypatch):
  root = tmp_path / "smoke"
  run = grid.expand(grid_smoke.get_config(), str(root))[0]
  write_finished_run(run.workdir, run.dataset, run.model, run.seed, config=run.config)
  monkeypatch.setattr(train, "train_and_evaluate", lambda *a, **k: pytest.fail("--only_report trained"))
  argv = ["grid", "--config=experiments/configs/grid_smoke.py", f"--workdir={root}", "--only_report"]
  flags.FLAGS(argv)
  try:
    grid_cli.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  md = (root / grid.RESULTS_MD).read_text()
  assert "4 runs: 1 finished, 0 started (partial), 3 pending" in md
  assert (root / grid.RESULTS_CSV).exists()
  flags.FLAGS(argv + [f"--datasets={run.dataset}"])
  try:
    grid_cli.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  assert "4 runs: 1 finished" in (root / grid.RESULTS_MD).read_text()


def test_records_let_a_fresh_clone_continue_the_grid(tmp_path, fake_train, monkeypatch, caplog):
  grid_config = make_grid(datasets=("breastmnist",), seeds=(0, 1))
  records = str(tmp_path / "results" / "runs")
  first = grid.expand(grid_config, str(tmp_path / "machine_a"), records=records)

  def train_with_config(config, workdir, overwrite=False):
    reports.write_json_atomic(os.path.join(workdir, "config.json"), config.to_dict())
    return FakeTrain.__call__(fake_train, config, workdir, overwrite)

  monkeypatch.setattr(train, "train_and_evaluate", train_with_config)
  grid.train_runs(grid_config, str(tmp_path / "machine_a"), first[:3], records=records)
  recorded = os.listdir(os.path.join(first[0].record_dir, "predictions"))
  assert recorded and all(name.endswith(".csv.gz") for name in recorded)
  assert not os.path.exists(first[3].record_dir)
  # A fresh machine: no workdirs, only the committed records; data location may differ.
  grid_config.base.data_dir = "/elsewhere"
  fresh = grid.expand(grid_config, str(tmp_path / "machine_b"), records=records)
  assert [r.status() for r in fresh] == [grid.FINISHED] * 3 + [grid.PENDING]
  for from_record, from_workdir in zip(grid.test_predictions(fresh[0]), grid.test_predictions(first[0])):
    np.testing.assert_array_equal(from_record, from_workdir)
  fake_train.calls.clear()
  grid.train_runs(grid_config, str(tmp_path / "machine_b"), fresh, records=records)
  assert fake_train.calls == [(first[3].dataset, first[3].model, first[3].seed)]
  csv_path, md_path = grid.write_report(grid_config, str(tmp_path / "machine_b"), records=records)
  rows = {r["model"]: r for r in csv.DictReader(open(csv_path))}
  assert rows["resnet50_qcnn"]["n_seeds"] == "2" and rows["resnet50_mlp"]["n_seeds"] == "2"
  assert "comparisons" in open(md_path).read().lower()
  # A record made with another config (here: another learning rate) does not count ...
  grid_config.base.learning_rate = 0.5
  assert grid.expand(grid_config, str(tmp_path / "machine_c"), records=records)[0].status() == grid.PENDING
  # ... nor one whose model ran with another default (its config stores the options the model used),
  # while a record from before configs stored them still counts.
  grid_config.base.learning_rate = medmnist.get_config().learning_rate
  run = grid.expand(grid_config, str(tmp_path / "machine_c"), records=records)[0]
  path = os.path.join(run.record_dir, "config.json")
  recorded = reports.read_json(path)
  assert run.status() == grid.FINISHED and recorded["model_resolved"]["residual"] is False
  recorded["model_resolved"]["residual"] = True
  reports.write_json_atomic(path, recorded)
  caplog.clear()
  assert [run.status(), run.status(), run.summary()] == [grid.PENDING, grid.PENDING, None]
  assert sum("made with another config" in m for m in caplog.messages) == 1  # read and judged once
  del recorded["model_resolved"]
  reports.write_json_atomic(path, recorded)
  assert run.status() == grid.FINISHED


@pytest.mark.parametrize("name", ["grid_backbones", "grid_backbones_cpu", "grid_breast16", "grid_hassan_cpu",
                                  "grid_heads", "grid_medmnist", "grid_quick", "grid_quick_recipes"])
def test_committed_records_count_as_finished_for_their_grid(name, tmp_path):
  """Every committed record under results/<grid>/runs matches its grid's run config, so a fresh
  clone continues the grid instead of retraining (a changed default would silently orphan them)."""
  records = os.path.join(REPO, "results", name, "runs")
  if not os.path.isdir(records):
    pytest.skip(f"no records of {name}")
  grid_config = importlib.import_module(f"experiments.configs.{name}").get_config()
  runs = [r for r in grid.expand(grid_config, str(tmp_path), records=records) if os.path.isdir(r.record_dir)]
  assert runs
  expected = [grid.PENDING if earlier_hybrid(r.record_dir) else grid.FINISHED for r in runs]
  assert [r.status() for r in runs] == expected, [r.record_dir for r in runs]


def earlier_hybrid(record_dir: str) -> bool:
  """A record of a dressed hybrid made before its head changed (the residual head was then the
  default, and its gated branch's bias started at the prior): no current model reproduces it, so
  its grid must train it again rather than take it for finished."""
  recorded = reports.read_json(os.path.join(record_dir, "config.json"))
  return (recorded["model"].startswith(("resnet50_qcnn", "resnet50_mlp"))
          and "bottleneck_norm" not in recorded.get("model_resolved", {"bottleneck_norm": None}))


def test_test_labels_are_read_once_per_test_split(monkeypatch):
  """Rows of one dataset on other splits (Medical MNIST 80/10/10 and 80/20) get their own labels."""
  loads = []

  def load_test_labels(config):
    loads.append(config.split_scheme)
    return metrics.BINARY, np.arange(10 if config.split_scheme == "80_10_10" else 20), LABELS

  monkeypatch.setattr(grid, "load_test_labels", load_test_labels)
  cache, runs = {}, []
  for scheme in ("80_10_10", "80_20", "80_10_10"):
    config = medmnist.get_config()
    config.dataset, config.split_scheme = "medical_mnist", scheme
    runs.append(grid.GridRun("medical_mnist", "resnet50", 0, f"/w/{scheme}", config))
  sizes = [len(grid.cached_test_labels(cache, run)[1]) for run in runs]
  assert sizes == [10, 20, 10] and loads == ["80_10_10", "80_20"]


def test_a_base_model_option_reaches_every_row_whose_model_has_it(tmp_path):
  """`--config.base.model_options.width=16` used to vanish: each row's options replaced the base's."""
  grid_config = importlib.import_module("experiments.configs.grid_medmnist").get_config()
  grid_config.base.model_options.width = 16
  grid_config.models.resnet50_qcnn = {"n_qubits": 4}
  runs = {r.model: r.config for r in grid.expand(grid_config, str(tmp_path), seeds=[0], datasets=["breastmnist"])}
  assert runs["resnet50"].model_resolved["width"] == 16 and runs["resnet50_mlp"].model_resolved["width"] == 16
  assert runs["resnet50_qcnn"].model_resolved["width"] == 16 and runs["resnet50_qcnn"].model_resolved["n_qubits"] == 4
  assert "width" not in runs["qcnn"].model_resolved  # the QCNN alone has no ResNet


def test_dry_run_plans_exactly_the_runs_the_committed_records_lack(tmp_path, monkeypatch):
  """The README's grid trains nothing; grid_medmnist's records leave its 24 runs of today's hybrids
  and of the sets recorded for `qcnn` only, each estimated from a measured step."""
  monkeypatch.setattr(grid, "step_seconds", lambda config: 2.0)
  def plan(name):
    grid_config = importlib.import_module(f"experiments.configs.{name}").get_config()
    runs = grid.expand(grid_config, str(tmp_path / name), records=os.path.join(REPO, "results", name, "runs"))
    return runs, grid.plan(runs)
  runs, rows = plan("grid_medmnist_inpath")
  assert rows == [] and "0 runs" in grid.format_plan(runs, rows)
  runs, rows = plan("grid_medmnist")
  left = {(r["dataset"], r["model"]): r for r in rows}
  assert sum(len(r["seeds"]) for r in rows) == 24 and ("breastmnist", "resnet50") not in left
  assert ("breastmnist", "resnet50_qcnn") in left and ("retinamnist", "qcnn") not in left
  breast = left[("breastmnist", "resnet50_qcnn")]
  assert breast["steps"] == 100 * (546 // 128) and breast["hours"] == pytest.approx(3 * 400 * 2.0 / 3600)
  assert "total: 24 runs" in grid.format_plan(runs, rows)


def test_step_seconds_times_the_runs_model_on_this_machine():
  grid_config = make_grid(datasets=("breastmnist",), seeds=(0,))
  grid_config.base.model_options.width = 4
  grid_config.base.batch_size = 8
  assert 0 < grid.step_seconds(grid.expand(grid_config, "/unused")[0].config) < 30


def test_only_report_without_the_training_overrides_reports_the_trained_runs(tmp_path, fake_train):
  given = make_grid(datasets=("breastmnist",), seeds=(0,))
  trained = make_grid(datasets=("breastmnist",), seeds=(0,))
  trained.base.model_options.width = 4
  grid.train_runs(trained, str(tmp_path), grid.expand(trained, str(tmp_path)))
  for run in grid.expand(trained, str(tmp_path)):
    write_finished_run(run.workdir, run.dataset, run.model, run.seed, config=run.config)
  assert all(r.status() != grid.FINISHED for r in grid.expand(given, str(tmp_path)))
  reported = grid.config_for_report(given, str(tmp_path))
  assert [r.status() for r in grid.expand(reported, str(tmp_path))] == [grid.FINISHED] * 2
  assert grid.config_for_report(trained, str(tmp_path)) is trained


def test_training_over_a_committed_record_is_refused_unless_overwrite_records(tmp_path, fake_train, monkeypatch):
  monkeypatch.chdir(REPO)
  argv = ["grid", "--config=experiments/configs/grid_medmnist.py", f"--workdir={tmp_path}",
          "--records=results/grid_medmnist/runs", "--datasets=breastmnist", "--models=resnet50_qcnn", "--seeds=0"]
  flags.FLAGS(argv)
  try:
    with pytest.raises(cli.UsageError, match="overwrite .* committed file"):
      grid_cli.main(argv)
  finally:
    flags.FLAGS.unparse_flags()
  assert fake_train.calls == []
