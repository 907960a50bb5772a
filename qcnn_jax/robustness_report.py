"""Does a head change robustness? Several runs' `experiments.robustness` results side by side.

Each run's drop under the corruptions is its clean (exact) test metric minus its metric under a
corruption (positive = worse), averaged over every corruption, severity and corruption seed it was
evaluated on. A pair of runs (A, B) is compared by the difference of their mean drops, A minus B
(negative: A is the more robust), with a paired bootstrap over test examples
(`stats.paired_bootstrap`): every run and setting is scored on the same resample.
"""

import csv
import os

import numpy as np

from qcnn_jax import metrics, robustness, stats

DETAIL_COLUMNS = ("model", "kind", "setting", "n_seeds", "test_auc", "test_acc", "auc_drop", "acc_drop")


def load(runs: dict[str, str]) -> dict[str, robustness.Predictions]:
  """{model name: its run's robustness predictions}; the runs must share their test examples."""
  loaded = {}
  for name, workdir in runs.items():
    path = os.path.join(workdir, "robustness_predictions.npz")
    if not os.path.exists(path):
      raise FileNotFoundError(f"{path} is missing: run python -m experiments.robustness --workdir={workdir} "
                              "--corruptions=medmnistc first")
    loaded[name] = robustness.load_predictions(path)
  first = next(iter(loaded.values()))
  for name, p in loaded.items():
    if not np.array_equal(p.index, first.index):
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


def detail_rows(loaded: dict[str, robustness.Predictions]) -> list[dict]:
  """One row per model and setting (seeds averaged): test AUC/ACC and the drop from exact."""
  rows = []
  for name, p in loaded.items():
    by_label: dict[tuple, list[dict]] = {}
    for s, logits in zip(p.settings, p.logits):
      report = {"auc": metrics.auc(p.labels, metrics.scores_from_logits(logits, p.task), p.task),
                "acc": metrics.acc(p.labels, metrics.scores_from_logits(logits, p.task), p.task)}
      by_label.setdefault((s.kind, s.label), []).append(report)
    clean = by_label[("exact", "")][0]
    for (kind, label), reports in by_label.items():
      auc, acc = np.mean([r["auc"] for r in reports]), np.mean([r["acc"] for r in reports])
      rows.append({"model": name, "kind": kind, "setting": label, "n_seeds": len(reports), "test_auc": float(auc),
                   "test_acc": float(acc), "auc_drop": float(clean["auc"] - auc), "acc_drop": float(clean["acc"] - acc)})
  return rows


def summary_rows(detail: list[dict]) -> list[dict]:
  """Per model: clean and resampled metrics, and the mean over every corruption x severity."""
  out = []
  for name in dict.fromkeys(r["model"] for r in detail):
    rows = [r for r in detail if r["model"] == name]
    corrupted = [r for r in rows if r["kind"] == "corruption" and r["setting"] != robustness.RESAMPLED]
    get = lambda kind, setting: next((r for r in rows if (r["kind"], r["setting"]) == (kind, setting)), None)
    resampled = get("corruption", robustness.RESAMPLED)
    out.append({"model": name, "clean_auc": get("exact", "")["test_auc"], "clean_acc": get("exact", "")["test_acc"],
                "resampled_auc": resampled["test_auc"] if resampled else float("nan"),
                "corrupted_auc": float(np.mean([r["test_auc"] for r in corrupted])),
                "corrupted_acc": float(np.mean([r["test_acc"] for r in corrupted])),
                "auc_drop": float(np.mean([r["auc_drop"] for r in corrupted])),
                "acc_drop": float(np.mean([r["acc_drop"] for r in corrupted])), "n_settings": len(corrupted)})
  return out


def compare(loaded: dict[str, robustness.Predictions], a: str, b: str, *, num_resamples: int = 2_000,
            confidence: float = 0.95, seed: int = 0) -> dict[str, stats.Interval]:
  """Mean drop of `a` minus mean drop of `b` (AUC and ACC) with its paired example-bootstrap interval."""
  corrupted = lambda name: {(s.label, s.seed) for s in loaded[name].settings if s.kind == "corruption"}
  if corrupted(a) != corrupted(b):
    raise ValueError(f"{a} and {b} were evaluated under different corruptions")
  scores_a, scores_b = _drop_scores(loaded[a]), _drop_scores(loaded[b])
  split = len(scores_a)
  mean_drop = lambda m: m[0] - m[1:].mean(0)  # (R, B) metrics: exact first, then the corruptions
  return stats.paired_bootstrap(loaded[a].labels, scores_a + scores_b,
                                lambda m: mean_drop(m[:split]) - mean_drop(m[split:]), loaded[a].task,
                                num_resamples=num_resamples, confidence=confidence, seed=seed)


def markdown(title: str, detail: list[dict], summary: list[dict], pairs: dict[tuple[str, str], dict]) -> str:
  """The report: per-model summary, paired differences of mean drops, and every setting."""
  models = [r["model"] for r in summary]
  lines = [f"# {title}", "",
           "Drop = clean (exact) test metric minus the metric under a corruption (positive = worse), averaged "
           "over every MedMNIST-C corruption and severity evaluated. Resampled = the images only resized to the "
           "corruptions' design size and back.", "",
           "| model | clean AUC | clean ACC | resampled AUC | corrupted AUC (mean) | corrupted ACC (mean) "
           "| mean AUC drop | mean ACC drop | settings |", "|---|---|---|---|---|---|---|---|---|"]
  lines += [f"| {r['model']} | {r['clean_auc']:.4f} | {r['clean_acc']:.4f} | {r['resampled_auc']:.4f} "
            f"| {r['corrupted_auc']:.4f} | {r['corrupted_acc']:.4f} | {r['auc_drop']:+.4f} | {r['acc_drop']:+.4f} "
            f"| {r['n_settings']} |" for r in summary]
  if pairs:
    lines += ["", "## Paired: mean drop of A minus mean drop of B (negative = A more robust)", "",
              "Paired bootstrap over test examples, 95% percentile interval.", "",
              "| A | B | Δ AUC drop | Δ ACC drop |", "|---|---|---|---|"]
    lines += [f"| {a} | {b} | {iv['auc'].format(4)} | {iv['acc'].format(4)} |" for (a, b), iv in pairs.items()]
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
