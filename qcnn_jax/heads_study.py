"""Head study on frozen features: designs × datasets × seeds, each quantum design with its twin.

A study config (`experiments/configs/heads.py`) holds:

  name          report title.
  features      dataset -> feature file (`python -m experiments.extract_features`).
  base          run config: `head` (FeatureHead options) and the optimisation keys of medmnist.py.
  designs       design name -> {"head": FeatureHead options, "overrides": base keys} (both optional).
                Every design of kind "quantum" gets a classical twin "<name>_twin" (kind
                "classical", everything else equal), trained on the same seeds.
  seeds         training seeds; all seeds of a design train as one vmapped program.
  dataset_overrides  optional: dataset -> base keys (e.g. fewer epochs on a large set).
  bootstrap     num_resamples, confidence, seed of the paired intervals.

Runs live in `{root}/{dataset}/{design}/seed{k}` (files as `qcnn_jax.train` writes them); a design
whose seeds all have summary.json is skipped. The report (`results.csv`, `results.md`) gives every
design's mean ± std over seeds, the paired intervals quantum − twin and quantum − linear, what the
residual designs' gate g adds (test metrics with g set to 0), and, per dataset, the quantum and
classical designs chosen by mean validation AUC (never by test).
"""

import csv
import io
import logging
import os
import time
from typing import Any

import ml_collections
import numpy as np

from qcnn_jax import features, heads_train, reports, runtime, stats

TWIN_SUFFIX = "_twin"
CSV_COLUMNS = ("dataset", "model", "kind", "twin_of", "n_seeds", "test_auc_mean", "test_auc_std", "test_acc_mean",
               "test_acc_std", "val_auc_mean", "test_balanced_accuracy_mean", "test_f1_macro_mean", "num_params",
               "quantum_params", "wall_time_s")


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


def run_config(study: ml_collections.ConfigDict, dataset: str, design: str) -> ml_collections.ConfigDict:
  """Base config with the dataset's overrides, then the design's head options and overrides."""
  spec = designs(study)[design]
  config = study.base.copy_and_resolve_references()
  config.unlock()
  config.dataset, config.design = dataset, design
  config.update(study.get("dataset_overrides", {}).get(dataset, ml_collections.ConfigDict()).to_dict())
  config.head.update(spec["head"])
  config.update(spec["overrides"])
  return config


def run_dir(root: str, dataset: str, design: str, seed: int) -> str:
  return os.path.join(root, dataset, design, f"seed{seed}")


def finished(root: str, dataset: str, design: str, seed: int) -> bool:
  return os.path.exists(os.path.join(run_dir(root, dataset, design, seed), reports.SUMMARY_FILENAME))


def train_study(study: ml_collections.ConfigDict, root: str, *, datasets=None, selected=None) -> None:
  """Trains every unfinished (dataset, design) of the study, all its seeds in one program."""
  seeds = [int(s) for s in study.seeds]
  if datasets is None:  # every set whose features exist; a named set must have them
    datasets = [d for d, path in study.features.items() if os.path.exists(path)]
  for dataset in datasets:
    if dataset not in study.features:
      raise ValueError(f"dataset {dataset!r} has no feature file in the study; it has {list(study.features)}")
  for dataset in datasets:
    feature_set = features.load(study.features[dataset])
    todo = {design: [s for s in seeds if not finished(root, dataset, design, s)] for design in selected or designs(study)}
    todo = {design: left for design, left in todo.items() if left}
    with runtime.progress_bar(len(todo), unit="design", desc=f"heads {dataset}", enabled=study.get("progress", True)) as bar:
      for design, left in todo.items():
        bar.set_postfix_str(f"{design}, {len(left)} seeds")
        config = run_config(study, dataset, design)
        start = time.time()
        results = heads_train.train_seeds(config, feature_set, left)
        wall = time.time() - start
        for result in results:
          heads_train.write_run(result, run_dir(root, dataset, design, result.seed), config, feature_set, wall)
        logging.info("%s %s: %d seeds in %.1f s, test AUC %.4f ± %.4f", dataset, design, len(left), wall,
                     np.mean([r.reports["test"]["auc"] for r in results]),
                     np.std([r.reports["test"]["auc"] for r in results]))
        bar.update()


def _load_runs(root: str, dataset: str, design: str, seeds: list[int]) -> list[dict]:
  runs = []
  for seed in seeds:
    if finished(root, dataset, design, seed):
      workdir = run_dir(root, dataset, design, seed)
      summary = reports.read_json(os.path.join(workdir, reports.SUMMARY_FILENAME))
      test_csv = [f for f in os.listdir(os.path.join(workdir, "predictions")) if "_test_" in f]
      _, scores = reports.read_predictions_csv(os.path.join(workdir, "predictions", test_csv[0]))
      runs.append({"seed": seed, "summary": summary, "test_scores": scores})
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
  for key in ("num_params", "quantum_params", "wall_time_s"):
    row[key] = runs[0]["summary"][key] if runs else np.nan
  return row


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


def write_report(study: ml_collections.ConfigDict, root: str) -> tuple[str, str]:
  """Writes `{root}/results.csv` and `{root}/results.md`; returns their paths."""
  seeds, specs = [int(s) for s in study.seeds], designs(study)
  bootstrap = dict(study.get("bootstrap", {"num_resamples": 10_000, "confidence": 0.95, "seed": 0}))
  max_examples = bootstrap.pop("max_test_examples", None)
  rows, lines, answer = [], [], []
  for dataset, path in study.features.items():
    if not os.path.exists(path):
      lines.append(f"\n## {dataset}\n\nNo feature file `{path}` yet: nothing trained.\n")
      answer.append(f"| {dataset} | — | — | — | — | — |")
      continue
    feature_set = features.load(path)
    runs = {d: _load_runs(root, dataset, d, seeds) for d in specs}
    dataset_rows = [_row(dataset, d, specs[d], runs[d]) for d in specs]
    rows += dataset_rows
    # Predictions CSVs are sorted by official index: align the labels with them.
    labels, task = feature_set.labels["test"][np.argsort(feature_set.index["test"])], feature_set.task
    lines.append(f"\n## {dataset}\n\nFeatures: `{os.path.basename(path)}` from {feature_set.meta['source_model']} "
                 f"seed {feature_set.meta['source_seed']} (epoch {feature_set.meta['source_epoch']}, val AUC "
                 f"{feature_set.meta['source_val_auc']:.4f}); {feature_set.features['train'].shape[0]} train, "
                 f"{feature_set.features['test'].shape[0]} test examples, {feature_set.dim} features; "
                 f"{run_config(study, dataset, 'linear').num_epochs if 'linear' in specs else ''} epochs.\n")
    lines.append("| model | kind | seeds | test AUC | test ACC | val AUC | balanced acc | F1 (macro) | params "
                 "(quantum) | wall s (all seeds) |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    for r in dataset_rows:
      if not r["n_seeds"]:
        lines.append(f"| {r['model']} | {r['kind']} | 0 | pending | | | | | | |")
        continue
      lines.append(f"| {r['model']} | {r['kind']} | {r['n_seeds']} | {r['test_auc_mean']:.4f} ± {r['test_auc_std']:.4f} "
                   f"| {r['test_acc_mean']:.4f} ± {r['test_acc_std']:.4f} | {r['val_auc_mean']:.4f} | "
                   f"{r['test_balanced_accuracy_mean']:.4f} | {r['test_f1_macro_mean']:.4f} | {r['num_params']} "
                   f"({r['quantum_params']}) | {r['wall_time_s']:.1f} |")
    lines.append("\nPaired differences in test AUC (A − B), percentile intervals: seeds = bootstrap over the "
                 "paired seeds; examples = the same test-example resamples for A and B.\n")
    examples = max_examples is None or len(labels) <= max_examples
    if not examples:
      lines.append(f"{len(labels)} test examples (over {max_examples}): only the seed bootstrap is computed.\n")
    lines.append("| A | B | seeds | ΔAUC (seeds) | ΔAUC (test examples) | ΔACC (test examples) |")
    lines.append("|---|---|---|---|---|---|")
    comparisons = [(d, d + TWIN_SUFFIX) for d in specs if d + TWIN_SUFFIX in specs]
    comparisons += [(d, "linear") for d in specs if specs[d]["head"]["kind"] in ("quantum", "product")
                    and "linear" in specs]
    found = {}
    for a, b in comparisons:
      if runs[a] and runs[b]:
        found[(a, b)] = c = _compare(runs[a], runs[b], labels, task, bootstrap, examples)
        lines.append(f"| {a} | {b} | {c['seeds']} | {c['seed_auc'].format(4)} | "
                     f"{c['example_auc'].format(4) if examples else '—'} | "
                     f"{c['example_acc'].format(4) if examples else '—'} |")
    lines += _gate_lines(runs, bootstrap)
    answer.append(_answer(dataset, dataset_rows, found))
  csv_text = io.StringIO()
  writer = csv.DictWriter(csv_text, fieldnames=CSV_COLUMNS, extrasaction="ignore")
  writer.writeheader()
  writer.writerows(rows)
  csv_path, md_path = os.path.join(root, "results.csv"), os.path.join(root, "results.md")
  reports.write_text_atomic(csv_path, csv_text.getvalue())
  header = [f"# {study.name}", "", "Mean ± sample std (ddof 1) over seeds; each run's test metrics at its "
            "best-validation-AUC epoch. Chosen = highest mean validation AUC within the kind (never test).", "",
            "## Does the quantum head help?", "",
            "| dataset | chosen quantum | test AUC | chosen classical (twin or linear) | test AUC | "
            "quantum − own twin, ΔAUC (seeds) |", "|---|---|---|---|---|---|", *answer]
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


def _answer(dataset: str, rows: list[dict], comparisons: dict) -> str:
  """One line of the answer table: val-chosen quantum and classical designs of a dataset."""
  done = [r for r in rows if r["n_seeds"]]
  quantum = [r for r in done if r["kind"] in ("quantum", "product")]
  classical = [r for r in done if r["kind"] in ("classical", "linear")]
  if not quantum or not classical:
    return f"| {dataset} | — | — | — | — | — |"
  q = max(quantum, key=lambda r: r["val_auc_mean"])
  c = max(classical, key=lambda r: r["val_auc_mean"])
  twin = comparisons.get((q["model"], q["model"] + TWIN_SUFFIX))
  delta = twin["seed_auc"].format(4) if twin else "—"
  return (f"| {dataset} | {q['model']} | {q['test_auc_mean']:.4f} | {c['model']} | {c['test_auc_mean']:.4f} | "
          f"{delta} |")
