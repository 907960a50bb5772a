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


DEVICE_KEY = ("backend", "scheduled", "noise", "shots", "recalibrated")


def _device_records(workdirs: list[str]) -> tuple[list[list[dict]], list]:
  tables = [_read_csv(os.path.join(w, "device_eval.csv"), f"run python -m experiments.device_eval --workdir={w}")
            for w in workdirs]
  arrays = [np.load(os.path.join(w, "device_eval_readouts.npz")) for w in workdirs]
  if any(not np.array_equal(a["index"], arrays[0]["index"]) for a in arrays):
    raise ValueError("every run must be evaluated on the same examples (same --limit)")
  return tables, arrays


def device_rows(workdirs: list[str], num_resamples: int = 2000, seed: int = 0, tolerance: float = 0.01) -> list[dict]:
  """One row per (backend, scheduled, noise, shots, recalibrated) found in the runs'
  `device_eval.csv`, in their order, pooling layouts and sampling runs (see `_device_row`)."""
  tables, arrays = _device_records(workdirs)
  groups = {}
  for run, table in enumerate(tables):
    for r in table:
      groups.setdefault(tuple(r[k] for k in DEVICE_KEY), []).append((run, r))
  return [_device_row(members, arrays, num_resamples, seed, tolerance) for members in groups.values()]


def _device_row(members: list[tuple[int, dict]], arrays: list, num_resamples: int, seed: int,
                tolerance: float) -> dict:
  """Means over runs (each run's layouts and sampling runs averaged first) of test AUC/ACC and
  their drops (the first member's readout scale also alone), a 95% bootstrap over test examples of
  that mean drop, every single sampling run's drop (min, max, share within `tolerance` AUC) and the
  largest range over one run's layouts of its mean drop."""
  runs = sorted({run for run, _ in members})
  run_of = np.array([runs.index(run) for run, _ in members])
  value = lambda k: np.array([float(r[k]) for _, r in members])
  per_run = lambda v: np.stack([v[run_of == i].mean(0) for i in range(len(runs))]).mean(0)
  task = str(arrays[0]["task"])
  scores = [metrics.scores_from_logits(arrays[run]["logits_exact"], task) for run in runs]
  scores += [metrics.scores_from_logits(arrays[run][r["key"]], task) for run, r in members]
  drop = lambda m: per_run(m[:len(runs)][run_of] - m[len(runs):])
  interval = stats.paired_bootstrap(arrays[0]["labels"], scores, drop, task, num_resamples=num_resamples, seed=seed)
  first = members[0][1]
  row = {**{k: first[k] for k in DEVICE_KEY}, "n_runs": len(runs), "n_rows": len(members),
         "n_examples": first["n_examples"], "idle_us": per_run(value("idle_us")),
         "duration_us": per_run(value("duration_us")), "depth_mean": per_run(value("depth_mean")),
         "gates_2q_mean": per_run(value("gates_2q_mean")), "readout_scale": per_run(value("readout_scale")),
         "first_readout_scale": float(first["readout_scale"]),
         "within_tolerance": float(np.mean(np.abs(value("auc_drop")) <= tolerance))}
  for m in ("auc", "acc"):
    row.update({f"test_{m}": per_run(value(f"test_{m}")), f"exact_test_{m}": per_run(value(f"exact_test_{m}")),
                f"{m}_drop": per_run(value(f"{m}_drop")), f"{m}_drop_low": interval[m].low,
                f"{m}_drop_high": interval[m].high, f"{m}_drop_min": value(f"{m}_drop").min(),
                f"{m}_drop_max": value(f"{m}_drop").max(),
                f"{m}_layout_range": _layout_range(members, run_of, value(f"{m}_drop"))})
  return row


def _layout_range(members, run_of: np.ndarray, drops: np.ndarray) -> float:
  """Largest, over runs with several layouts, max minus min of the per-layout mean drop (nan: none)."""
  layouts = np.array([int(r["layout_seed"]) for _, r in members])
  ranges = [np.ptp([drops[(run_of == i) & (layouts == k)].mean() for k in np.unique(layouts[run_of == i])])
            for i in np.unique(run_of) if len(np.unique(layouts[run_of == i])) > 1]
  return float(max(ranges)) if ranges else float("nan")


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


def _schedule(r: dict) -> str:
  return "ALAP" if r["scheduled"] == "True" else "unscheduled"


def _ci(r: dict, m: str) -> str:
  return f"{r[f'{m}_drop']:+.4f} [{r[f'{m}_drop_low']:+.4f}, {r[f'{m}_drop_high']:+.4f}]"


def _range(r: dict, m: str) -> str:
  return "—" if np.isnan(r[f"{m}_layout_range"]) else f"{r[f'{m}_layout_range']:.4f}"


def _device_table_header() -> str:
  return ("| backend | schedule | shots | readout | runs | idle µs | readout scale | test AUC | AUC drop [95% CI] "
          "| test ACC | ACC drop [95% CI] | layout range AUC / ACC |\n|---|---|---|---|---|---|---|---|---|---|---|---|")


def _device_table_row(r: dict) -> str:
  return (f"| {r['backend']} | {_schedule(r)} | {r['shots']} | {'recalibrated' if r['recalibrated'] == 'True' else 'raw'} "
          f"| {r['n_runs']} | {r['idle_us']:.0f} | {r['readout_scale']:.3f} | {r['test_auc']:.4f} | {_ci(r, 'auc')} "
          f"| {r['test_acc']:.4f} | {_ci(r, 'acc')} | {_range(r, 'auc')} / {_range(r, 'acc')} |")


def _device_markdown(device: list[dict], tolerance: float) -> list[str]:
  """The device tables: device noise per backend and schedule, raw and recalibrated (exact
  distribution and the most shots), then single sampling runs, then the claims they support."""
  most = max(device, key=lambda r: int(r["shots"]))["shots"]
  first = device[0]
  lines = ["## Simulated devices", "",
           f"{first['n_examples']} test images; exact circuits on the same images: AUC {first['exact_test_auc']:.4f}, "
           f"ACC {first['exact_test_acc']:.4f} (mean over runs). Drop = exact minus noisy (positive = worse): mean "
           "over runs of each run's mean over layouts and sampling runs, with a 95% bootstrap over test examples. "
           "Shots 0: the exact outcome distribution of the device model. Recalibrated: each readout mapped back "
           "through the line fitted on the validation images' readouts against their exact ones (no labels). "
           "Layout range: max minus min over one run's transpiler seeds of the mean drop.", ""]
  for heading, shots in (("Device noise by backend and schedule", most), ("Without shot noise", "0")):
    lines += [f"## {heading}", "", _device_table_header()]
    lines += [_device_table_row(r) for r in device if r["noise"] == "device" and r["shots"] == shots] + [""]
  lines += ["## Single sampling runs", "",
            "Each sampling run is what one device run gives. Raw readout.", "",
            "| backend | schedule | noise | shots | runs × sampling runs | AUC drop [95% CI] | single runs' AUC drop "
            f"| within {tolerance:g} AUC | ACC drop [95% CI] | single runs' ACC drop |",
            "|---|---|---|---|---|---|---|---|---|---|"]
  lines += [f"| {r['backend']} | {_schedule(r)} | {r['noise']} | {r['shots']} | {r['n_rows']} | {_ci(r, 'auc')} "
            f"| {r['auc_drop_min']:+.4f} to {r['auc_drop_max']:+.4f} | {r['within_tolerance']:.0%} | {_ci(r, 'acc')} "
            f"| {r['acc_drop_min']:+.4f} to {r['acc_drop_max']:+.4f} |"
            for r in device if r["shots"] != "0" and r["recalibrated"] == "False"]
  return lines + ["", "## Claims", "", " ".join(device_claims(device, tolerance))]


def _verdict(r: dict, m: str) -> str:
  if r[f"{m}_drop_low"] > 0:
    return "worse than exact"
  return "better than exact" if r[f"{m}_drop_high"] < 0 else "not distinguishable from 0"


def device_claims(device: list[dict], tolerance: float = 0.01) -> list[str]:
  """Sentences the device rows support, per backend (scheduled, the most shots): the drops with
  their intervals and what those say, the readout scale scheduled and not, recalibrated ACC, the
  spread over layouts and over single sampling runs."""
  most = max(device, key=lambda r: int(r["shots"]))["shots"]
  find = {(r["backend"], r["scheduled"], r["noise"], r["shots"], r["recalibrated"]): r for r in device}
  sentences = []
  for name in dict.fromkeys(r["backend"] for r in device):
    raw, recal = (find.get((name, "True", "device", most, c)) for c in ("False", "True"))
    if raw is None:
      continue
    exact = [find.get((name, scheduled, "device", "0", "False")) for scheduled in ("True", "False")]
    scale = (f"; on the first run and layout, without shot noise, {exact[0]['first_readout_scale']:.2f} scheduled "
             f"against {exact[1]['first_readout_scale']:.2f} unscheduled" if all(exact) else "")
    sentences.append(
        f"On {name}, scheduled ({raw['idle_us']:.0f} µs of idle time per circuit summed over its qubits; readout "
        f"scale {raw['readout_scale']:.2f} over the runs{scale}), {most} shots, the AUC drop is {_ci(raw, 'auc')} "
        f"({_verdict(raw, 'auc')}) and the ACC drop {_ci(raw, 'acc')} ({_verdict(raw, 'acc')}).")
    if recal:
      sentences.append(f"Recalibrated without labels, the ACC drop is {_ci(recal, 'acc')} ({_verdict(recal, 'acc')}) "
                       f"and the AUC drop {_ci(recal, 'auc')}.")
    if not np.isnan(raw["auc_layout_range"]):
      sentences.append(f"Across layouts one run's mean AUC drop varies by {raw['auc_layout_range']:.4f}, its ACC "
                       f"drop by {raw['acc_layout_range']:.4f}.")
    for shots in sorted({r["shots"] for r in device if r["shots"] != "0"}, key=int):
      single = find.get((name, "True", "device", shots, "False"))
      sentences.append(f"Single sampling runs at {shots} shots ({single['n_rows']}) drop AUC by "
                       f"{single['auc_drop_min']:+.4f} to {single['auc_drop_max']:+.4f}, "
                       f"{single['within_tolerance']:.0%} of them within {tolerance:g}.")
  return sentences


def markdown(title: str, runs: list[str], sweep: list[dict], device: list[dict], tolerance: float = 0.01) -> str:
  """The report: the sweep with its tolerances, then the simulated device (each part when present)."""
  lines = [f"# {title}", "", "Runs: " + ", ".join(f"`{r}`" for r in runs) + ".", ""]
  if sweep:
    lines += _sweep_markdown(sweep, tolerance) + [""]
  if device:
    lines += _device_markdown(device, tolerance) + [""]
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
