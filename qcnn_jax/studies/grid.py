"""Grids of runs (datasets × models × seeds): training, resuming and the results report.

A grid config (see `experiments/configs/grid_medmnist.py`) holds:

  name                 title of the report.
  base                 a full train config (`experiments/configs/medmnist.py` keys).
  datasets             dataset names, in report order.
  models               row name → model_options (a ConfigDict: runs and rows follow sorted names).
                       The row name is the model's name (`qcnn_jax.models.MODELS`), or any name when
                       the options hold `model`: {"qcnn_so4": {"model": "qcnn", "conv_unit": "so4"}}
                       trains `qcnn` with conv_unit so4 under the row (and workdir) "qcnn_so4".
                       Options may also hold `overrides`: a nested dict of base keys for that row,
                       e.g. {"overrides": {"block_learning_rate": 0.01}}.
  seeds                training seeds.
  comparisons          (model A, model B) pairs compared with paired bootstrap intervals.
  dataset_overrides    optional: dataset → nested dict of base keys to override for that dataset.
  bootstrap            optional: num_resamples, confidence, seed of the intervals.

Every run lives in its own standard workdir `{root}/{dataset}/{model}/seed{seed}`. A run whose
`summary.json` exists is finished and skipped; any other run is (re)started with
`train.train_and_evaluate`, which resumes a partial run from its checkpoint. The report
(`{root}/results.csv`, `{root}/results.md`) lists every run of the grid (finished, started or
pending), mean ± std over finished seeds next to the published numbers (`qcnn_jax.studies.published`),
and the paired comparisons (`qcnn_jax.evaluation.stats`).
"""

import csv
import dataclasses
import functools
import glob
import io
import json
import logging
import math
import os
import time
from typing import Any

import ml_collections
import numpy as np

from qcnn_jax import models, runtime
from qcnn_jax.data import pipeline, sources
from qcnn_jax.evaluation import metrics, reports, stats
from qcnn_jax.studies import published
from qcnn_jax.studies import runs as run_folders
from qcnn_jax.training import checkpointing, lock, train

RESULTS_CSV = "results.csv"
RESULTS_MD = "results.md"
GRID_CONFIG = "grid_config.json"  # the config the grid was last trained with
FINISHED, STARTED, PENDING = "finished", "started", "pending"
# Summary keys averaged over seeds (mean and std) and only averaged (mean).
MEAN_STD_KEYS = ("test_auc", "test_acc")
MEAN_KEYS = ("test_precision_macro", "test_recall_macro", "test_f1_macro", "test_balanced_accuracy", "val_auc",
             "val_balanced_accuracy")
CSV_COLUMNS = (("dataset", "model", "n_seeds", "n_runs", "seeds")
               + tuple(f"{k}_{s}" for k in MEAN_STD_KEYS for s in ("mean", "std"))
               + tuple(f"{k}_mean" for k in MEAN_KEYS) + ("ensemble_test_auc", "ensemble_test_acc", "wall_time_s",
                                                          "num_params", "quantum_params"))
DEFAULT_BOOTSTRAP = {"num_resamples": 10_000, "confidence": 0.95, "seed": 0}


# The small files of a finished run that a record keeps (never checkpoints or train predictions).
METRICS_FILE = "metrics.jsonl"  # kept gzip-compressed in records, as the predictions are
RECORD_FILES = ("config.json", reports.SUMMARY_FILENAME, "metrics_final.json", METRICS_FILE, "metrics_eval.json")
# A residual head's gate g and its linear path's test metrics (`train.gate_off_report`).
GATE_OFF_KEYS = ("residual_gate", "test_auc_gate_off", "test_acc_gate_off")
VAL_PREDICTIONS, TEST_PREDICTIONS = "*_val_*@*.csv", "*_test_*@*.csv"
RECORD_PREDICTIONS = (VAL_PREDICTIONS, TEST_PREDICTIONS)
# Records keep the predictions CSVs gzip-compressed (`gunzip` gives MedMNIST's file back): 2.3x
# smaller, and an 80/20 Medical MNIST test split is 11,791 rows.


@dataclasses.dataclass(frozen=True)
class GridRun:
  """One training run of a grid: its coordinates, workdir, full train config and, optionally, the
  folder of its committed record (`record_run`), which counts as finished like a workdir does."""
  dataset: str
  model: str
  seed: int
  workdir: str
  config: ml_collections.ConfigDict = dataclasses.field(compare=False, repr=False)
  record_dir: str | None = dataclasses.field(default=None, compare=False)

  @property
  def summary_path(self) -> str:
    return os.path.join(self.workdir, reports.SUMMARY_FILENAME)

  def has_record(self) -> bool:
    """True when a committed record of this run exists and was made with this run's config."""
    return bool(self.record_dir) and run_folders.RunFolder(self.record_dir).finished(self.config.to_dict())

  def finished_dir(self) -> str | None:
    """The folder holding this run's finished files, made with this run's config: the workdir,
    else its record, else None."""
    if run_folders.RunFolder(self.workdir).finished(self.config.to_dict()):
      return self.workdir
    return self.record_dir if self.has_record() else None

  def status(self) -> str:
    """"finished" (summary.json in the workdir or a record), "started" (workdir initialised) or "pending"."""
    if self.finished_dir():
      return FINISHED
    if os.path.exists(os.path.join(self.workdir, "config.json")):
      return STARTED
    return PENDING

  def summary(self) -> dict[str, Any] | None:
    """The run's summary.json, or None before it finishes."""
    folder = self.finished_dir()
    return reports.read_json(os.path.join(folder, reports.SUMMARY_FILENAME)) if folder else None

  def val_report(self) -> dict[str, Any]:
    """The reported (selected) checkpoint's validation report from metrics_final.json; {} before
    the run finishes or without that file. (Its validation AUC is also summary.json's val_auc.)"""
    folder = self.finished_dir()
    path = os.path.join(folder, "metrics_final.json") if folder else None
    return reports.read_json(path).get("val", {}) if path and os.path.exists(path) else {}

  def gate_off(self) -> dict[str, float]:
    """`GATE_OFF_KEYS` of a finished residual-head run: from summary.json, or for a run older than
    those entries from the metrics_eval.json `experiments.evaluate` wrote for the same checkpoint
    (its test AUC equals the summary's); {} otherwise."""
    summary, folder = self.summary() or {}, self.finished_dir()
    if all(k in summary for k in GATE_OFF_KEYS):
      return {k: summary[k] for k in GATE_OFF_KEYS}
    path = os.path.join(folder, "metrics_eval.json") if folder else None
    evaluated = reports.read_json(path) if path and os.path.exists(path) else {}
    if (all(k in evaluated for k in GATE_OFF_KEYS) and summary.get("test_auc") is not None
        and abs(evaluated.get("test", {}).get("auc", math.nan) - summary["test_auc"]) < 1e-6):
      return {k: evaluated[k] for k in GATE_OFF_KEYS}
    return {}


def record_run(run: GridRun) -> str:
  """Copies a finished workdir's small files (`RECORD_FILES`; metrics.jsonl and val/test predictions
  gzip-compressed; machine paths dropped from config.json)
  into `run.record_dir` (atomically, file by file; summary.json last) and returns that folder."""
  if not os.path.exists(run.summary_path):
    raise FileNotFoundError(f"{run.workdir} has not finished (no {reports.SUMMARY_FILENAME})")
  predictions = [os.path.relpath(p, run.workdir) for pattern in RECORD_PREDICTIONS
                 for p in glob.glob(os.path.join(glob.escape(run.workdir), "predictions", pattern))]
  small = [n for n in RECORD_FILES if n != reports.SUMMARY_FILENAME and os.path.exists(os.path.join(run.workdir, n))]
  reports.copy_files(run.workdir, run.record_dir, predictions + small, compress=predictions + [METRICS_FILE])
  run_folders.drop_machine_paths(run.record_dir)
  reports.copy_files(run.workdir, run.record_dir, [reports.SUMMARY_FILENAME])  # last: the record is complete
  return run.record_dir


def row_model_options(grid: ml_collections.ConfigDict, model: str, options: dict) -> dict:
  """A row's model options: the options set in `grid.base.model_options` (e.g. by
  `--config.base.model_options.width=16`) that `model` has, then the row's own on top."""
  base = {k: v for k, v in grid.base.get("model_options", {}).items()
          if v is not None and k in models.MODELS[model][1]}
  return {**base, **options}


def run_config(grid: ml_collections.ConfigDict, dataset: str, model: str, seed: int) -> ml_collections.ConfigDict:
  """The train config of one run: `grid.base` with dataset, model (row `model`'s "model" option,
  else `model` itself), model_options (`row_model_options`), seed, the dataset's overrides and the row's overrides."""
  config = grid.base.copy_and_resolve_references()
  options = grid.models[model].to_dict()
  row_overrides = options.pop("overrides", {})
  config.dataset, config.model, config.seed = dataset, options.pop("model", model), seed
  config.model_options = ml_collections.ConfigDict(row_model_options(grid, config.model, options))
  overrides = grid.get("dataset_overrides", {}).get(dataset)
  if overrides:
    config.update(overrides.to_dict())
  config.update(row_overrides)
  return train.with_resolved_model(config)


def expand(grid: ml_collections.ConfigDict, root: str, *, datasets=None, models=None, seeds=None,
           records: str | None = None) -> list[GridRun]:
  """The runs of `grid` under `root` in training order (dataset, then model, then seed).

  Args:
    grid: grid config (module docstring).
    root: grid directory.
    datasets, models, seeds: optional subsets (None = all); names must belong to the grid.
    records: folder of committed run records (`{records}/{dataset}/{model}/seed{seed}`), or None.

  Raises:
    ValueError: a subset names something the grid does not contain.
  """
  def pick(name: str, everything: list, subset) -> list:
    if subset is None:
      return everything
    unknown = [s for s in subset if s not in everything]
    if unknown:
      raise ValueError(f"{name} {unknown} not in the grid; it has {everything}")
    return [s for s in everything if s in subset]

  return [GridRun(d, m, s, os.path.join(root, d, m, run_folders.seed_dir(s)), run_config(grid, d, m, s),
                  os.path.join(records, d, m, run_folders.seed_dir(s)) if records else None)
          for d in pick("datasets", list(grid.datasets), datasets)
          for m in pick("models", list(grid.models.keys()), models)
          for s in pick("seeds", [int(s) for s in grid.seeds], seeds)]


def save_config(grid: ml_collections.ConfigDict, root: str) -> None:
  """Keeps the grid config a training command used (`GRID_CONFIG`), for `config_for_report`."""
  os.makedirs(root, exist_ok=True)
  reports.write_text_atomic(os.path.join(root, GRID_CONFIG), grid.to_json_best_effort(indent=1))


def config_for_report(grid: ml_collections.ConfigDict, root: str, records: str | None = None) -> ml_collections.ConfigDict:
  """The config to report `root` with: `grid`, unless none of its runs finished while the config the
  grid was trained with (`save_config`) differs; then that one (a report command without the
  training command's `--config` overrides still reports the runs it trained)."""
  path = os.path.join(root, GRID_CONFIG)
  if not os.path.exists(path) or any(run.status() == FINISHED for run in expand(grid, root, records=records)):
    return grid
  trained = ml_collections.ConfigDict(reports.read_json(path))
  differences = checkpointing.config_differences(trained.to_dict(), json.loads(grid.to_json_best_effort()))
  if differences:
    logging.warning("no run of this config finished in %s: reporting with the config it was trained with "
                    "(%s, differing keys: %s)", root, path, ", ".join(sorted(differences)))
    return trained
  return grid


def train_runs(grid: ml_collections.ConfigDict, root: str, runs: list[GridRun],
               records: str | None = None) -> dict[GridRun, str]:
  """Trains every unfinished run of `runs` in order, rewriting the report after each.

  A run that raises is logged and recorded; the grid goes on with the next run. The grid folder's
  lock is held throughout, so a second process on the same grid stops at once (`lock.FolderBusyError`).

  Returns:
    failed run → error message (empty when all finished).
  """
  with lock.hold(root, "grid folder"):
    return _train_runs(grid, root, runs, records)


def _train_runs(grid: ml_collections.ConfigDict, root: str, runs: list[GridRun], records: str | None):
  failures = {}
  save_config(grid, root)
  todo = [run for run in runs if run.status() != FINISHED]
  logging.info("%d runs: %d finished, %d to train", len(runs), len(runs) - len(todo), len(todo))
  with runtime.progress_bar(len(todo), unit="run", desc=grid.get("name", "grid"),
                            enabled=grid.base.get("progress", True)) as bar:
    for i, run in enumerate(todo, start=1):
      label = f"[{i}/{len(todo)}] {run.dataset} {run.model} seed {run.seed}"
      logging.info("%s: %s in %s", label, "resuming" if run.status() == STARTED else "training", run.workdir)
      bar.set_postfix_str(f"{run.dataset} {run.model} seed {run.seed}")
      try:
        train.train_and_evaluate(run.config, run.workdir)
        if run.record_dir:
          logging.info("%s: recorded in %s", label, record_run(run))
      except Exception as e:  # pylint: disable=broad-except  # one failed run must not stop the grid
        logging.exception("%s failed", label)
        failures[run] = f"{type(e).__name__}: {e}"
      write_report(grid, root, failures=failures, example_intervals=False, records=records)
      bar.update()
  return failures


def train_steps(config: ml_collections.ConfigDict) -> int | None:
  """Train steps of a run (epochs × batches of the training split, MedMNIST's published split
  sizes); None for a set those do not describe."""
  info = sources.INFO.get(config.dataset)
  return info and config.num_epochs * pipeline.steps_per_epoch(info["n_samples"]["train"], config.batch_size)


def step_seconds(config: ml_collections.ConfigDict) -> float:
  """Seconds one train step of the run's model takes on this machine: a batch of zeros of the
  run's shape, the median of three steps after the compiling one."""
  import jax  # pylint: disable=g-import-not-at-top  # only a plan measures
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import optax  # pylint: disable=g-import-not-at-top
  info = sources.INFO[config.dataset]
  outputs = 1 if info["task"] == metrics.BINARY else len(info["label"])
  model = models.get_model(config.model, outputs, **{k: v for k, v in config.model_options.items() if v is not None})
  prep = pipeline.Preprocess(**config.preprocess)
  size = prep.resize or config.size
  batch = {"image": jnp.zeros((config.batch_size, size, size, prep.channels or info["n_channels"]), jnp.float32),
           "label": jnp.zeros((config.batch_size, 1), jnp.int32)}
  variables = jax.jit(functools.partial(model.init, train=False))(jax.random.PRNGKey(0), batch["image"][:1])
  state = train.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.adam(1e-3),
                                  batch_stats=variables.get("batch_stats", {}))
  step = jax.jit(functools.partial(train.train_step, model=model,
                                   task=metrics.BINARY if outputs == 1 else metrics.MULTI_CLASS))
  times = []
  for _ in range(4):
    start = time.perf_counter()
    state, out = step(state, batch)
    jax.block_until_ready(out["loss"])
    times.append(time.perf_counter() - start)
  return float(np.median(times[1:]))


def plan(runs: list[GridRun]) -> list[dict[str, Any]]:
  """What training `runs` would do, one row per (dataset, model) with runs left: the runs to train
  (pending or started), train steps per run, this machine's measured seconds per step (one
  compiled step per model and input shape, about a minute for a full-width ResNet-50 on 2 cores)
  and the estimated hours (train steps only: evaluation and checkpoints add to it)."""
  groups = {}
  for run in runs:
    if run.status() != FINISHED:
      groups.setdefault((run.dataset, run.model), []).append(run)
  rows, speeds = [], {}
  for (dataset, model), todo in groups.items():
    config, steps = todo[0].config, train_steps(todo[0].config)
    shape = (config.model, str(config.model_options), config.batch_size, config.size, str(config.preprocess))
    if steps and shape not in speeds:  # the number of logits hardly matters: measured once per model and shape
      logging.info("measuring a train step of %s (%s)", model, dataset)
      speeds[shape] = step_seconds(config)
    step_s = speeds.get(shape)
    rows.append({"dataset": dataset, "model": model, "seeds": [r.seed for r in todo], "steps": steps,
                 "step_s": step_s, "hours": steps and len(todo) * steps * step_s / 3600})
  return rows


def format_plan(runs: list[GridRun], rows: list[dict[str, Any]]) -> str:
  """The plan as a table and a total line."""
  lines = [f"{len(runs) - sum(len(r['seeds']) for r in rows)} of {len(runs)} runs finished (workdirs and records); "
           f"to train:"]
  for r in rows:
    estimate = f"{r['hours']:.2f} h" if r["hours"] is not None else "not estimated (split size unknown)"
    lines.append(f"  {r['dataset']} {r['model']} seeds {','.join(map(str, r['seeds']))}: {r['steps'] or '?'} steps/run"
                 f" at {r['step_s'] or float('nan'):.3f} s/step: {estimate}")
  total = sum(r["hours"] or 0 for r in rows)
  lines.append(f"total: {sum(len(r['seeds']) for r in rows)} runs, about {total:.1f} h of training steps on this "
               "machine (measured now; evaluation and checkpoints add to it)")
  return "\n".join(lines)


def _mean_std(values: list[float]) -> tuple[float | None, float | None]:
  """(mean, sample std with ddof=1); std is None for one value, both None for none."""
  if not values:
    return None, None
  return float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else None


def aggregate(runs: list[GridRun]) -> list[dict[str, Any]]:
  """One row per (dataset, model) in grid order: counts and statistics over finished seeds.

  Returns:
    Dicts with the `CSV_COLUMNS` keys. `*_std` is the sample standard deviation over seeds (None
    with fewer than 2 finished seeds); `wall_time_s` is the mean training wall time per finished
    run in seconds; statistics are None while no seed has finished.
  """
  groups: dict[tuple[str, str], list[GridRun]] = {}
  for run in runs:
    groups.setdefault((run.dataset, run.model), []).append(run)
  rows = []
  for (dataset, model), group in groups.items():
    done = [(run.seed, {**run.summary(), "val_balanced_accuracy": run.val_report().get("balanced_accuracy")})
            for run in group if run.status() == FINISHED]
    row = {"dataset": dataset, "model": model, "n_seeds": len(done), "n_runs": len(group),
           "seeds": " ".join(str(seed) for seed, _ in done)}
    for key in MEAN_STD_KEYS:
      row[f"{key}_mean"], row[f"{key}_std"] = _mean_std([s[key] for _, s in done if s.get(key) is not None])
    for key in MEAN_KEYS + ("wall_time_s",):
      row[f"{key}_mean" if key in MEAN_KEYS else key] = _mean_std(
          [s[key] for _, s in done if s.get(key) is not None])[0]
    for key in ("num_params", "quantum_params"):
      row[key] = done[0][1].get(key) if done else None
    row["ensemble_test_auc"] = row["ensemble_test_acc"] = None  # filled by `ensembles`
    rows.append(row)
  return rows


def load_test_labels(config: ml_collections.ConfigDict) -> tuple[str, np.ndarray, np.ndarray]:
  """(task, index (N,) int64 ascending, labels (N, L) int64) of the test split of `config`'s dataset."""
  dataset = train.load_config_dataset(config)
  test = pipeline.ArraySplit.from_source(dataset.splits["test"])
  order = np.argsort(test.index)
  return dataset.task, test.index[order], test.label[order]


def cached_test_labels(cache: dict, run: GridRun) -> tuple[str, np.ndarray, np.ndarray]:
  """`load_test_labels` of the run's test split, read once per `cache` (a report shares one). Rows
  of one dataset may use other splits (e.g. Medical MNIST 80/10/10 and 80/20): the split scheme and
  seed are part of the key."""
  key = (run.dataset, run.config.get("split_scheme"), run.config.get("split_seed"))
  if key not in cache:
    cache[key] = load_test_labels(run.config)
  return cache[key]


class PredictionsMismatchError(ValueError):
  """A run's test predictions do not cover the test split's indices."""


# What may keep a report from ensembles and example-level intervals (it then says why): missing
# predictions or test labels, a corrupt data file, predictions of another test split. Anything else
# is a bug and propagates.
REPORT_GAPS = (FileNotFoundError, sources.ChecksumError, PredictionsMismatchError)


def test_predictions(run: GridRun) -> tuple[np.ndarray, np.ndarray]:
  """(index (N,), scores (N, K)) of the run's test predictions CSV (`run_folders.RunFolder.test_predictions`),
  plain (workdir) or compressed (record), rows in ascending index."""
  return reports.read_predictions_csv(run_folders.RunFolder(run.finished_dir() or run.workdir).test_predictions())


def _aligned_scores(runs: list[GridRun], index: np.ndarray) -> list[np.ndarray]:
  scores = []
  for run in runs:
    run_index, run_scores = test_predictions(run)
    if not np.array_equal(run_index, index):
      raise PredictionsMismatchError(f"test predictions of {run.workdir} do not cover the test split's indices")
    scores.append(run_scores)
  return scores


def ensembles(runs: list[GridRun], labels_cache: dict | None = None) -> dict[tuple[str, str], dict[str, float]]:
  """Seed ensembles: per (dataset, model) with >= 2 finished seeds, the test AUC and ACC of the
  seeds' predicted scores (probabilities) averaged per example. Groups whose predictions or test
  labels cannot be read are left out. `labels_cache`: see `cached_test_labels`."""
  groups: dict[tuple[str, str], list[GridRun]] = {}
  for run in runs:
    if run.status() == FINISHED:
      groups.setdefault((run.dataset, run.model), []).append(run)
  labels_cache = {} if labels_cache is None else labels_cache
  results = {}
  for (dataset, model), group in groups.items():
    if len(group) < 2:
      continue
    try:
      task, index, labels = cached_test_labels(labels_cache, group[0])
      scores = np.mean(_aligned_scores(group, index), axis=0)
    except REPORT_GAPS as e:
      logging.warning("no seed ensemble for %s %s: %s", dataset, model, e)
      continue
    results[(dataset, model)] = {"ensemble_test_auc": metrics.auc(labels, scores, task),
                                 "ensemble_test_acc": metrics.acc(labels, scores, task)}
  return results


def bootstrap_options(grid: ml_collections.ConfigDict) -> dict[str, Any]:
  """num_resamples, confidence and seed of the intervals: `DEFAULT_BOOTSTRAP` updated by `grid.bootstrap`."""
  return {**DEFAULT_BOOTSTRAP, **grid.get("bootstrap", ml_collections.ConfigDict()).to_dict()}


def run_intervals(grid: ml_collections.ConfigDict, runs: list[GridRun],
                  labels_cache: dict | None = None) -> dict[GridRun, dict[str, stats.Interval]]:
  """Per finished run whose test predictions and labels can be read: its test AUC and ACC with a
  bootstrap interval over the test examples (the test set's own noise, e.g. to set one run beside a
  published single-run figure). `labels_cache`: see `cached_test_labels`."""
  labels_cache = {} if labels_cache is None else labels_cache
  out = {}
  for run in runs:
    if run.status() != FINISHED:
      continue
    try:
      task, index, labels = cached_test_labels(labels_cache, run)
      scores = _aligned_scores([run], index)
    except REPORT_GAPS:
      continue
    out[run] = stats.paired_bootstrap(labels, scores, lambda m: m[0], task, **bootstrap_options(grid))
  return out


def compare(grid: ml_collections.ConfigDict, runs: list[GridRun], example_intervals: bool = True,
            labels_cache: dict | None = None) -> list[dict]:
  """Paired comparisons `grid.comparisons` on every dataset, over the seeds both models finished
  (`labels_cache`: see `cached_test_labels`).

  Returns:
    Dicts: dataset, model_a, model_b, seeds, and `stats.Interval`s (A minus B) "seed_auc",
    "seed_acc" (bootstrap over seeds) and, when `example_intervals` and the predictions and test
    labels are available, "example_auc", "example_acc" (paired bootstrap over test examples of
    the seed-averaged difference); otherwise "example_note" says why they are missing.
  """
  options = bootstrap_options(grid)
  finished = {(r.dataset, r.model, r.seed): r for r in runs if r.status() == FINISHED}
  labels_cache = {} if labels_cache is None else labels_cache
  results = []
  for dataset in dict.fromkeys(r.dataset for r in runs):
    for model_a, model_b in grid.get("comparisons", ()):
      seeds = [r.seed for r in runs if r.dataset == dataset and r.model == model_a
               and (dataset, model_b, r.seed) in finished and (dataset, model_a, r.seed) in finished]
      if not seeds:
        continue
      run_a = [finished[(dataset, model_a, s)] for s in seeds]
      run_b = [finished[(dataset, model_b, s)] for s in seeds]
      result = {"dataset": dataset, "model_a": model_a, "model_b": model_b, "seeds": seeds}
      for key in ("auc", "acc"):
        result[f"seed_{key}"] = stats.seed_bootstrap([r.summary()[f"test_{key}"] for r in run_a],
                                                     [r.summary()[f"test_{key}"] for r in run_b], **options)
      if not example_intervals:
        result["example_note"] = "not computed in intermediate reports"
        results.append(result)
        continue
      try:
        task, index, labels = cached_test_labels(labels_cache, run_a[0])
        intervals = stats.example_bootstrap(labels, _aligned_scores(run_a, index), _aligned_scores(run_b, index),
                                            task, **options)
        result.update({f"example_{k}": v for k, v in intervals.items()})
      except REPORT_GAPS as e:
        result["example_note"] = str(e)
      results.append(result)
  return results


def gate_effects(grid: ml_collections.ConfigDict, runs: list[GridRun]) -> list[dict]:
  """Per (dataset, model) with a residual head: what its gate adds on test, over the finished seeds
  whose gate-off metrics are known (`GridRun.gate_off`).

  Returns:
    Dicts: dataset, model, seeds and the entries of `stats.gate_effect`.
  """
  groups: dict[tuple[str, str], list[tuple[GridRun, dict]]] = {}
  for run in runs:
    if run.status() == FINISHED and (off := run.gate_off()):
      groups.setdefault((run.dataset, run.model), []).append((run, off))
  return [{"dataset": dataset, "model": model, "seeds": [run.seed for run, _ in pairs],
           **stats.gate_effect([run.summary() for run, _ in pairs], [off for _, off in pairs],
                               **bootstrap_options(grid))}
          for (dataset, model), pairs in groups.items()]


def _number(value, digits: int = 3) -> str:
  return "—" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _mean_pm_std(row: dict, key: str, digits: int = 3) -> str:
  mean, std = row[f"{key}_mean"], row.get(f"{key}_std")
  return _number(mean, digits) if std is None or mean is None else f"{mean:.{digits}f} ± {std:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
  return ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)] + ["| " + " | ".join(r) + " |" for r in rows]


def _dataset_section(dataset: str, rows: list[dict], digits: int, cited: set) -> list[str]:
  """One dataset's table of rows and the published numbers next to it (their sources added to `cited`)."""
  num = functools.partial(_number, digits=digits)
  lines = [f"## {dataset}", ""]
  lines += _table(["model", "seeds done", "val AUC / balanced acc", "test AUC", "test ACC", "balanced acc",
                   "precision (macro)", "recall (macro)", "F1 (macro)", "seed ensemble AUC / ACC",
                   "wall time / run (s)"],
                  [[row["model"], f"{row['n_seeds']}/{row['n_runs']}",
                    f"{num(row['val_auc_mean'])} / {num(row['val_balanced_accuracy_mean'])}",
                    _mean_pm_std(row, "test_auc", digits), _mean_pm_std(row, "test_acc", digits),
                    num(row["test_balanced_accuracy_mean"]), num(row["test_precision_macro_mean"]),
                    num(row["test_recall_macro_mean"]), num(row["test_f1_macro_mean"]),
                    f"{num(row['ensemble_test_auc'])} / {num(row['ensemble_test_acc'])}",
                    _number(row["wall_time_s"], 0)] for row in rows if row["dataset"] == dataset])
  reference = published.published(dataset)
  if reference:
    cited.update(r.source for r in reference)
    lines += ["", "Published (— = not reported or not verified):", ""]
    lines += _table(["published method", "test AUC", "test ACC", "source"],
                    [[r.method, num(r.test_auc), num(r.test_acc), f"[{r.source}]"] for r in reference])
  return lines + [""]


def _comparisons_section(grid: ml_collections.ConfigDict, comparisons: list[dict], digits: int) -> list[str]:
  """The paired comparisons table (A − B, seed and test-example bootstrap intervals)."""
  lines = ["## Paired comparisons (A − B)", "",
           "Seed bootstrap: interval of the mean per-seed difference, resampling seeds (run-to-run "
           "variation only; coarse with few seeds). Test-example bootstrap: the same resample of test "
           "examples for both models and all seeds, metric per run, averaged over seeds, then A − B: "
           "the uncertainty from the finite test set for these trained models. "
           f"Percentile intervals, settings {bootstrap_options(grid)}.", ""]
  lines += _table(["dataset", "A", "B", "seeds", "ΔAUC seeds", "ΔACC seeds", "ΔAUC test examples",
                   "ΔACC test examples"],
                  [[c["dataset"], c["model_a"], c["model_b"], " ".join(map(str, c["seeds"])),
                    c["seed_auc"].format(digits), c["seed_acc"].format(digits),
                    c["example_auc"].format(digits) if "example_auc" in c else f"— ({c['example_note']})",
                    c["example_acc"].format(digits) if "example_acc" in c else "—"] for c in comparisons])
  return lines + [""]


def _gate_section(effects: list[dict], digits: int) -> list[str]:
  """What a residual head's gate adds: test metrics with and without it."""
  num = functools.partial(_number, digits=digits)
  lines = ["## What the residual gate adds (test, gate g set to 0)", "",
           "A residual head's logits are its linear path's plus g times its circuit's (or classical "
           "block's). Gate off = the same checkpoint with g = 0 (`experiments.evaluate` for runs "
           "older than these summary entries); Δ = gate on − gate off, seed bootstrap.", ""]
  lines += _table(["dataset", "model", "seeds", "g (min, max)", "test AUC", "test AUC, g = 0", "ΔAUC seeds",
                   "ΔACC seeds"],
                  [[e["dataset"], e["model"], " ".join(map(str, e["seeds"])),
                    f"{e['gate_min']:.2g}, {e['gate_max']:.2g}", num(e["test_auc"]), num(e["test_auc_gate_off"]),
                    e["seed_auc"].format(digits), e["seed_acc"].format(digits)] for e in effects])
  return lines + [""]


def _runs_section(root: str, runs: list[GridRun], failures: dict[GridRun, str], digits: int,
                  intervals: dict[GridRun, dict[str, stats.Interval]]) -> list[str]:
  """Every run of the grid with its status, test metrics (with `run_intervals`' interval over test
  examples where given), wall time and folder (relative to the grid directory; "(record)" when the
  run counts from its committed record)."""
  num = functools.partial(_number, digits=digits)

  def metric(run: GridRun, summary: dict, key: str) -> str:
    interval = intervals.get(run, {}).get(key)
    return num(summary.get(f"test_{key}")) + (f" [{num(interval.low)}, {num(interval.high)}]" if interval else "")

  rows = []
  for run in runs:
    summary = run.summary() or {}
    status = f"failed: {failures[run]}" if run in failures else run.status()
    rows.append([run.dataset, run.model, str(run.seed), status, metric(run, summary, "auc"), metric(run, summary, "acc"),
                 _number(summary.get("wall_time_s"), 0),
                 os.path.relpath(run.workdir, root) + (" (record)" if run.finished_dir() == run.record_dir else "")])
  confidence = next(iter(intervals.values()))["auc"].confidence if intervals else None
  note = ([f"Brackets: {confidence:.0%} bootstrap interval of the run's own metric over test examples (the test "
           "set's noise for this trained model; seed variation not included).", ""] if intervals else [])
  return ["## Runs", ""] + note + _table(["dataset", "model", "seed", "status", "test AUC", "test ACC",
                                          "wall time (s)", "workdir"], rows)


def _sources_section(cited: set) -> list[str]:
  lines = ["", "## Sources", ""]
  for key in sorted(cited):
    source = published.sources()[key]
    link = f"https://doi.org/{source['doi']}" if "doi" in source else source.get("url", "")
    lines.append(f"- [{key}] {source['citation']} {link} — {source['table']} {source['verification']}")
  return lines


def render_markdown(grid: ml_collections.ConfigDict, root: str, runs: list[GridRun], rows: list[dict],
                    comparisons: list[dict], failures: dict[GridRun, str],
                    intervals: dict[GridRun, dict[str, stats.Interval]] | None = None) -> str:
  """results.md: per dataset our mean ± std next to the published numbers, the paired
  comparisons, every run with its status and wall time, and the citations."""
  digits = grid.get("digits", 3)  # metric decimals: 4 where models differ by a few test errors (Medical MNIST)
  counts = {status: sum(r.status() == status for r in runs) for status in (FINISHED, STARTED, PENDING)}
  lines = [f"# Results: {grid.get('name', 'grid')}", "",
           f"{len(runs)} runs: {counts[FINISHED]} finished, {counts[STARTED]} started (partial), "
           f"{counts[PENDING]} pending. Mean ± sample std (ddof 1) over finished seeds; validation and test "
           f"metrics of the best-validation checkpoint (validation: what a choice between rows may use); "
           f"balanced acc = mean recall over classes; seed ensemble = the finished seeds' predicted probabilities "
           f"averaged per test example (2 seeds or more); wall time = training wall time per run.", ""]
  cited = set()
  for dataset in dict.fromkeys(r.dataset for r in runs):
    lines += _dataset_section(dataset, rows, digits, cited)
  if comparisons:
    lines += _comparisons_section(grid, comparisons, digits)
  effects = gate_effects(grid, runs)
  if effects:
    lines += _gate_section(effects, digits)
  lines += _runs_section(root, runs, failures, digits, intervals or {})
  if cited:
    lines += _sources_section(cited)
  return "\n".join(lines) + "\n"


def _csv_text(rows: list[dict]) -> str:
  out = io.StringIO()
  writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
  writer.writeheader()
  writer.writerows([{k: "" if row[k] is None else row[k] for k in CSV_COLUMNS} for row in rows])
  return out.getvalue()


def write_report(grid: ml_collections.ConfigDict, root: str, failures: dict[GridRun, str] | None = None,
                 example_intervals: bool = True, records: str | None = None, datasets=None) -> tuple[str, str]:
  """Writes `{root}/results.csv` and `{root}/results.md` for every run of `grid` (finished or not).

  Args:
    grid: grid config.
    root: grid directory.
    failures: runs that failed in this session → error message (shown as their status).
    example_intervals: also compute the test-example bootstrap (needs the test labels).
    records: folder of committed run records (see `expand`).
    datasets: report only these datasets (None = all of the grid's).

  Returns:
    (csv path, markdown path).
  """
  runs = expand(grid, root, records=records, datasets=datasets)
  rows = aggregate(runs)
  labels_cache = {}  # each dataset's test labels are read once per report
  if example_intervals:
    seed_ensembles = ensembles(runs, labels_cache)
    for row in rows:
      row.update(seed_ensembles.get((row["dataset"], row["model"]), {}))
  os.makedirs(root, exist_ok=True)
  csv_path, md_path = os.path.join(root, RESULTS_CSV), os.path.join(root, RESULTS_MD)
  reports.write_text_atomic(csv_path, _csv_text(rows))
  comparisons = compare(grid, runs, example_intervals, labels_cache)
  intervals = run_intervals(grid, runs, labels_cache) if example_intervals else {}
  reports.write_text_atomic(md_path, render_markdown(grid, root, runs, rows, comparisons, failures or {}, intervals))
  return csv_path, md_path
