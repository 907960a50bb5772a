"""Data-efficiency study on frozen features: heads trained on stratified fractions of the training split.

Where could a compact quantum head help? Theory bounds its generalisation error by its few trainable
gates (Caro et al. 2022), so the place to look is few training examples. A data-efficiency config
(`experiments/configs/data_efficiency.py`) holds a head study (`studies.frozen_heads`) and:

  fractions     training fractions, e.g. (0.01, 0.05, 0.1, 0.25, 0.5, 1.0).
  designs       the head designs to train (names of the study's designs and twins).
  comparisons   (A, B) design pairs given paired intervals per fraction.
  families_from a families study's report folder (its `headline.csv`): instead of `designs` and
                `comparisons`, each feature set trains the design every family chose there on the
                whole split by validation (`studies.families`), the quantum family's against each
                other family's, so no family's design is picked by hand.
  rates_root    unset (the protocol): each design's learning rates are searched on validation at
                every fraction, with the study's `lr_search` grid and its extension past edge
                choices, each search seed on its own subset (`frozen_heads.search_rates`); every run
                fits its standardisation, prior and class weights on its own subset
                (`fit_on_subset`). Set (the width-16 record's protocol): the rates the head study in
                that folder chose on the whole split, statistics of the whole split.
  same_steps    every fraction gets the optimiser steps of the whole split: an evaluation round
                holds ⌈steps per epoch of the whole split / steps per pass over the subset⌉ passes
                (`min_steps_per_epoch`), so 1% of a set trains as long as 100% between as many
                evaluations (MedMNIST's published split sizes).

Run k of every design trains on the same subset (`frozen.stratified_subset` with seed k; one seed's
subsets are nested, 1% ⊂ 5% ⊂ …) from the same initialisation seed, so A − B is paired by k.
Selection (best epoch, rates) uses the whole validation split; test metrics are never used for a
choice. Runs live in `{root}/{features}/{design}/f{fraction}/seed{k}` (searched rates beside them
in `lr_search.json`); a run with summary.json is not trained again.
"""

import csv
import functools
import os
import time

import matplotlib
import ml_collections
import numpy as np

from qcnn_jax.data import features, pipeline, sources
from qcnn_jax.evaluation import reports, stats
from qcnn_jax.studies import families, frozen_heads
from qcnn_jax.studies import runs as run_folders
from qcnn_jax.training import frozen, lock

matplotlib.use("Agg")
from matplotlib import figure as mpl_figure  # pylint: disable=g-import-not-at-top

CSV_COLUMNS = ("dataset", "model", "kind", "train_fraction", "n_train", "n_seeds", "test_auc_mean", "test_auc_std",
               "test_acc_mean", "test_balanced_accuracy_mean", "lr_block", "lr_head")
DIFF_COLUMNS = ("dataset", "train_fraction", "n_train", "a", "b", "b_family", "n_seeds", "delta_auc", "low", "high")


def run_dir(root: str, key: str, design: str, fraction: float, seed: int) -> str:
  return os.path.join(root, key, design, f"f{fraction:g}", run_folders.seed_dir(seed))


def plan(config: ml_collections.ConfigDict, key: str) -> tuple[list[str], list[tuple[str, str]]]:
  """(designs, comparisons) on feature set `key`: the config's, or with `families_from` the family
  choices of that study on `key` (module docstring).

  Raises:
    FileNotFoundError: `families_from` has no headline.csv, or no choice for `key`.
  """
  if not config.get("families_from"):
    return list(config.designs), [tuple(c) for c in config.comparisons]
  path = os.path.join(config.families_from, frozen_heads.HEADLINE_FILE)
  if not os.path.exists(path):
    raise FileNotFoundError(f"no {path}: run the families study (heads_families.py) first, or set "
                            "--config.families_from='' and name --config.designs")
  with open(path, encoding="utf-8") as f:
    rows = [r for r in csv.DictReader(f) if r["table"] == "headline" and r["features"] == key]
  if not rows:
    raise FileNotFoundError(f"{path} holds no family choice on {key}: train the families study on it first")
  return [rows[0]["design"]] + [r["other"] for r in rows], [(rows[0]["design"], r["other"]) for r in rows]


def study_for(config: ml_collections.ConfigDict, key: str) -> ml_collections.ConfigDict:
  """The head study as run on feature set `key` (module docstring): with searched rates, runs fit
  their statistics on their own subsets; with `same_steps`, rounds of the whole split's steps.

  Raises:
    ValueError: `same_steps` on a set without a published training split size.
  """
  if config.get("rates_root"):
    return config.study
  study = config.study.copy_and_resolve_references()
  study.unlock()
  study.base.fit_on_subset = True
  if config.get("same_steps"):
    info = sources.INFO.get(frozen_heads.dataset_of(key))
    if info is None:
      raise ValueError(f"same_steps needs a published training split size, which {key} has not: set "
                       "--config.same_steps=False")
    n = info["n_samples"]["train"]
    study.base.min_steps_per_epoch = pipeline.steps_per_epoch(n, min(study.base.batch_size, n))
  return study


def rates(config: ml_collections.ConfigDict, root: str, key: str, design: str, fraction: float,
          search: bool = True) -> dict[str, float]:
  """A design's base learning rate per role at a fraction: searched there on validation (saved under
  `root`), or with `rates_root` those its head study chose on the whole split."""
  if config.get("rates_root"):
    return frozen_heads.search_rates(config.study, config.rates_root, key, design, search=False)
  return frozen_heads.search_rates(study_for(config, key), root, key, design, search=search, fraction=fraction)


def train(config: ml_collections.ConfigDict, root: str, *, datasets=None) -> None:
  """Trains every unfinished (feature set, design, fraction): its seeds in one vmapped program, holding
  the study folder's lock."""
  with lock.hold(root, "study folder"):
    _train(config, root, datasets)


def _train(config: ml_collections.ConfigDict, root: str, datasets) -> None:
  seeds = [int(s) for s in config.study.seeds]
  for key in frozen_heads.feature_sets(config.study.features, datasets):
    feature_set, study = features.load(config.study.features[key]), study_for(config, key)
    for design in plan(config, key)[0]:
      run_config = frozen_heads.run_config(study, key, design)
      for fraction in config.fractions:
        chosen = rates(config, root, key, design, fraction)
        left = [s for s in seeds if not run_folders.RunFolder(run_dir(root, key, design, fraction, s)).finished(
            frozen.record_config(run_config, s, chosen))]
        if not left:
          continue
        subsets = [frozen.stratified_subset(feature_set.labels["train"], fraction, s) for s in left]
        start = time.time()
        results = frozen.train_seeds(run_config, feature_set, left, [chosen] * len(left), subsets)
        for result, subset in zip(results, subsets):
          frozen.write_run(result, run_dir(root, key, design, fraction, result.seed), run_config, feature_set,
                                time.time() - start, train_fraction=fraction, n_train=len(subset))


def _summaries(config: ml_collections.ConfigDict, root: str, key: str, design: str, fraction: float) -> dict[int, dict]:
  """{seed: summary} of the finished runs of a design at a training fraction, made with the study's
  config at the design's searched rates."""
  run_config = frozen_heads.run_config(study_for(config, key), key, design)
  chosen = rates(config, root, key, design, fraction, search=False)
  out = {}
  for seed in [int(s) for s in config.study.seeds]:
    folder = run_folders.RunFolder(run_dir(root, key, design, fraction, seed))
    if folder.finished(frozen.record_config(run_config, seed, chosen)):
      out[seed] = folder.summary()
  return out


def searched(config: ml_collections.ConfigDict, root: str, key: str, fraction: float) -> bool:
  """Whether every design's learning rates on feature set `key` at `fraction` were searched."""
  try:
    for design in plan(config, key)[0]:
      rates(config, root, key, design, fraction, search=False)
  except FileNotFoundError:
    return False
  return True


def collect(config: ml_collections.ConfigDict, root: str) -> tuple[list[dict], list[dict]]:
  """(rows: one per feature set × design × fraction, differences: one per comparison × fraction);
  feature sets whose rates were never searched have none."""
  study = config.study
  specs = frozen_heads.designs(study)
  bootstrap = {k: v for k, v in study.bootstrap.items() if k != "max_test_examples"}
  rows, diffs = [], []
  for key in study.features:
    for fraction in filter(functools.partial(searched, config, root, key), config.fractions):
      designs, comparisons = plan(config, key)
      runs = {d: _summaries(config, root, key, d, fraction) for d in designs}
      for design, found in runs.items():
        if not found:
          continue
        values = lambda k: np.array([s[k] for s in found.values()], np.float64)
        first = next(iter(found.values()))
        rows.append({"dataset": key, "model": design, "kind": specs[design]["head"]["kind"], "train_fraction": fraction,
                     "n_train": first["n_train"], "n_seeds": len(found), "test_auc_mean": values("test_auc").mean(),
                     "test_auc_std": values("test_auc").std(ddof=1) if len(found) > 1 else np.nan,
                     "test_acc_mean": values("test_acc").mean(),
                     "test_balanced_accuracy_mean": values("test_balanced_accuracy").mean(),
                     "lr_block": first["lr_block"], "lr_head": first["lr_head"]})
      for a, b in comparisons:
        paired = sorted(set(runs.get(a, {})) & set(runs.get(b, {})))
        if len(paired) < 2:
          continue
        interval = stats.seed_bootstrap([runs[a][s]["test_auc"] for s in paired],
                                        [runs[b][s]["test_auc"] for s in paired], **bootstrap)
        diffs.append({"dataset": key, "train_fraction": fraction, "n_train": runs[a][paired[0]]["n_train"], "a": a,
                      "b": b, "b_family": families.family(specs[b]["head"]), "n_seeds": len(paired),
                      "delta_auc": interval.estimate, "low": interval.low,
                      "high": interval.high})
  return rows, diffs


def plot(rows: list[dict], path: str) -> str:
  """Test AUC (mean ± std over seeds) against the number of training examples, one panel per set."""
  keys = list(dict.fromkeys(r["dataset"] for r in rows))
  fig = mpl_figure.Figure(figsize=(4.2 * max(1, len(keys)), 3.4), layout="constrained")
  for ax, key in zip(np.atleast_1d(fig.subplots(1, max(1, len(keys)))), keys):
    for design in dict.fromkeys(r["model"] for r in rows if r["dataset"] == key):
      mine = sorted((r for r in rows if r["dataset"] == key and r["model"] == design), key=lambda r: r["n_train"])
      ax.errorbar([r["n_train"] for r in mine], [r["test_auc_mean"] for r in mine],
                  yerr=[r["test_auc_std"] for r in mine], label=design, marker="o", capsize=2)
    ax.set_xscale("log")
    ax.set(title=key, xlabel="training examples", ylabel="test AUC")
    ax.grid(alpha=0.3)
  if keys:
    fig.axes[0].legend(fontsize=7)
  return reports.save_figure(fig, path)


def _in_short(config: ml_collections.ConfigDict, rows: list[dict], diffs: list[dict]) -> list[str]:
  """Section "In short": per set and fraction, the first comparison's A against each of its Bs (with
  `families_from`: the quantum family's choice against each other family's, columns by family)."""
  by_family = bool(config.get("families_from"))
  keys = list(dict.fromkeys(r["dataset"] for r in rows))
  plans = {key: plan(config, key) for key in keys}
  if not keys or not plans[keys[0]][1]:
    return []
  label = lambda d: d["b_family"] if by_family else d["b"]
  first = plans[keys[0]][1]
  columns = list(dict.fromkeys(label(d) for d in diffs if (d["a"], d["b"]) in first))
  quantum = "the quantum family's choice (design in the table below)" if by_family else f"`{first[0][0]}`"
  lines = ["", "## In short", "", f"{quantum} (quantum) minus each other head, test AUC, paired seeds.", "",
           "| set | fraction | n train | quantum AUC | " + " | ".join(f"Δ vs {c}" for c in columns) + " |",
           "|---|---|---|---|" + "---|" * len(columns)]
  for row in rows:
    if row["model"] != plans[row["dataset"]][1][0][0]:
      continue
    cells = []
    for other in columns:
      found = [d for d in diffs if (d["dataset"], d["train_fraction"], label(d)) == (row["dataset"],
                                                                                   row["train_fraction"], other)]
      cells.append(f"{found[0]['delta_auc']:+.3f} [{found[0]['low']:+.3f}, {found[0]['high']:+.3f}]" if found
                   else "—")
    lines.append(f"| {row['dataset']} | {row['train_fraction']:g} | {row['n_train']} | {row['test_auc_mean']:.3f} | "
                 + " | ".join(cells) + " |")
  return lines


def write_report(config: ml_collections.ConfigDict, root: str, out: str) -> str:
  """Writes `{out}/results.csv`, `{out}/differences.csv`, `{out}/results.md` and
  `{out}/data_efficiency.png` from the runs under `root`; returns the markdown path."""
  rows, diffs = collect(config, root)
  os.makedirs(out, exist_ok=True)
  reports.write_text_atomic(os.path.join(out, "results.csv"), reports.csv_text(rows, CSV_COLUMNS))
  reports.write_text_atomic(os.path.join(out, "differences.csv"), reports.csv_text(diffs, DIFF_COLUMNS))
  plot(rows, os.path.join(out, "data_efficiency.png"))
  protocol = ("learning rates as chosen on the full training split, statistics of the full split" if
              config.get("rates_root") else "one seed's subsets nested across fractions; learning rates searched on "
              "validation at each fraction; standardisation, prior and class weights fitted on each run's subset" +
              ("; every fraction trained for the optimiser steps of the full split" if config.get("same_steps") else ""))
  lines = [f"# {config.name}", "", "Test AUC, mean ± sample std over seeds (each seed its own stratified subset, the "
           "same for every design); best epoch by validation AUC on the whole validation "
           f"split; {protocol}. Δ = A − B, paired by seed, bootstrap over seeds.", "",
           "![data efficiency](data_efficiency.png)"]
  lines += _in_short(config, rows, diffs)
  for key in dict.fromkeys(r["dataset"] for r in rows):
    mine = [r for r in rows if r["dataset"] == key]
    designs = list(dict.fromkeys(r["model"] for r in mine))
    lines += ["", f"## {key}", "", "| fraction | n train | " + " | ".join(designs) + " |",
              "|---|---|" + "---|" * len(designs)]
    for fraction in dict.fromkeys(r["train_fraction"] for r in mine):
      cells = {r["model"]: f"{r['test_auc_mean']:.3f} ± {r['test_auc_std']:.3f} ({r['n_seeds']})"
               for r in mine if r["train_fraction"] == fraction}
      n_train = next(r["n_train"] for r in mine if r["train_fraction"] == fraction)
      lines.append(f"| {fraction:g} | {n_train} | " + " | ".join(cells.get(d, "—") for d in designs) + " |")
    lines += ["", "| fraction | n train | A | B | seeds | ΔAUC [95% interval] |", "|---|---|---|---|---|---|"]
    lines += [f"| {d['train_fraction']:g} | {d['n_train']} | {d['a']} | {d['b']} | {d['n_seeds']} | "
              f"{d['delta_auc']:+.4f} [{d['low']:+.4f}, {d['high']:+.4f}] |" for d in diffs if d["dataset"] == key]
  path = os.path.join(out, "results.md")
  reports.write_text_atomic(path, "\n".join(lines) + "\n")
  return path
