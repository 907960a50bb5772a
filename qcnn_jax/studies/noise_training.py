"""Does training under a device's noise change what a model scores on that device?

Two sets of runs of one model, paired by training seed: trained with exact circuits, and trained
under an engine noise model derived from a device calibration (`model_options.noise`, a
`noise_model.CalibratedNoise` JSON). Both are evaluated by `experiments.device_eval` on the same
simulated devices, layouts, shot counts and sampling seeds (`device_eval.csv`,
`device_eval_readouts.npz`). Per setting (backend, layout, schedule, noise source, shots, raw or
recalibrated readout) the difference noise-trained minus exact-trained in device test AUC and ACC
gets a two-level interval (`stats.two_level_bootstrap`: training seeds as the outer units, each
seed's sampling runs averaged inside it, and the test examples resampled), so a sentence about it
counts the seeds, the shots and the test set's own noise together.
"""

import csv
import os

import numpy as np

from qcnn_jax.evaluation import metrics, stats
from qcnn_jax.studies import frozen_heads

SETTING = ("backend", "layout_seed", "scheduled", "noise", "shots", "recalibrated")
CSV_COLUMNS = SETTING + ("n_seeds", "n_sampling_runs", "n_examples") + tuple(
    f"{k}_{m}" for m in ("auc", "acc") for k in ("noisy", "exact", "delta", "low", "high", "p"))
WORDS = {"ahead": "higher", "behind": "lower"}  # `frozen_heads.verdict` of noise-trained minus exact-trained


def _runs(dirs: list[str]) -> tuple[list[dict[tuple, list[str]]], list]:
  """Per run: setting -> its rows' logit keys in sampling-seed order; and the runs' readout arrays."""
  settings, arrays = [], []
  for d in dirs:
    with open(os.path.join(d, "device_eval.csv"), encoding="utf-8") as f:
      rows = sorted(csv.DictReader(f), key=lambda r: int(r["sampling_seed"]))
    found: dict[tuple, list[str]] = {}
    for r in rows:
      found.setdefault(tuple(r[k] for k in SETTING), []).append(r["key"])
    settings.append(found)
    arrays.append(np.load(os.path.join(d, "device_eval_readouts.npz")))
  return settings, arrays


def comparison_rows(noisy_dirs: list[str], exact_dirs: list[str], num_resamples: int = 10_000,
                    seed: int = 0) -> list[dict]:
  """One row per setting evaluated for every run of both sets (order of the first noisy run's CSV):
  mean device AUC/ACC of each set and the paired difference noisy − exact with its two-level
  interval (95%, t with Satterthwaite df) and p-value."""
  if len(noisy_dirs) != len(exact_dirs) or len(noisy_dirs) < 2:
    raise ValueError("need the same number (at least 2) of noise-trained and exact-trained runs, paired by seed")
  (noisy, noisy_arrays), (exact, exact_arrays) = _runs(noisy_dirs), _runs(exact_dirs)
  every = noisy_arrays + exact_arrays
  if any(not np.array_equal(a["index"], every[0]["index"]) for a in every):
    raise ValueError("every run must be evaluated on the same test examples (same --limit)")
  labels, task = every[0]["labels"], str(every[0]["task"])
  scores = lambda arrays, keys: [metrics.scores_from_logits(arrays[k], task) for k in keys]
  out = []
  for setting in [s for s in noisy[0] if all(s in run for run in noisy + exact)]:
    a = [scores(arr, run[setting]) for arr, run in zip(noisy_arrays, noisy)]
    b = [scores(arr, run[setting][: len(mine)]) for arr, run, mine in zip(exact_arrays, exact, a)]
    row = {**dict(zip(SETTING, setting)), "n_seeds": len(a), "n_sampling_runs": len(a[0]), "n_examples": len(labels)}
    for m in ("auc", "acc"):
      iv = stats.two_level_bootstrap(labels, a, b, task, metric=m, num_resamples=num_resamples, seed=seed)
      score = metrics.auc if m == "auc" else metrics.acc
      mean = lambda runs: float(np.mean([np.mean([score(labels, s, task) for s in g]) for g in runs]))
      row.update({f"noisy_{m}": mean(a), f"exact_{m}": mean(b), f"delta_{m}": iv.estimate, f"low_{m}": iv.low,
                  f"high_{m}": iv.high, f"p_{m}": iv.p_value})
    out.append(row)
  return out


def _words(row: dict, m: str) -> str:
  """"AUC -0.0339 [-0.1791, +0.1113] (undecided)": the difference, its interval, `verdict`'s words."""
  word = frozen_heads.verdict(row[f"low_{m}"], row[f"high_{m}"])
  return (f"{m.upper()} {row[f'delta_{m}']:+.4f} [{row[f'low_{m}']:+.4f}, {row[f'high_{m}']:+.4f}] "
          f"({WORDS.get(word, word.split(' (')[0])})")


def in_short(rows: list[dict]) -> list[str]:
  """One sentence per backend at its largest shot count: AUC (a recalibration of one readout keeps
  its ranking), ACC raw and recalibrated."""
  sentences = []
  for backend in dict.fromkeys(r["backend"] for r in rows):
    mine = [r for r in rows if r["backend"] == backend]
    shots = max(int(r["shots"]) for r in mine)
    found = {r["recalibrated"]: r for r in mine if int(r["shots"]) == shots}
    first = next(iter(found.values()))
    accs = [f"{_words(found[flag], 'acc')} {name}" for flag, name in (("False", "raw"), ("True", "recalibrated"))
            if flag in found]
    sentences.append(f"On {backend} at {shots:,} shots, noise-trained minus exact-trained ({first['n_seeds']} "
                     f"seeds): {_words(first, 'auc')}; {', '.join(accs)}.")
  return sentences


def markdown(title: str, rows: list[dict], noisy_dirs: list[str], exact_dirs: list[str], noise_file: str) -> str:
  """The report: runs, the sentences, and one table row per setting."""
  lines = [f"# {title}", "", f"Noise-trained runs: {', '.join(f'`{d}`' for d in noisy_dirs)} (trained under "
           f"`{noise_file}`); exact-trained runs: {', '.join(f'`{d}`' for d in exact_dirs)}; paired by seed. "
           "Differences are noise-trained minus exact-trained device test metrics, with 95% two-level intervals "
           "(training seeds and test examples resampled together; each seed's sampling runs averaged).", "",
           "## In short", "", " ".join(in_short(rows)), "", "## Device metrics by setting", "",
           "| backend | schedule | shots | readout | sampling runs | AUC noise-trained | AUC exact-trained | ΔAUC [95% CI] "
           "| ACC noise-trained | ACC exact-trained | ΔACC [95% CI] |", "|---|---|---|---|---|---|---|---|---|---|---|"]
  for r in rows:
    cells = [f"{r[f'noisy_{m}']:.4f} | {r[f'exact_{m}']:.4f} | {r[f'delta_{m}']:+.4f} [{r[f'low_{m}']:+.4f}, "
             f"{r[f'high_{m}']:+.4f}]" for m in ("auc", "acc")]
    lines.append(f"| {r['backend']} | {'ALAP' if r['scheduled'] == 'True' else 'unscheduled'} | {r['shots']} | "
                 f"{'recalibrated' if r['recalibrated'] == 'True' else 'raw'} | {r['n_sampling_runs']} | "
                 f"{cells[0]} | {cells[1]} |")
  return "\n".join(lines) + "\n"


def write(out_prefix: str, title: str, rows: list[dict], noisy_dirs: list[str], exact_dirs: list[str],
          noise_file: str) -> tuple[str, str]:
  """Writes `<out_prefix>.md` and `<out_prefix>.csv`; returns their paths."""
  with open(out_prefix + ".md", "w", encoding="utf-8") as f:
    f.write(markdown(title, rows, noisy_dirs, exact_dirs, noise_file))
  with open(out_prefix + ".csv", "w", encoding="utf-8", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  return out_prefix + ".md", out_prefix + ".csv"
