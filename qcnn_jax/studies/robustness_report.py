"""Does a head change robustness? Several runs' `experiments.robustness` results side by side.

Each run's drop under the corruptions is its clean (exact) test metric minus its metric under a
corruption (positive = worse), averaged over every corruption, severity and corruption seed it was
evaluated on. A model may have several runs (training seeds): its drop is the mean of its runs'
drops, reported with their standard deviation. A pair of models (A, B) is compared by the
difference of their mean drops, A minus B (negative: A is the more robust), with a paired
bootstrap over test examples (`stats.paired_bootstrap`: every run and setting scored on the same
resample) and, with several runs, a bootstrap over the runs paired in order (A's k-th run with B's
k-th: the same training seed).
"""

import csv
import os

import numpy as np

from qcnn_jax.evaluation import metrics, stats
from qcnn_jax.studies import robustness

DETAIL_COLUMNS = ("model", "kind", "setting", "n_runs", "n_seeds", "test_auc", "test_acc", "auc_drop", "acc_drop")


def load(runs: dict[str, str | list[str]]) -> dict[str, list[robustness.Predictions]]:
  """{model name: its runs' robustness predictions} from {name: workdir or [workdirs]}; every run
  must share the test examples."""
  loaded = {}
  for name, workdirs in runs.items():
    loaded[name] = []
    for workdir in [workdirs] if isinstance(workdirs, str) else workdirs:
      path = os.path.join(workdir, "robustness_predictions.npz")
      if not os.path.exists(path):
        raise FileNotFoundError(f"{path} is missing: run python -m experiments.robustness --workdir={workdir} "
                                "--corruptions=medmnistc first")
      loaded[name].append(robustness.load_predictions(path))
  first = next(iter(loaded.values()))[0]
  for name, runs_of in loaded.items():
    if not all(np.array_equal(p.index, first.index) for p in runs_of):
      raise ValueError(f"{name} was evaluated on other test examples than {next(iter(loaded))}")
  return loaded


def _corrupted(p: robustness.Predictions) -> list[int]:
  return [i for i, s in enumerate(p.settings) if s.kind == "corruption" and s.value is not None]


def _drop_scores(p: robustness.Predictions) -> list[np.ndarray]:
  """Scores of the exact setting, then of every corrupted setting (the terms of the mean drop)."""
  exact = [i for i, s in enumerate(p.settings) if s.kind == "exact"]
  corrupted = _corrupted(p)
  if not exact or not corrupted:
    raise ValueError("a run needs its exact setting and at least one corruption")
  return [metrics.scores_from_logits(p.logits[i], p.task) for i in exact[:1] + corrupted]


def _score_run(p: robustness.Predictions) -> dict[tuple[str, str], dict]:
  """One run: {(kind, label): test AUC/ACC averaged over sampling seeds, drop from exact, n_seeds}."""
  by_label: dict[tuple, list[dict]] = {}
  for s, logits in zip(p.settings, p.logits):
    scores = metrics.scores_from_logits(logits, p.task)
    by_label.setdefault((s.kind, s.label), []).append({"auc": metrics.auc(p.labels, scores, p.task),
                                                       "acc": metrics.acc(p.labels, scores, p.task)})
  clean = by_label[("exact", "")][0]
  rows = {}
  for key, reports in by_label.items():
    auc, acc = np.mean([r["auc"] for r in reports]), np.mean([r["acc"] for r in reports])
    rows[key] = {"n_seeds": len(reports), "test_auc": float(auc), "test_acc": float(acc),
                 "auc_drop": float(clean["auc"] - auc), "acc_drop": float(clean["acc"] - acc)}
  return rows


RunRows = dict[str, list[dict[tuple[str, str], dict]]]


def run_rows(loaded: dict[str, list[robustness.Predictions]]) -> RunRows:
  """{model: [each run's {(kind, label): test AUC/ACC, drop from exact, n_seeds}]}: every setting of
  every run scored once, for `detail_rows` and `run_drops`."""
  return {name: [_score_run(p) for p in runs_of] for name, runs_of in loaded.items()}


def detail_rows(rows: RunRows) -> list[dict]:
  """One row per model and setting, averaged over the model's runs that evaluated it (`n_runs`; e.g.
  circuit settings evaluated on one seed only) and their sampling seeds (`n_seeds` per run): test
  AUC/ACC and the drop from exact. Every run of a model must share its corruption settings."""
  out = []
  for name, per_run in rows.items():
    for key in dict.fromkeys(k for r in per_run for k in r):
      values = [r[key] for r in per_run if key in r]
      if key[0] in ("exact", "corruption") and len(values) < len(per_run):
        raise ValueError(f"the runs of {name} were evaluated under different corruptions ({key[1] or key[0]})")
      out.append({"model": name, "kind": key[0], "setting": key[1], "n_runs": len(values),
                  "n_seeds": values[0]["n_seeds"],
                  **{k: float(np.mean([v[k] for v in values])) for k in ("test_auc", "test_acc", "auc_drop", "acc_drop")}})
  return out


def run_drops(rows: RunRows) -> dict[str, dict[str, list[float]]]:
  """{model: {"auc": [mean AUC drop of each run], "acc": [...]}} over every corruption x severity."""
  out = {}
  for name, per_run in rows.items():
    drops = {"auc": [], "acc": []}
    for r in per_run:
      corrupted = [v for (kind, label), v in r.items() if kind == "corruption" and label != robustness.RESAMPLED]
      for key in drops:
        drops[key].append(float(np.mean([v[f"{key}_drop"] for v in corrupted])))
    out[name] = drops
  return out


def summary_rows(detail: list[dict], drops: dict[str, dict[str, list[float]]] | None = None) -> list[dict]:
  """Per model: clean and resampled metrics, the mean over every corruption x severity, and with
  `drops` (`run_drops`) the standard deviation of the mean drop over the model's runs."""
  out = []
  for name in dict.fromkeys(r["model"] for r in detail):
    rows = [r for r in detail if r["model"] == name]
    corrupted = [r for r in rows if r["kind"] == "corruption" and r["setting"] != robustness.RESAMPLED]
    get = lambda kind, setting: next((r for r in rows if (r["kind"], r["setting"]) == (kind, setting)), None)
    resampled = get("corruption", robustness.RESAMPLED)
    spread = {k: float(np.std(drops[name][k], ddof=1)) if drops and len(drops[name][k]) > 1 else float("nan")
              for k in ("auc", "acc")}
    out.append({"model": name, "n_runs": get("exact", "")["n_runs"],
                "clean_auc": get("exact", "")["test_auc"], "clean_acc": get("exact", "")["test_acc"],
                "resampled_auc": resampled["test_auc"] if resampled else float("nan"),
                "corrupted_auc": float(np.mean([r["test_auc"] for r in corrupted])),
                "corrupted_acc": float(np.mean([r["test_acc"] for r in corrupted])),
                "auc_drop": float(np.mean([r["auc_drop"] for r in corrupted])),
                "acc_drop": float(np.mean([r["acc_drop"] for r in corrupted])),
                "auc_drop_std": spread["auc"], "acc_drop_std": spread["acc"], "n_settings": len(corrupted)})
  return out


def compare(loaded: dict[str, list[robustness.Predictions]], drops: dict[str, dict[str, list[float]]], a: str,
            b: str, *, num_resamples: int = 2_000, confidence: float = 0.95, seed: int = 0) -> dict[str, stats.Interval]:
  """Mean drop of `a` minus mean drop of `b` (AUC and ACC, each averaged over the model's runs) with
  its paired test-example bootstrap interval ("auc", "acc") and, when both have the same number
  (> 1) of runs, the bootstrap over runs paired in order ("seed_auc", "seed_acc") of their `drops`
  (`run_drops`)."""
  corrupted = lambda p: {(s.label, s.seed) for s in p.settings if s.kind == "corruption"}
  if len({frozenset(corrupted(p)) for p in loaded[a] + loaded[b]}) != 1:
    raise ValueError(f"{a} and {b} were evaluated under different corruptions")
  scores = [_drop_scores(p) for p in loaded[a] + loaded[b]]
  bounds = np.cumsum([0] + [len(x) for x in scores])
  n_a = len(loaded[a])

  def difference(m):  # (R, B) metrics of every run's exact setting then corruptions, runs of A first
    drops = [m[lo] - m[lo + 1:hi].mean(0) for lo, hi in zip(bounds[:-1], bounds[1:])]
    return np.mean(drops[:n_a], axis=0) - np.mean(drops[n_a:], axis=0)

  intervals = stats.paired_bootstrap(loaded[a][0].labels, [x for run in scores for x in run], difference,
                                     loaded[a][0].task, num_resamples=num_resamples, confidence=confidence, seed=seed)
  if n_a == len(loaded[b]) > 1:
    for key in ("auc", "acc"):
      intervals[f"seed_{key}"] = stats.seed_bootstrap(drops[a][key], drops[b][key], num_resamples=10_000,
                                                      confidence=confidence, seed=seed)
  return intervals


def markdown(title: str, detail: list[dict], summary: list[dict], pairs: dict[tuple[str, str], dict]) -> str:
  """The report: per-model summary, paired differences of mean drops, and every setting."""
  models = [r["model"] for r in summary]
  lines = [f"# {title}", "",
           "Drop = clean (exact) test metric minus the metric under a corruption (positive = worse), averaged "
           "over every MedMNIST-C corruption and severity evaluated. Resampled = the images only resized to the "
           "corruptions' design size and back.", "",
           "With several runs per model (training seeds) every number is the mean over runs; ± = standard "
           "deviation of the runs' mean drops.", "",
           "| model | runs | clean AUC | clean ACC | resampled AUC | corrupted AUC (mean) | corrupted ACC (mean) "
           "| mean AUC drop | mean ACC drop | settings |", "|---|---|---|---|---|---|---|---|---|---|"]
  spread = lambda r, k: "" if np.isnan(r[f"{k}_drop_std"]) else f" ± {r[f'{k}_drop_std']:.4f}"
  lines += [f"| {r['model']} | {r['n_runs']} | {r['clean_auc']:.4f} | {r['clean_acc']:.4f} | {r['resampled_auc']:.4f} "
            f"| {r['corrupted_auc']:.4f} | {r['corrupted_acc']:.4f} | {r['auc_drop']:+.4f}{spread(r, 'auc')} "
            f"| {r['acc_drop']:+.4f}{spread(r, 'acc')} | {r['n_settings']} |" for r in summary]
  if pairs:
    lines += ["", "## Paired: mean drop of A minus mean drop of B (negative = A more robust)", "",
              "95% percentile intervals: paired bootstrap over test examples (every run of both models on the "
              "same resample) and, with several runs, over the runs paired in order (same training seed).", "",
              "| A | B | Δ AUC drop (test examples) | Δ ACC drop (test examples) | Δ AUC drop (runs) "
              "| Δ ACC drop (runs) |", "|---|---|---|---|---|---|"]
    runs_iv = lambda iv, k: iv[f"seed_{k}"].format(4) if f"seed_{k}" in iv else "—"
    lines += [f"| {a} | {b} | {iv['auc'].format(4)} | {iv['acc'].format(4)} | {runs_iv(iv, 'auc')} "
              f"| {runs_iv(iv, 'acc')} |" for (a, b), iv in pairs.items()]
  lines += ["", "## Every corruption: test AUC (drop)", "",
            "Circuit settings (shots, noise) are in each run's `robustness.csv` and in the CSV beside this file.", "",
            "| setting | " + " | ".join(models) + " |", "|---|" + "---|" * len(models)]
  settings = list(dict.fromkeys((r["kind"], r["setting"]) for r in detail if r["kind"] in ("exact", "corruption")))
  cell = {(r["model"], r["kind"], r["setting"]): r for r in detail}
  for kind, setting in settings:
    values = [cell.get((m, kind, setting)) for m in models]
    lines.append(f"| {setting or kind} | " + " | ".join(
        f"{v['test_auc']:.4f} ({v['auc_drop']:+.4f})" if v else "—" for v in values) + " |")
  return "\n".join(lines) + "\n"


def write(out_prefix: str, title: str, detail: list[dict], summary: list[dict],
          pairs: dict[tuple[str, str], dict]) -> tuple[str, str]:
  """`<out_prefix>.csv` (every model x setting) and `<out_prefix>.md`."""
  os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
  with open(f"{out_prefix}.csv", "w", newline="") as f:
    writer = csv.DictWriter(f, DETAIL_COLUMNS)
    writer.writeheader()
    writer.writerows(detail)
  with open(f"{out_prefix}.md", "w") as f:
    f.write(markdown(title, detail, summary, pairs))
  return f"{out_prefix}.csv", f"{out_prefix}.md"
