"""Evaluation of a trained run under shots, noise, readout error and image corruptions
(experiments.robustness, experiments.robustness_compare)."""

import csv
import subprocess
import sys

import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.evaluation import metrics
from qcnn_jax.studies import robustness, robustness_report
from qcnn_jax.training import train
from qcnn_jax.models.quantum import QCNNSpec

pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype")


def test_readout_flip_matches_a_kronecker_reference():
  eps, rng = 0.07, np.random.default_rng(0)
  probs = rng.dirichlet(np.ones(8), size=5)  # 3 readout qubits, big-endian
  flip = np.array([[1 - eps, eps], [eps, 1 - eps]])
  expected = probs @ np.kron(np.kron(flip, flip), flip).T
  got = robustness.flip_readout(jnp.asarray(probs), QCNNSpec(8, readout="probs", n_readout=3), eps)
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-6)  # float32
  z = jnp.asarray(rng.uniform(-1, 1, (5, 2)))
  np.testing.assert_allclose(np.asarray(robustness.flip_readout(z, QCNNSpec(8, readout="expvals", n_readout=2), eps)),
                             (1 - 2 * eps) * np.asarray(z))


def fake_predictions(rng, labels, corruptions=("pixelate", "contrast_down")) -> robustness.Predictions:
  """A run's robustness predictions: exact, then 2 severities of each corruption (noisier logits)."""
  settings = [robustness.Setting("exact")] + [robustness.Setting("corruption", v, 0, c) for c in corruptions
                                              for v in (1, 5)]
  logits = np.stack([(2 * labels - 1) + rng.normal(0, 1 + i, labels.shape) for i in range(len(settings))])
  return robustness.Predictions(settings, labels, np.arange(len(labels)), logits.astype(np.float32), metrics.BINARY)


def test_pooled_runs_average_each_runs_mean_drop_and_pair_runs_by_seed():
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, (60, 1))
  runs = {"a": [fake_predictions(rng, labels) for _ in range(3)], "b": [fake_predictions(rng, labels) for _ in range(3)]}
  rows = robustness_report.run_rows(runs)
  drops = robustness_report.run_drops(rows)
  for name in runs:  # each run's mean drop, computed from its scores alone
    for p, drop in zip(runs[name], drops[name]["auc"]):
      aucs = [metrics.auc(labels, metrics.scores_from_logits(x, p.task), p.task) for x in p.logits]
      assert drop == pytest.approx(aucs[0] - np.mean(aucs[1:]))
  summary = robustness_report.summary_rows(robustness_report.detail_rows(rows), drops)
  assert [r["n_runs"] for r in summary] == [3, 3]
  assert summary[0]["auc_drop"] == pytest.approx(np.mean(drops["a"]["auc"]))
  assert summary[0]["auc_drop_std"] == pytest.approx(np.std(drops["a"]["auc"], ddof=1))
  iv = robustness_report.compare(runs, drops, "a", "b", num_resamples=200)
  expected = np.mean(drops["a"]["auc"]) - np.mean(drops["b"]["auc"])
  assert iv["auc"].estimate == pytest.approx(expected) and iv["seed_auc"].estimate == pytest.approx(expected)
  same_runs = {"a": runs["a"], "b": runs["a"]}
  same = robustness_report.compare(same_runs, robustness_report.run_drops(robustness_report.run_rows(same_runs)),
                                   "a", "b", num_resamples=200)
  assert (same["auc"].low, same["auc"].high, same["seed_auc"].low, same["seed_auc"].high) == (0, 0, 0, 0)
  other = {"a": runs["a"][:2] + [fake_predictions(rng, labels, ("pixelate",))]}
  with pytest.raises(ValueError, match="different corruptions"):
    robustness_report.detail_rows(robustness_report.run_rows(other))


def test_settings_of_a_trained_run(quick_run):
  workdir, summary = quick_run
  trainer, state, _, _ = train.load_run(str(workdir))
  evaluate = lambda setting: robustness.evaluate(trainer, state, setting)[0]
  exact = evaluate(robustness.Setting("exact"))
  assert exact["auc"] == pytest.approx(summary["test_auc"], abs=1e-6)  # the run's own test metrics
  assert exact["acc"] == pytest.approx(summary["test_acc"], abs=1e-6)
  no_flip = evaluate(robustness.Setting("readout_error", 0.0))
  assert no_flip["auc"] == pytest.approx(exact["auc"], abs=1e-6)
  silent = evaluate(robustness.Setting("depolarizing", 0.0))
  assert silent["auc"] == pytest.approx(exact["auc"], abs=2e-3)
  first, second = (evaluate(robustness.Setting("shots", 10, seed)) for seed in (0, 1))
  again = evaluate(robustness.Setting("shots", 10, 0))
  assert first["auc"] == again["auc"] and first["loss"] != second["loss"]  # seeded, and fresh samples per seed


def _logits(trainer, state, setting):
  return robustness.evaluate(trainer, state, setting)[1]["logits"][:, 0]


def test_noise_reaches_the_logits_of_the_in_path_head(quick_run):
  """README command 1's head puts its circuit in the prediction path, logit = a <Z> + b: a readout
  flip with probability eps scales <Z> by 1 - 2 eps, so every logit moves to (1 - 2 eps) logit +
  2 eps b; depolarizing noise pulls <Z> towards 0 on average; amplitude damping moves it too."""
  workdir, _ = quick_run
  trainer, state, _, _ = train.load_run(str(workdir))
  assert trainer.config.model == "resnet50_qcnn" and trainer.dataset.task == "binary-class"
  head = state.params["head"]
  scale, bias = float(head["logit_scale"][0]), float(head["logit_bias"][0])
  exact = _logits(trainer, state, robustness.Setting("exact"))
  readout = (exact - bias) / scale
  assert np.ptp(readout) > 1e-3  # the circuit's output varies over the test images
  flipped = _logits(trainer, state, robustness.Setting("readout_error", 0.2))
  np.testing.assert_allclose(flipped, 0.6 * exact + 0.4 * bias, atol=1e-4)
  depolarized = (_logits(trainer, state, robustness.Setting("depolarizing", 0.1)) - bias) / scale
  assert np.abs(depolarized).mean() < 0.95 * np.abs(readout).mean()
  damped = (_logits(trainer, state, robustness.Setting("amplitude_damping", 0.1)) - bias) / scale
  assert np.abs(damped - readout).max() > 1e-3 and np.abs(damped - depolarized).max() > 1e-3


def test_robustness_command_writes_csv_and_plot(quick_run):
  workdir, summary = quick_run
  result = subprocess.run([sys.executable, "-m", "experiments.robustness", f"--workdir={workdir}", "--shots=20",
                           "--shot_seeds=2", "--noise_p=0.05", "--readout_eps=0.2"],
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(workdir / "robustness.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [(r["kind"], r["setting"], r["n_seeds"]) for r in rows] == [
      ("exact", "", "1"), ("shots", "20", "2"), ("depolarizing", "0.05", "1"), ("amplitude_damping", "0.05", "1"),
      ("readout_error", "0.2", "1")]
  assert float(rows[0]["test_auc"]) == pytest.approx(summary["test_auc"], abs=1e-6)
  assert float(rows[1]["test_auc_std"]) >= 0 and (workdir / "plots" / "robustness.png").stat().st_size > 1000


def test_corruption_settings_change_only_the_images(quick_run):
  pytest.importorskip("medmnistc")
  workdir, summary = quick_run
  trainer, state, _, _ = train.load_run(str(workdir))
  untouched, out = robustness.evaluate(trainer, state, robustness.Setting("corruption", None, 0, robustness.RESAMPLED),
                                       corruption_size=None)  # no corruption, no resizing: the clean images
  assert untouched["auc"] == pytest.approx(summary["test_auc"], abs=1e-6)
  faded, faded_out = robustness.evaluate(trainer, state, robustness.Setting("corruption", 5, 0, "contrast_down"))
  assert np.array_equal(faded_out["index"], out["index"])
  assert np.abs(faded_out["logits"] - out["logits"]).max() > 1e-3  # the model saw other images


def test_corruption_command_and_comparison(quick_run, tmp_path):
  pytest.importorskip("medmnistc")
  workdir, summary = quick_run
  result = subprocess.run([sys.executable, "-m", "experiments.robustness", f"--workdir={workdir}", "--nocircuit",
                           "--corruptions=contrast_down,pixelate", "--severities=1,5"],
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(workdir / "robustness.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [(r["kind"], r["setting"]) for r in rows] == [
      ("exact", ""), ("corruption", "resampled"), ("corruption", "pixelate/1"), ("corruption", "pixelate/5"),
      ("corruption", "contrast_down/1"), ("corruption", "contrast_down/5")]
  assert float(rows[0]["test_auc"]) == pytest.approx(summary["test_auc"], abs=1e-6)
  assert float(rows[-1]["auc_drop"]) == pytest.approx(float(rows[0]["test_auc"]) - float(rows[-1]["test_auc"]))
  assert (workdir / "plots" / "corruptions.png").stat().st_size > 1000
  # The same run under two names: every resample scores both identically, so the difference is exactly 0.
  result = subprocess.run([sys.executable, "-m", "experiments.robustness_compare", f"--runs=a={workdir},b={workdir}",
                           "--pairs=a:b", f"--out={tmp_path}/cmp", "--num_resamples=200"],
                          capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:]
  report = (tmp_path / "cmp.md").read_text()
  assert "| a | b | +0.0000 [+0.0000, +0.0000] | +0.0000 [+0.0000, +0.0000] |" in report
  assert "| contrast_down/5 |" in report
