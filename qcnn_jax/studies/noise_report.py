"""What circuit noise costs a trained head, over training seeds: one report from several runs'
`experiments.robustness` (`robustness.csv`: shots, depolarizing, amplitude damping, readout
error) and `experiments.device_eval` (`device_eval.csv`, `device_eval_readouts.npz`) outputs.

* Sweep: per (kind, setting) the mean over runs of test AUC and of the AUC drop (exact minus the
  setting, a run's sampling seeds averaged first; positive = worse), its standard deviation over
  runs and the worst run's absolute drop; ACC likewise.
* Tolerance: per kind, the settings at which every run stays within `tolerance` of its exact AUC:
  the fewest shots from which every larger count tested does, the largest p (eps) up to which every
  smaller one tested does.
* Device: per noise source, mean ± std over runs of test AUC and ACC and of their drops, with a 95%
  bootstrap over test examples of the mean drop (`stats.paired_bootstrap`: every run's exact and
  noisy logits scored on the same resample); the routed circuits' depth and two-qubit gates.
"""

import csv
import os

import numpy as np

from qcnn_jax.evaluation import metrics, stats
from qcnn_jax.studies import robustness

SWEEP_KINDS = robustness.CIRCUIT_KINDS
GROWING = {"shots": True, "depolarizing": False, "amplitude_damping": False, "readout_error": False}


def _read_csv(path: str, hint: str) -> list[dict]:
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path} is missing: {hint}")
  with open(path, newline="") as f:
    return list(csv.DictReader(f))


def sweep_rows(workdirs: list[str]) -> list[dict]:
  """One row per circuit (kind, setting) found in every run's `robustness.csv`, in their order."""
  per_run = [{(r["kind"], r["setting"]): r for r in _read_csv(
      os.path.join(w, "robustness.csv"), f"run python -m experiments.robustness --workdir={w}")
      if r["kind"] in ("exact",) + SWEEP_KINDS} for w in workdirs]
  rows = []
  for key in [k for k in per_run[0] if all(k in run for run in per_run)]:
    values = {m: np.array([float(run[key][m]) for run in per_run]) for m in ("test_auc", "auc_drop", "test_acc",
                                                                            "acc_drop")}
    rows.append({"kind": key[0], "setting": key[1], "n_runs": len(per_run),
                 "test_auc": values["test_auc"].mean(), "auc_drop": values["auc_drop"].mean(),
                 "auc_drop_std": values["auc_drop"].std(ddof=1) if len(per_run) > 1 else float("nan"),
                 "auc_drop_worst": np.abs(values["auc_drop"]).max(), "test_acc": values["test_acc"].mean(),
                 "acc_drop": values["acc_drop"].mean(), "acc_drop_worst": np.abs(values["acc_drop"]).max()})
  return rows


def tolerances(rows: list[dict], tolerance: float = 0.01) -> dict[str, str]:
  """{kind: the settings within `tolerance` of exact AUC for every run}, e.g. ">= 300" shots,
  "<= 0.003" for p; "none tested" when even the mildest setting tested is outside."""
  found = {}
  for kind in SWEEP_KINDS:
    points = sorted((float(r["setting"]), r["auc_drop_worst"]) for r in rows if r["kind"] == kind)
    if not points:
      continue
    kept = None
    for value, worst in sorted(points, reverse=GROWING[kind]):  # from the mildest setting on
      if worst > tolerance:
        break
      kept = value
    found[kind] = "none tested" if kept is None else f"{'>=' if GROWING[kind] else '<='} {kept:g}"
  return found


def readout_scale(exact: np.ndarray, noisy: np.ndarray) -> float:
  """Least-squares slope s of noisy = s * exact + c over examples and readout values: how much the
  noise shrinks the circuit's output (1: not at all; a uniform shrink keeps the ranking, so AUC)."""
  x, y = exact.ravel() - exact.mean(), noisy.ravel() - noisy.mean()
  return float(x @ y / (x @ x))


def device_rows(workdirs: list[str], num_resamples: int = 2000, seed: int = 0) -> list[dict]:
  """One row per noise source found in every run's `device_eval.csv` (see the module docstring)."""
  tables = [{r["noise"]: r for r in _read_csv(os.path.join(w, "device_eval.csv"),
                                              f"run python -m experiments.device_eval --workdir={w}")}
            for w in workdirs]
  arrays = [np.load(os.path.join(w, "device_eval_readouts.npz")) for w in workdirs]
  if any(not np.array_equal(a["index"], arrays[0]["index"]) for a in arrays):
    raise ValueError("every run must be evaluated on the same examples (same --limit and split)")
  rows = []
  for source in [s for s in tables[0] if all(s in t for t in tables)]:
    runs = [t[source] for t in tables]
    value = lambda k: np.array([float(r[k]) for r in runs])
    scores = [metrics.scores_from_logits(a[name], str(a["task"])) for a in arrays
              for name in ("logits_exact", f"logits_{source}")]
    drop = lambda m: m[0::2].mean(axis=0) - m[1::2].mean(axis=0)  # mean over runs of exact - noisy
    interval = stats.paired_bootstrap(arrays[0]["labels"], scores, drop, str(arrays[0]["task"]),
                                      num_resamples=num_resamples, seed=seed)
    row = {"noise": source, "n_runs": len(runs), "n_examples": runs[0]["n_examples"], "shots": runs[0]["shots"],
           "backend": runs[0]["backend"], "depth_mean": value("depth_mean").mean(),
           "gates_2q_mean": value("gates_2q_mean").mean(),
           "readout_scale": float(np.mean([readout_scale(a["exact"], a[source]) for a in arrays]))}
    for m in ("auc", "acc"):
      std = lambda v: v.std(ddof=1) if len(runs) > 1 else float("nan")
      row.update({f"test_{m}": value(f"test_{m}").mean(), f"test_{m}_std": std(value(f"test_{m}")),
                  f"exact_test_{m}": value(f"exact_test_{m}").mean(), f"{m}_drop": value(f"{m}_drop").mean(),
                  f"{m}_drop_std": std(value(f"{m}_drop")), f"{m}_drop_low": interval[m].low,
                  f"{m}_drop_high": interval[m].high})
    rows.append(row)
  return rows


def _pm(row: dict, key: str) -> str:
  return "" if np.isnan(row[key]) else f" ± {row[key]:.4f}"


def _sweep_markdown(sweep: list[dict], tolerance: float) -> list[str]:
  within = tolerances(sweep, tolerance)
  lines = ["## Shots and noise channels", "",
           "Drop = exact minus the setting (positive = worse); mean ± std over runs, and the worst run.", "",
           "| kind | setting | test AUC | AUC drop | worst run's abs. AUC drop | test ACC | ACC drop |",
           "|---|---|---|---|---|---|---|"]
  lines += [f"| {r['kind']} | {r['setting'] or '—'} | {r['test_auc']:.4f} | {r['auc_drop']:+.4f}{_pm(r, 'auc_drop_std')} "
            f"| {r['auc_drop_worst']:.4f} | {r['test_acc']:.4f} | {r['acc_drop']:+.4f} |" for r in sweep]
  lines += ["", f"## Settings within {tolerance:g} AUC of exact", "",
            f"Every run's AUC within {tolerance:g} of its exact AUC at these settings and every milder one tested.", "",
            "| kind | within tolerance |", "|---|---|"]
  lines += [f"| {kind} | {value} |" for kind, value in within.items()]
  return lines


def _device_markdown(device: list[dict]) -> list[str]:
  first = device[0]
  lines = [f"## Simulated device: {first['backend']}, {first['shots']} shots, {first['n_examples']} test images", "",
           f"Exact circuits on the same images: AUC {first['exact_test_auc']:.4f}, ACC {first['exact_test_acc']:.4f} "
           f"(mean over runs). Routed circuits: depth {first['depth_mean']:.0f}, {first['gates_2q_mean']:.0f} "
           "two-qubit gates. Drop intervals: 95% bootstrap over test examples of the mean drop over runs. "
           "Readout scale: slope of the noisy readout against the exact one (1: unchanged; a uniform shrink keeps "
           "the ranking of the examples, hence AUC, but moves the decision threshold, hence ACC).", "",
           "| noise | test AUC | AUC drop | AUC drop 95% CI | test ACC | ACC drop | ACC drop 95% CI | readout scale |",
           "|---|---|---|---|---|---|---|---|"]
  lines += [f"| {r['noise']} | {r['test_auc']:.4f}{_pm(r, 'test_auc_std')} | {r['auc_drop']:+.4f}{_pm(r, 'auc_drop_std')} "
            f"| [{r['auc_drop_low']:+.4f}, {r['auc_drop_high']:+.4f}] | {r['test_acc']:.4f}{_pm(r, 'test_acc_std')} "
            f"| {r['acc_drop']:+.4f}{_pm(r, 'acc_drop_std')} | [{r['acc_drop_low']:+.4f}, {r['acc_drop_high']:+.4f}] "
            f"| {r['readout_scale']:.3f} |"
            for r in device]
  return lines


def markdown(title: str, runs: list[str], sweep: list[dict], device: list[dict], tolerance: float = 0.01) -> str:
  """The report: the sweep with its tolerances, then the simulated device (each part when present)."""
  lines = [f"# {title}", "", "Runs: " + ", ".join(f"`{r}`" for r in runs) + ".", ""]
  if sweep:
    lines += _sweep_markdown(sweep, tolerance) + [""]
  if device:
    lines += _device_markdown(device) + [""]
  return "\n".join(lines)


def write(out_prefix: str, title: str, runs: list[str], sweep: list[dict], device: list[dict],
          tolerance: float = 0.01) -> list[str]:
  """`<out_prefix>.md`, `<out_prefix>_sweep.csv` and `<out_prefix>_device.csv` (those with rows)."""
  os.makedirs(os.path.dirname(os.path.abspath(out_prefix)), exist_ok=True)
  paths = []
  for suffix, rows in (("_sweep.csv", sweep), ("_device.csv", device)):
    if rows:
      with open(out_prefix + suffix, "w", newline="") as f:
        writer = csv.DictWriter(f, list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
      paths.append(out_prefix + suffix)
  with open(f"{out_prefix}.md", "w") as f:
    f.write(markdown(title, runs, sweep, device, tolerance))
  return paths + [f"{out_prefix}.md"]
