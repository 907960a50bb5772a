"""The noise-training comparison: paired device metrics of noise-trained against exact-trained runs."""

import csv

import numpy as np
import pytest

from qcnn_jax.evaluation import metrics
from qcnn_jax.studies import noise_training

TASK = metrics.BINARY


def _device_outputs(folder, labels, logits_by_seed, index=None):
  """A device_eval output folder: one scheduled fake_x setting at 100 shots, raw readout, one row and
  logit matrix per sampling seed."""
  folder.mkdir(parents=True)
  keys = [f"fake_x:0:True:device:100:{s}:False" for s in range(len(logits_by_seed))]
  with open(folder / "device_eval.csv", "w", newline="", encoding="utf-8") as f:
    writer = csv.DictWriter(f, ["backend", "layout_seed", "scheduled", "noise", "shots", "recalibrated",
                                "sampling_seed", "key"])
    writer.writeheader()
    for s, key in reversed(list(enumerate(keys))):  # rows out of order: sorted by sampling seed
      writer.writerow({"backend": "fake_x", "layout_seed": 0, "scheduled": True, "noise": "device", "shots": 100,
                       "recalibrated": False, "sampling_seed": s, "key": key})
  np.savez(folder / "device_eval_readouts.npz", index=np.arange(len(labels)) if index is None else index,
           labels=labels, task=TASK, **dict(zip(keys, logits_by_seed)))
  return str(folder)


def test_noise_trained_runs_compared_with_exact_ones_by_seed_and_example(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, (60, 1))
  sign = 2.0 * labels - 1.0
  good = lambda: [sign + rng.normal(0, 0.6, (60, 1)) for _ in range(2)]  # what the noise-trained runs score
  weak = lambda: [sign + rng.normal(0, 3.0, (60, 1)) for _ in range(2)]
  noisy = [_device_outputs(tmp_path / f"noisy{k}", labels, good()) for k in range(3)]
  exact = [_device_outputs(tmp_path / f"exact{k}", labels, weak()) for k in range(3)]
  (row,) = noise_training.comparison_rows(noisy, exact, num_resamples=500)
  assert (row["backend"], row["shots"], row["n_seeds"], row["n_sampling_runs"]) == ("fake_x", "100", 3, 2)
  logits = np.load(tmp_path / "noisy1" / "device_eval_readouts.npz")["fake_x:0:True:device:100:1:False"]
  assert row["noisy_auc"] > row["exact_auc"] and 0 < row["low_auc"] < row["delta_auc"] < row["high_auc"]
  assert row["delta_auc"] == pytest.approx(row["noisy_auc"] - row["exact_auc"])
  assert metrics.auc(labels, metrics.scores_from_logits(logits, TASK), TASK) > row["exact_auc"]
  recalibrated = {**row, "recalibrated": "True"}
  (sentence,) = noise_training.in_short([row, recalibrated])
  assert sentence.startswith("On fake_x at 100 shots, noise-trained minus exact-trained (3 seeds): AUC +")
  assert sentence.count("(higher)") == 3  # AUC, ACC raw, ACC recalibrated
  same = noise_training.comparison_rows(exact, exact, num_resamples=200)[0]
  assert same["delta_auc"] == 0.0 and same["delta_acc"] == 0.0
  other = _device_outputs(tmp_path / "other", labels, weak(), index=np.arange(60) + 1)
  with pytest.raises(ValueError, match="same test examples"):
    noise_training.comparison_rows(noisy[:2], [exact[0], other])
  with pytest.raises(ValueError, match="paired by seed"):
    noise_training.comparison_rows(noisy, exact[:2])
  md, _ = noise_training.write(str(tmp_path / "report"), "T", [row], noisy, exact, "noise.json")
  assert "## In short" in open(md, encoding="utf-8").read()


def test_noise_training_command_writes_the_report_or_one_error(tmp_path):
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel
  rng = np.random.default_rng(1)
  labels = rng.integers(0, 2, (30, 1))
  runs = lambda name: [_device_outputs(tmp_path / f"{name}{k}", labels, [rng.normal(size=(30, 1))]) for k in range(2)]
  noisy, exact = runs("noisy"), runs("exact")
  for folder in noisy:
    (tmp_path / folder / "config.json").write_text(json.dumps({"model_options": {"noise": "n.json"}}))
  command = [sys.executable, "-m", "experiments.noise_training", f"--noisy={','.join(noisy)}",
             f"--exact={','.join(exact)}", f"--out={tmp_path / 'report'}", "--num_resamples=100"]
  result = subprocess.run(command, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  assert "On fake_x at 100 shots" in result.stdout and "(trained under `n.json`)" in (tmp_path / "report.md").read_text()
  result = subprocess.run(command[:4] + [f"--exact={exact[0]}"] + command[5:], capture_output=True, text=True,
                          timeout=300)
  assert result.returncode != 0 and "paired by seed" in result.stderr and "Traceback" not in result.stderr
