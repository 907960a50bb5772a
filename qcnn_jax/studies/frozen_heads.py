"""Head study on frozen features: designs × datasets × seeds, each quantum design with its twin.

A study config (`experiments/configs/heads.py`) holds:

  name          report title.
  features      feature-set name -> feature file (`python -m experiments.extract_features`); a name
                is a dataset, or "<dataset>@<backbone>" for another backbone's features of it.
  base          run config: `head` (FeatureHead options) and the optimisation keys of medmnist.py.
  designs       design name -> {"head": FeatureHead options, "overrides": base keys} (both optional).
                Every design of kind "quantum" gets a classical twin "<name>_twin" (kind
                "classical", everything else equal), trained on the same seeds.
  seeds         training seeds; all seeds of a design train as one vmapped program.
  dataset_overrides  optional: dataset -> base keys (e.g. fewer epochs on a large set).
  bootstrap     num_resamples, confidence, seed of the paired intervals.
  lr_search     optional: block and head rate grids, seeds, `on` (feature set -> the set whose
                search it reuses) and `bounds` (extend an axis past an edge choice up to these rates);
                each design trains at the pair its validation chose (`search_rates`).
  families      optional: True puts the family tables first in the report and writes headline.csv
                (`studies.families`: each family's best by validation, family best vs family best
                with two-level intervals and Holm-adjusted decisions; design vs own twin / control).

Runs live in `{root}/{features}/{design}/seed{k}` (files as `qcnn_jax.training.train` writes them); a design
whose seeds all have summary.json is skipped. The report (`results.csv`, `results.md`, a forest
plot) gives every design's mean ± std over seeds and learning rates, the paired intervals
quantum − twin and quantum/twin − linear, what the residual designs' gate g adds (test metrics
with g set to 0), intervals over backbones, and per feature set the in-path quantum design chosen
by mean validation AUC (never by test) against its twin and the linear head.
"""

import glob
import logging
import os
import time
from typing import Any

import ml_collections
import numpy as np

from matplotlib import figure as mpl_figure

from qcnn_jax import runtime
from qcnn_jax.data import features
from qcnn_jax.evaluation import reports, stats
from qcnn_jax.studies import families, published
from qcnn_jax.studies import runs as run_folders
from qcnn_jax.training import checkpointing, frozen, lock

TWIN_SUFFIX = "_twin"
BACKBONE_SEP = "@"  # feature-set names "<dataset>@<backbone>": more backbones of one dataset
LR_SEARCH_FILE = "lr_search.json"
FOREST_FILE = "quantum_minus_others.png"
CSV_COLUMNS = ("dataset", "model", "kind", "twin_of", "n_seeds", "test_auc_mean", "test_auc_std", "test_acc_mean",
               "test_acc_std", "val_auc_mean", "test_balanced_accuracy_mean", "test_f1_macro_mean", "num_params",
               "quantum_params", "wall_time_s", "lr_block", "lr_head")
FAMILY_COLUMNS = ("family", "val_loss_mean", "angle_shift_mean")  # results.csv of a `families` study
HEADLINE_FILE = "headline.csv"
HEADLINE_COLUMNS = ("table", "features", "saturated", "rule", "family", "design", "other", "lr_block", "lr_head",
                    "other_lr_block", "other_lr_head", "angle_shift", "other_angle_shift", "units", "unit_level",
                    "examples", "delta_auc", "low", "high", "se", "df", "p", "p_holm", "differs", "seeds_only_low",
                    "seeds_only_high", "percentile_low", "percentile_high")


def designs(study: ml_collections.ConfigDict) -> dict[str, dict[str, Any]]:
  """Design name -> {"head", "overrides", "twin_of"}, twins added after their quantum design."""
  out = {}
  for name, spec in study.designs.items():
    spec = spec.to_dict()
    head, overrides = {"kind": study.base.head.kind, **spec.get("head", {})}, spec.get("overrides", {})
    out[name] = {"head": head, "overrides": overrides, "twin_of": None}
    if head["kind"] == "quantum":
      out[name + TWIN_SUFFIX] = {"head": {**head, "kind": "classical"}, "overrides": overrides, "twin_of": name}
  return out


def dataset_of(key: str) -> str:
  """The dataset of a feature-set name: "breastmnist" and "breastmnist@b16s1" (another backbone's
  features of the same set) are both "breastmnist"."""
  return key.split(BACKBONE_SEP)[0]


def run_config(study: ml_collections.ConfigDict, key: str, design: str) -> ml_collections.ConfigDict:
  """Base config with the dataset's overrides, then the design's head options and overrides."""
  spec = designs(study)[design]
  config = study.base.copy_and_resolve_references()
  config.unlock()
  config.dataset, config.design = dataset_of(key), design
  config.update(study.get("dataset_overrides", {}).get(dataset_of(key), ml_collections.ConfigDict()).to_dict())
  config.head.update(spec["head"])
  config.update(spec["overrides"])
  return config


def run_dir(root: str, key: str, design: str, seed: int) -> str:
  return os.path.join(root, key, design, run_folders.seed_dir(seed))


def finished(root: str, key: str, design: str, seed: int, config: ml_collections.ConfigDict,
             rates: dict[str, float]) -> bool:
  """True when the run's folder holds a finished run made with `config` at these `rates`."""
  return run_folders.RunFolder(run_dir(root, key, design, seed)).finished(frozen.record_config(config, seed, rates))


def search_rates(study: ml_collections.ConfigDict, root: str, key: str, design: str, search: bool = True,
                 fraction: float | None = None) -> dict[str, float]:
  """The rates a design trains with on feature set `key`: chosen by mean validation AUC over
  `lr_search.seeds` on the grid `lr_search.block` × `lr_search.head` (head rates only for a linear
  head, which has no block; the same grid for every design), extended past an edge choice up to
  `lr_search.bounds` when given (`families.search_rates`), on the feature set `lr_search.on[key]`
  (default `key` itself), never by test. Without `lr_search`, the config's own rates. The whole
  search (every point's per-seed validation AUC, the final axes, the choice and whether it is
  interior or at a bound) is kept in `{root}/{searched set}/{design}/lr_search.json` and reused;
  without it and with `search=False` (reports) raises FileNotFoundError instead of searching. A
  one-point grid without bounds is that point, unsearched. With `fraction`, search seed k trains on
  `frozen.stratified_subset(train labels, fraction, k)` and the file is `.../{design}/f{fraction}/`."""
  config = run_config(study, key, design)
  grid = study.get("lr_search")
  if not grid:
    return frozen.base_rates(config)
  block, bounds = None if config.head.kind == "linear" else list(grid.block), grid.get("bounds")
  points = families.grid_points(block, list(grid.head))
  if len(points) == 1 and bounds is None:
    return points[0]
  searched = grid.get("on", {}).get(key, key)
  path = os.path.join(root, searched, design, *([f"f{fraction:g}"] if fraction else []), LR_SEARCH_FILE)
  if os.path.exists(path):
    return reports.read_json(path)["chosen"]
  if not search:
    raise FileNotFoundError(f"no {path}: the learning rates of {design} on {searched} were never searched")
  seeds = [int(s) for s in grid.seeds]
  feature_set = features.load(study.features[searched])

  subsets = fraction and [frozen.stratified_subset(feature_set.labels["train"], fraction, s) for s in seeds]

  def evaluate(points: list[dict[str, float]]) -> list[list[float]]:
    results = frozen.train_seeds(config, feature_set, seeds * len(points), [r for r in points for _ in seeds],
                                 subsets=subsets and subsets * len(points))
    return [[r.val_auc for r in results[i * len(seeds):(i + 1) * len(seeds)]] for i in range(len(points))]

  start = time.time()
  found = families.search_rates(evaluate, block, list(grid.head), None if bounds is None else tuple(bounds))
  reports.write_json_atomic(path, {"design": design, "features": searched, "seeds": seeds, **found,
                                   "wall_time_s": time.time() - start})
  logging.info("%s %s: learning rates %s chosen by validation (%d points, %s, %.0f s)", searched, design,
               found["chosen"], len(found["grid"]), found["edges"], time.time() - start)
  return found["chosen"]


def feature_sets(features: ml_collections.ConfigDict, datasets=None) -> list[str]:
  """The feature sets to train: `datasets` (each in the study, with its file), else every set
  whose file exists.

  Raises:
    ValueError: a named set is not in the study.
    FileNotFoundError: a named set's file, or every file, is missing (the message says how to make one).
  """
  unknown = [d for d in datasets or () if d not in features]
  if unknown:
    raise ValueError(f"feature sets {unknown} are not in the study; it has {list(features)}")
  missing = [features[d] for d in datasets or features if not os.path.exists(features[d])]
  if missing and (datasets or len(missing) == len(features)):
    raise FileNotFoundError(
        f"no feature file {', '.join(missing)}: nothing trained. Make one with python -m experiments.extract_features "
        "--workdir=<finished resnet50 run> --out=<file> and name it with --config.features.<set>=<file>")
  return [d for d in datasets or features if os.path.exists(features[d])]


def train_study(study: ml_collections.ConfigDict, root: str, *, datasets=None, selected=None) -> None:
  """Trains every unfinished (feature set, design) of the study, all its seeds in one program, at
  the design's learning rates (`search_rates`), holding the study folder's lock."""
  with lock.hold(root, "study folder"):
    _train_study(study, root, datasets, selected)


def _train_study(study: ml_collections.ConfigDict, root: str, datasets, selected) -> None:
  seeds = [int(s) for s in study.seeds]
  for dataset in feature_sets(study.features, datasets):
    feature_set = features.load(study.features[dataset])
    with runtime.progress_bar(len(selected or designs(study)), unit="design", desc=f"heads {dataset}",
                              enabled=study.get("progress", True)) as bar:
      for design in selected or designs(study):
        config = run_config(study, dataset, design)
        rates = search_rates(study, root, dataset, design)
        left = [s for s in seeds if not finished(root, dataset, design, s, config, rates)]
        bar.set_postfix_str(f"{design}, {len(left)} seeds")
        if not left:
          bar.update()
          continue
        start = time.time()
        results = frozen.train_seeds(config, feature_set, left, [rates] * len(left))
        wall = time.time() - start
        for result in results:
          frozen.write_run(result, run_dir(root, dataset, design, result.seed), config, feature_set, wall)
        logging.info("%s %s: %d seeds in %.1f s, test AUC %.4f ± %.4f", dataset, design, len(left), wall,
                     np.mean([r.reports["test"]["auc"] for r in results]),
                     np.std([r.reports["test"]["auc"] for r in results]))
        bar.update()


def record_runs(root: str, records: str, max_test_examples: int | None = None) -> list[str]:
  """Copies the small files of every finished run under `root` (config.json, summary.json, the test
  predictions gzip-compressed) and every `lr_search.json` to the same place under `records`, the
  committed record a report can be rebuilt from (`write_report(study, records)`); returns the
  files written. Test predictions of more than `max_test_examples` rows (0: all) are left out:
  the report's example bootstrap does not use them. summary.json is written last, so a record with
  it is complete."""
  searches = [os.path.relpath(p, root) for p in glob.glob(os.path.join(glob.escape(root), "**", LR_SEARCH_FILE),
                                                          recursive=True)]
  written = reports.copy_files(root, records, searches)
  for summary in glob.glob(os.path.join(glob.escape(root), "**", reports.SUMMARY_FILENAME), recursive=True):
    run = os.path.dirname(summary)
    predictions = [os.path.relpath(p, run) for p in glob.glob(os.path.join(glob.escape(run), "predictions", "*_test_*.csv"))
                   if max_test_examples is None or _rows(p) <= max_test_examples]
    record = os.path.join(records, os.path.relpath(run, root))
    written += reports.copy_files(run, record, predictions + [checkpointing.CONFIG_FILENAME], compress=predictions)
    run_folders.drop_machine_paths(record)
    written += reports.copy_files(run, record, [reports.SUMMARY_FILENAME])  # last: the record is complete
  return written


def _rows(path: str) -> int:
  with open(path, "rb") as f:
    return sum(1 for _ in f)


def _load_runs(study: ml_collections.ConfigDict, root: str, dataset: str, design: str) -> list[dict]:
  """The finished runs of a design on a feature set (made with the study's config at the searched
  rates): {"seed", "summary", "test_scores"} each; [] when its rates were never searched."""
  config = run_config(study, dataset, design)
  try:
    rates = search_rates(study, root, dataset, design, search=False)
  except FileNotFoundError:
    return []
  runs = []
  for seed in [int(s) for s in study.seeds]:
    if finished(root, dataset, design, seed, config, rates):
      folder = run_folders.RunFolder(run_dir(root, dataset, design, seed))
      _, scores = reports.read_predictions_csv(folder.test_predictions())
      runs.append({"seed": seed, "summary": folder.summary(), "test_scores": scores})
  return runs


def _row(dataset: str, design: str, spec: dict, runs: list[dict]) -> dict[str, Any]:
  def values(key):
    return np.array([r["summary"][key] for r in runs], np.float64)
  row = {"dataset": dataset, "model": design, "kind": spec["head"]["kind"],
         "twin_of": spec["twin_of"] or "", "n_seeds": len(runs)}
  for key in ("test_auc", "test_acc"):
    row[f"{key}_mean"] = float(values(key).mean()) if runs else np.nan
    row[f"{key}_std"] = float(values(key).std(ddof=1)) if len(runs) > 1 else np.nan
  for key in ("val_auc", "test_balanced_accuracy", "test_f1_macro"):
    row[f"{key}_mean"] = float(values(key).mean()) if runs else np.nan
  row["family"] = families.family(spec["head"]) or ""
  row["val_loss_mean"], row["angle_shift_mean"] = _summary_mean(runs, "val_loss"), _summary_mean(runs, "angle_shift")
  for key in ("num_params", "quantum_params", "wall_time_s", "lr_block", "lr_head"):
    row[key] = runs[0]["summary"].get(key, np.nan) if runs else np.nan
  row["in_path"] = spec["head"]["kind"] != "linear" and not spec["head"].get("residual")
  return row


def _summary_mean(runs: list[dict], key: str) -> float:
  """Mean of a summary.json entry over runs; NaN when no run has it (older runs, heads without circuit)."""
  values = [r["summary"][key] for r in runs if key in r["summary"]]
  return float(np.mean(values)) if values else np.nan


def _two_level(a: list[list[dict]], b: list[list[dict]], labels, task: str, bootstrap: dict, examples: bool):
  """(two-level, seeds-only) `stats.TwoLevelInterval`s of A − B in test AUC: `a`, `b` the runs of
  each feature set (one per backbone), paired by seed; None when fewer than 2 units pair up."""
  paired_a, paired_b = [], []
  for runs_a, runs_b in zip(a, b):
    by_seed_a, by_seed_b = ({r["seed"]: r["test_scores"] for r in runs} for runs in (runs_a, runs_b))
    seeds = sorted(by_seed_a.keys() & by_seed_b.keys())
    paired_a.append([by_seed_a[s] for s in seeds])
    paired_b.append([by_seed_b[s] for s in seeds])
  if (len(a) if len(a) > 1 else len(paired_a[0])) < 2 or not all(paired_a):
    return None
  return tuple(stats.two_level_bootstrap(labels, paired_a, paired_b, task, examples=e, **bootstrap)
               for e in (examples, False))


def _family_rows(study: ml_collections.ConfigDict, root: str, bootstrap: dict, max_examples) -> list[dict]:
  """Rows of the two family tables, for each feature set and each dataset pooled over its backbones:
  "headline" = the quantum family's choice against the twin, control and linear families' choices
  (`families.select` on that group's validation records), with Holm-adjusted p over these rows;
  "own" = each design against its own twin and control. ΔAUC intervals: `stats.two_level_bootstrap`
  (outer units: seeds, or backbones when pooled; test examples unless over `max_examples`)."""
  specs = designs(study)
  family_of = {d: families.family(spec["head"]) for d, spec in specs.items()}
  loaded = _loaded_runs(study, root, specs)
  rows = []
  for name, keys in _feature_groups(loaded).items():
    runs = {d: [loaded[k][0][d] for k in keys] for d in specs}
    labels, task = loaded[keys[0]][1], loaded[keys[0]][2]
    if any(not np.array_equal(loaded[k][1], labels) for k in keys):
      raise ValueError(f"feature sets {keys} pooled as backbones of one dataset need the same test set")
    records = {d: [r["summary"] for group in runs[d] for r in group] for d in specs}
    choices, saturated = families.select(records, family_of), families.saturated(records)
    examples = max_examples is None or len(labels) <= max_examples
    pairs = [("headline", a, b) for a, b in families.headline_pairs(choices)]
    pairs += [("own", a, b) for a, b in families.own_pairs(list(specs))]
    for table, a, b in pairs:
      intervals = _two_level(runs[a], runs[b], labels, task, bootstrap, examples)
      if intervals is not None:
        rules = {choices["quantum"].rule, choices[family_of[b]].rule} if table == "headline" else set()
        rows.append({"table": table, "features": name, "saturated": saturated, "rule": " / ".join(sorted(rules)),
                     "family": family_of[b], **_pair_entries(runs, a, b, *intervals)})
  _holm_adjust([r for r in rows if r["table"] == "headline"], bootstrap)
  return rows


def _loaded_runs(study: ml_collections.ConfigDict, root: str, specs: dict) -> dict:
  """{feature set: ({design: its runs}, test labels in official order, task)} of the sets whose file exists."""
  loaded = {}
  for key, path in study.features.items():
    if os.path.exists(path):
      feature_set = features.load(path)
      loaded[key] = ({d: _load_runs(study, root, key, d) for d in specs},
                     feature_set.labels["test"][np.argsort(feature_set.index["test"])], feature_set.task)
  return loaded


def _feature_groups(loaded: dict) -> dict[str, list[str]]:
  """Each feature set alone, and each dataset with several backbones pooled: {row name: feature sets}."""
  groups = {key: [key] for key in loaded}
  for key in loaded:
    pooled = [k for k in loaded if dataset_of(k) == dataset_of(key)]
    if len(pooled) > 1:
      groups[f"{dataset_of(key)} over {len(pooled)} backbones"] = pooled
  return groups


def _pair_entries(runs: dict, a: str, b: str, two, seeds_only) -> dict[str, Any]:
  """A comparison row's columns: both designs' rates and angle shifts, the two-level interval of
  ΔAUC = a − b and the seeds-only and percentile intervals beside it."""
  summary = lambda d, k: _summary_mean([r for group in runs[d] for r in group], k)
  return {"design": a, "other": b, "lr_block": summary(a, "lr_block"), "lr_head": summary(a, "lr_head"),
          "other_lr_block": summary(b, "lr_block"), "other_lr_head": summary(b, "lr_head"),
          "angle_shift": summary(a, "angle_shift"), "other_angle_shift": summary(b, "angle_shift"),
          "units": two.units, "unit_level": two.unit_level, "examples": two.examples, "delta_auc": two.estimate,
          "low": two.low, "high": two.high, "se": two.se, "df": two.df, "p": two.p_value,
          "seeds_only_low": seeds_only.low, "seeds_only_high": seeds_only.high,
          "percentile_low": two.percentile_low, "percentile_high": two.percentile_high}


def _holm_adjust(headline: list[dict], bootstrap: dict) -> None:
  """Adds Holm-adjusted `p_holm` and the decision `differs` to each headline row (in place)."""
  if headline:
    adjusted, differs = stats.holm([r["p"] for r in headline], 1.0 - bootstrap.get("confidence", 0.95))
    for row, p, d in zip(headline, adjusted, differs):
      row["p_holm"], row["differs"] = float(p), bool(d)


MARGIN = 0.01  # |ΔAUC| the answer's sentences call practically equal when the interval lies within it


def verdict(low: float, high: float, margin: float = MARGIN) -> str:
  """What an interval [low, high] of ΔAUC = quantum − other supports, in words that claim no more."""
  if low > 0:
    return "ahead"
  if high < 0:
    return "behind"
  if -margin <= low and high <= margin:
    return f"not distinguishable at ±{margin:g}"
  return f"undecided (the interval is wider than ±{margin:g})"


def in_short(rows: list[dict], confidence: float) -> list[str]:
  """Section "In short": one generated sentence per headline group of `_family_rows` (feature set,
  or dataset over backbones): the quantum family's best against each other family's best, with its
  two-level interval and Holm decision, worded by `verdict`."""
  groups: dict[str, list[dict]] = {}
  for r in (r for r in rows if r["table"] == "headline"):
    groups.setdefault(r["features"], []).append(r)
  sentences = []
  for name, mine in groups.items():
    parts = [f"against the {r['family']} family's best {r['delta_auc']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}], "
             f"{verdict(r['low'], r['high'])}{' (differs after Holm)' if r['differs'] else ''}" for r in mine]
    sentences.append(f"On {name}{' (saturated)' if mine[0]['saturated'] else ''}, the quantum family's best "
                     f"({mine[0]['design']}): " + "; ".join(parts) + ".")
  return ["## In short", "", f"ΔAUC = quantum − other, {confidence:.0%} two-level intervals; "
          f"\"not distinguishable at ±{MARGIN:g}\" = the whole interval lies within ±{MARGIN:g}. "
          + " ".join(sentences), ""] if sentences else []


def _family_lines(rows: list[dict], confidence: float) -> list[str]:
  """Markdown of the two family tables (`_family_rows`)."""
  fmt = lambda x, spec: "—" if x is None or not np.isfinite(x) else format(x, spec)
  lines = ["## Does the quantum head help? Family best against family best", "",
           "Four families (in-path quantum; classical twin; entanglement-free control = the same circuit without "
           "its entangling gates; linear) each chose its design from the same menu (raw or standardised features, "
           "LayerNorm before or after the bottleneck, angle scale) by mean validation AUC, or by mean validation "
           "loss where every head's validation AUC is ≥ 0.99 (saturated), never by test. ΔAUC = quantum − other: "
           f"{confidence:.0%} t interval of the two-level bootstrap (seeds, or backbones when pooled, and test "
           "examples together; `stats.two_level_bootstrap`); seeds only = the same without the test set's "
           "noise. p (Holm) adjusted over the rows of this table; Δθ = mean |change| of the circuit angles (rad).", "",
           "| features | rule | quantum design (Δθ) | lr block / head | other family | other design (Δθ) | "
           "lr block / head | ΔAUC [two-level] | seeds only | units | p (Holm) | differs |",
           "|---|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in (r for r in rows if r["table"] == "headline"):
    lines.append(
        f"| {r['features']}{' (saturated)' if r['saturated'] else ''} | {r['rule']} | {r['design']} "
        f"({fmt(r['angle_shift'], '.2f')}) | {fmt(r['lr_block'], '.0e')} / {fmt(r['lr_head'], '.0e')} | {r['family']} | "
        f"{r['other']} ({fmt(r['other_angle_shift'], '.2f')}) | {fmt(r['other_lr_block'], '.0e')} / "
        f"{fmt(r['other_lr_head'], '.0e')} | {r['delta_auc']:+.4f} [{r['low']:+.4f}, {r['high']:+.4f}] | "
        f"[{r['seeds_only_low']:+.4f}, {r['seeds_only_high']:+.4f}] | {r['units']} {r['unit_level']}"
        f"{'' if r['examples'] else ', no test-set resampling'} | {r['p']:.3f} ({r['p_holm']:.3f}) | "
        f"{'yes' if r['differs'] else 'no'} |")
  lines += ["", "Each design against its own twin and its own control (same intervals, no adjustment).", "",
            "| features | A | B | ΔAUC [two-level] | seeds only | units |", "|---|---|---|---|---|---|"]
  lines += [f"| {r['features']} | {r['design']} | {r['other']} | {r['delta_auc']:+.4f} [{r['low']:+.4f}, "
            f"{r['high']:+.4f}] | [{r['seeds_only_low']:+.4f}, {r['seeds_only_high']:+.4f}] | {r['units']} "
            f"{r['unit_level']} |" for r in rows if r["table"] == "own"]
  return lines


def _compare(a: list[dict], b: list[dict], labels: np.ndarray, task: str, bootstrap: dict,
             examples: bool) -> dict[str, Any]:
  """Paired intervals of A − B in test AUC: over seeds (paired by seed) and, when `examples`, over
  test examples."""
  seeds = sorted({r["seed"] for r in a} & {r["seed"] for r in b})
  pick = lambda runs: [next(r for r in runs if r["seed"] == s) for s in seeds]
  a, b = pick(a), pick(b)
  seed_auc = stats.seed_bootstrap([r["summary"]["test_auc"] for r in a], [r["summary"]["test_auc"] for r in b],
                                  **bootstrap)
  if not examples:
    return {"seeds": len(seeds), "seed_auc": seed_auc}
  intervals = stats.example_bootstrap(labels, [r["test_scores"] for r in a], [r["test_scores"] for r in b], task,
                                      **bootstrap)
  return {"seeds": len(seeds), "seed_auc": seed_auc, "example_auc": intervals["auc"], "example_acc": intervals["acc"]}


def _design_table(dataset_rows: list[dict]) -> list[str]:
  """One feature set's table of designs (mean ± std over seeds)."""
  lines = ["| model | kind | seeds | test AUC | test ACC | val AUC | balanced acc | F1 (macro) | params "
           "(quantum) | lr block / head | wall s (all seeds) |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in dataset_rows:
    if not r["n_seeds"]:
      lines.append(f"| {r['model']} | {r['kind']} | 0 | pending | | | | | | | |")
      continue
    lines.append(f"| {r['model']} | {r['kind']} | {r['n_seeds']} | {r['test_auc_mean']:.4f} ± {r['test_auc_std']:.4f} "
                 f"| {r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | {r['val_auc_mean']:.4f} | "
                 f"{r['test_balanced_accuracy_mean']:.4f} | {r['test_f1_macro_mean']:.4f} | {r['num_params']} "
                 f"({r['quantum_params']}) | {_rates(r)} | {r['wall_time_s']:.1f} |")
  return lines


def _comparison_lines(specs: dict, runs: dict, labels, task: str, bootstrap: dict, max_examples) -> tuple:
  """(markdown lines, {(A, B): comparison}) of each design against its twin and of every bottleneck
  design against the linear head."""
  lines = ["\nPaired differences in test AUC (A − B), percentile intervals: seeds = bootstrap over the "
           "paired seeds; examples = the same test-example resamples for A and B.\n"]
  examples = max_examples is None or len(labels) <= max_examples
  if not examples:
    lines.append(f"{len(labels)} test examples (over {max_examples}): only the seed bootstrap is computed.\n")
  lines += ["| A | B | seeds | ΔAUC (seeds) | ΔAUC (test examples) | ΔACC (test examples) |", "|---|---|---|---|---|---|"]
  comparisons = [(d, d + TWIN_SUFFIX) for d in specs if d + TWIN_SUFFIX in specs]
  # Twins against linear too: what the shared bottleneck costs, circuit or not.
  comparisons += [(d, "linear") for d in specs if specs[d]["head"]["kind"] in ("quantum", "product", "classical")
                  and "linear" in specs]
  found = {}
  for a, b in comparisons:
    if runs[a] and runs[b]:
      found[(a, b)] = c = _compare(runs[a], runs[b], labels, task, bootstrap, examples)
      lines.append(f"| {a} | {b} | {c['seeds']} | {c['seed_auc'].format(4)} | "
                   f"{c['example_auc'].format(4) if examples else '—'} | "
                   f"{c['example_acc'].format(4) if examples else '—'} |")
  return lines, found


def _backbone_words(meta: dict) -> str:
  """The backbone run's own test AUC / ACC beside the published ResNet-50 (28) pair of its dataset,
  and its config hash and commit (what regenerates it); "" for features recorded without them."""
  if meta.get("source_test_auc") is None:
    return ""
  paper = next((r for r in published.published(meta["dataset"]) if r.method == "ResNet-50 (28)"), None)
  beside = f" (published ResNet-50 (28): {paper.test_auc:.3f} / {paper.test_acc:.3f})" if paper else ""
  return (f" Backbone test AUC / ACC {meta['source_test_auc']:.3f} / {meta['source_test_acc']:.3f}{beside}; "
          f"run config sha256 {str(meta.get('source_config_sha256'))[:12]}, commit "
          f"{str(meta.get('source_git_commit'))[:12]}.")


def _features_line(study, dataset: str, path: str, feature_set, specs: dict) -> str:
  meta = feature_set.meta
  return (f"\n## {dataset}\n\nFeatures: `{os.path.basename(path)}` from {meta['source_model']} "
          f"seed {meta['source_seed']} (epoch {meta['source_epoch']}, val AUC "
          f"{meta['source_val_auc']:.4f}); {feature_set.features['train'].shape[0]} train, "
          f"{feature_set.features['test'].shape[0]} test examples, {feature_set.dim} features; "
          f"{run_config(study, dataset, next(iter(specs))).num_epochs} epochs."
          f"{_backbone_words(meta)}\n")


def _feature_set_section(study, root: str, dataset: str, path: str, bootstrap: dict, max_examples):
  """(rows, markdown lines, answer line, comparisons, forest entry or None) of one feature set."""
  specs = designs(study)
  feature_set = features.load(path)
  runs = {d: _load_runs(study, root, dataset, d) for d in specs}
  dataset_rows = [_row(dataset, d, specs[d], runs[d]) for d in specs]
  # Predictions CSVs are sorted by official index: align the labels with them.
  labels = feature_set.labels["test"][np.argsort(feature_set.index["test"])]
  lines = [_features_line(study, dataset, path, feature_set, specs)] + _design_table(dataset_rows)
  comparison_lines, found = _comparison_lines(specs, runs, labels, feature_set.task, bootstrap, max_examples)
  lines += comparison_lines + _gate_lines(runs, bootstrap)
  chosen, forest = _chosen_in_path(dataset_rows), None
  if chosen:
    forest = {name: found[(chosen["model"], other)]["seed_auc"]
              for name, other in (("twin", chosen["model"] + TWIN_SUFFIX), ("linear", "linear"))
              if (chosen["model"], other) in found}
  return dataset_rows, lines, _answer(dataset, dataset_rows, found), found, forest


def write_report(study: ml_collections.ConfigDict, root: str, out: str | None = None) -> tuple[str, str]:
  """Writes `{out}/results.csv` and `{out}/results.md` (default out: `root`) from the runs under
  `root` (workdirs or their records); returns their paths."""
  bootstrap = dict(study.get("bootstrap", {"num_resamples": 10_000, "confidence": 0.95, "seed": 0}))
  max_examples = bootstrap.pop("max_test_examples", None)
  rows, lines, answer, per_key, forest = [], [], [], {}, {}
  for dataset, path in study.features.items():
    if not os.path.exists(path):
      lines.append(f"\n## {dataset}\n\nNo feature file `{path}` yet: nothing trained.\n")
      answer.append(f"| {dataset} | — | — | — | — | — | — |")
      continue
    dataset_rows, dataset_lines, answer_line, per_key[dataset], entry = _feature_set_section(
        study, root, dataset, path, bootstrap, max_examples)
    rows, lines, answer = rows + dataset_rows, lines + dataset_lines, answer + [answer_line]
    if entry is not None:
      forest[dataset] = entry
  lines += _backbone_lines(per_key, bootstrap)
  out = out or root
  os.makedirs(out, exist_ok=True)
  csv_path, md_path = os.path.join(out, "results.csv"), os.path.join(out, "results.md")
  header = [f"# {study.name}", "", "Mean ± sample std (ddof 1) over seeds; each run's test metrics at its "
            "best-validation-AUC epoch. Chosen = highest mean validation AUC within the kind (never test).", ""]
  if study.get("families"):  # the issue-44 protocol: family tables first, the old answer table after them
    family_rows = _family_rows(study, root, bootstrap, max_examples)
    reports.write_text_atomic(os.path.join(out, HEADLINE_FILE), reports.csv_text(family_rows, HEADLINE_COLUMNS))
    confidence = bootstrap.get("confidence", 0.95)
    header += in_short(family_rows, confidence) + _family_lines(family_rows, confidence) + [""]
  reports.write_text_atomic(csv_path, reports.csv_text(rows, CSV_COLUMNS + (FAMILY_COLUMNS if study.get("families")
                                                                            else ())))
  header += ["## Does the quantum head help?" + (" Each quantum design's own pairs" if study.get("families") else ""),
             "",
            "In-path quantum heads only (the circuit's output is the prediction's only path: no residual "
            "linear path); the one with the highest mean validation AUC per feature set, against its "
            "parameter-matched twin and the linear head. ΔAUC = quantum − other, bootstrap over paired seeds.", "",
            "| features | best in-path quantum (val) | test AUC | twin | ΔAUC vs twin | linear | ΔAUC vs linear |",
            "|---|---|---|---|---|---|---|", *answer]
  if forest:
    reports.save_figure(forest_plot(forest), os.path.join(out, FOREST_FILE))
    header += ["", f"![in-path quantum head minus twin and linear]({FOREST_FILE})"]
  reports.write_text_atomic(md_path, "\n".join(header + lines) + "\n")
  return csv_path, md_path


def _gate_lines(runs: dict[str, list[dict]], bootstrap: dict) -> list[str]:
  """Markdown lines "what the residual gate adds" for the designs whose runs all have gate-off
  metrics (`stats.gate_effect`); [] when none has."""
  effects = {d: stats.gate_effect([r["summary"] for r in rs], [r["summary"] for r in rs], **bootstrap)
             for d, rs in runs.items() if rs and all("test_auc_gate_off" in r["summary"] for r in rs)}
  if not effects:
    return []
  lines = ["\nWhat the residual gate adds on test: the same parameters with g = 0 (the linear path alone); "
           "Δ = gate on − gate off, bootstrap over seeds.\n",
           "| model | seeds | g (min, max) | test AUC | test AUC, g = 0 | ΔAUC (seeds) | ΔACC (seeds) |",
           "|---|---|---|---|---|---|---|"]
  lines += [f"| {d} | {len(runs[d])} | {e['gate_min']:.2g}, {e['gate_max']:.2g} | {e['test_auc']:.4f} | "
            f"{e['test_auc_gate_off']:.4f} | {e['seed_auc'].format(4)} | {e['seed_acc'].format(4)} |"
            for d, e in effects.items()]
  return lines


def _rates(row: dict) -> str:
  """"block / head" learning rates of a row ("—" for a linear head's block)."""
  if not np.isfinite(row.get("lr_head", np.nan)):
    return "—"
  block = "—" if row["kind"] == "linear" else f"{row['lr_block']:.0e}"
  return f"{block} / {row['lr_head']:.0e}"


def _chosen_in_path(rows: list[dict]) -> dict | None:
  """The row of the in-path quantum design with the highest mean validation AUC, or None."""
  quantum = [r for r in rows if r["n_seeds"] and r["kind"] == "quantum" and r["in_path"]]
  return max(quantum, key=lambda r: r["val_auc_mean"]) if quantum else None


def forest_plot(intervals: dict[str, dict[str, stats.Interval]]) -> mpl_figure.Figure:
  """Forest plot: per feature set, ΔAUC of its chosen in-path quantum head minus its "twin" and
  minus the "linear" head (the keys of each set's entry; point and interval)."""
  keys = list(intervals)
  fig = mpl_figure.Figure(figsize=(6.4, 0.9 + 0.42 * len(keys)), layout="constrained")
  ax = fig.subplots()
  for j, (other, marker, offset) in enumerate((("twin", "o", 0.15), ("linear", "s", -0.15))):
    labelled = False
    for i, key in enumerate(keys):
      if other in intervals[key]:
        d = intervals[key][other]
        ax.errorbar(d.estimate, len(keys) - 1 - i + offset, xerr=[[d.estimate - d.low], [d.high - d.estimate]],
                    fmt=marker, color=f"C{j}", capsize=3, label=None if labelled else f"quantum − {other}")
        labelled = True
  ax.axvline(0.0, color="0.4", lw=0.8)
  ax.set_yticks(range(len(keys)), list(reversed(keys)))
  ax.set_xlabel("test AUC difference (95% interval over paired seeds)")
  ax.legend(fontsize=8, loc="best")
  ax.grid(axis="x", alpha=0.3)
  return fig


def _answer(dataset: str, rows: list[dict], comparisons: dict) -> str:
  """One line of the answer table: the val-chosen in-path quantum design against its twin and linear."""
  q = _chosen_in_path(rows)
  if q is None:
    return f"| {dataset} | — | — | — | — | — | — |"
  by_name = {r["model"]: r for r in rows}

  def versus(other: str) -> tuple[str, str]:
    c, r = comparisons.get((q["model"], other)), by_name.get(other)
    return (f"{r['test_auc_mean']:.4f}" if r and r["n_seeds"] else "—"), (c["seed_auc"].format(4) if c else "—")

  twin, linear = versus(q["model"] + TWIN_SUFFIX), versus("linear")
  return f"| {dataset} | {q['model']} | {q['test_auc_mean']:.4f} | {twin[0]} | {twin[1]} | {linear[0]} | {linear[1]} |"


def _backbone_lines(per_key: dict[str, dict], bootstrap: dict) -> list[str]:
  """Markdown section "over backbones" for each dataset with features of several backbones: every
  comparison found on all of them, its seed-mean ΔAUC per backbone and the bootstrap interval over
  backbones (each backbone's seed mean one paired value); [] when no dataset has several."""
  groups: dict[str, list[str]] = {}
  for key in per_key:
    groups.setdefault(dataset_of(key), []).append(key)
  lines = []
  for dataset, keys in groups.items():
    if len(keys) < 2:
      continue
    common = [pair for pair in per_key[keys[0]] if all(pair in per_key[k] for k in keys)]
    lines += [f"\n## {dataset} over {len(keys)} backbones\n",
              f"Feature sets: {', '.join(f'`{k}`' for k in keys)}. ΔAUC (A − B) = mean over the paired seeds "
              "per backbone; interval = bootstrap over backbones.\n",
              "| A | B | backbones | ΔAUC per backbone | ΔAUC over backbones |", "|---|---|---|---|---|"]
    for a, b in common:
      deltas = [per_key[k][(a, b)]["seed_auc"].estimate for k in keys]
      interval = stats.seed_bootstrap(deltas, np.zeros(len(deltas)), **bootstrap)
      lines.append(f"| {a} | {b} | {len(keys)} | {', '.join(f'{d:+.3f}' for d in deltas)} | {interval.format(4)} |")
  return lines
