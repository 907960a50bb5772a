"""The noise report over training seeds (qcnn_jax.studies.noise_report) on hand-made run outputs."""

import csv
import subprocess
import sys

import numpy as np
import pytest

from qcnn_jax.studies import device_eval, noise_report, robustness

# (kind, setting, AUC drop of run 0, of run 1); exact AUCs 0.80 and 0.90
SWEEP = [("shots", "10", 0.05, 0.04), ("shots", "100", 0.02, 0.004), ("shots", "1000", 0.005, -0.008),
         ("shots", "10000", 0.001, 0.0), ("depolarizing", "0.001", 0.001, 0.002), ("depolarizing", "0.01", 0.02, 0.0),
         ("depolarizing", "0.1", 0.004, 0.003), ("readout_error", "0.01", 0.03, 0.02)]


def write_run(folder, run: int, logits: dict[str, np.ndarray], labels: np.ndarray):
  folder.mkdir(parents=True)
  exact = (0.8, 0.9)[run]
  rows = [{"kind": "exact", "setting": "", "test_auc": exact, "auc_drop": 0.0, "test_acc": 0.7, "acc_drop": 0.0}]
  rows += [{"kind": k, "setting": v, "test_auc": exact - d[run], "auc_drop": d[run], "test_acc": 0.7, "acc_drop": 0.0}
           for k, v, *d in SWEEP]
  robustness.write_csv(rows, str(folder / "robustness.csv"))
  device_eval.write_csv(_device_rows(run, logits, labels), str(folder / "device_eval.csv"))
  arrays = {"logits_exact": logits["ideal"], **{f"fake_x:{k}:{layout}:{seed}": v + 0.01 * seed
                                                for k, v in logits.items() for layout in (0, 1) for seed in (0, 1)}}
  np.savez(folder / "device_eval_readouts.npz", index=np.arange(len(labels)), labels=labels, task="binary-class",
           **arrays)


def _device_rows(run: int, logits: dict, labels: np.ndarray) -> list[dict]:
  """Scheduled rows of each source, 2 sampling runs, layouts 0 and 1 (run 0) or 0 (run 1); the
  device's AUC drop is 0.1 + 0.05 * layout + 0.01 * sampling seed in run 0, 0.2 + ... in run 1."""
  exact, rows = (0.8, 0.9)[run], []
  for source in logits:
    for layout in ((0, 1) if run == 0 else (0,)):
      for seed in (0, 1):
        drop = 0.0 if source == "ideal" else 0.1 * (run + 1) + 0.05 * layout + 0.01 * seed
        rows.append({"backend": "fake_x", "layout_seed": layout, "scheduled": True, "noise": source, "shots": 100,
                     "sampling_seed": seed, "recalibrated": False, "n_examples": len(labels),
                     "test_auc": exact - drop, "test_acc": 0.6, "exact_test_auc": exact, "exact_test_acc": 0.7,
                     "auc_drop": drop, "acc_drop": 0.1, "readout_scale": 1.0 if source == "ideal" else 0.5,
                     "readout_offset": 0.0, "depth_mean": 10, "depth_max": 10, "gates_2q_mean": 4, "gates_2q_max": 4,
                     "duration_us": 5.0, "idle_us": 20.0, "sample_s": 1.0, "key": f"fake_x:{source}:{layout}:{seed}"})
  return rows


@pytest.fixture
def runs(tmp_path):
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 2, (200, 1))
  separating = (2.0 * labels - 1.0) + 0.3 * rng.normal(size=(200, 1))  # AUC close to 1
  folders = []
  for run in range(2):
    noise = rng.normal(size=(200, 1))  # AUC close to 0.5
    write_run(tmp_path / f"seed{run}", run, {"ideal": separating, "device": noise}, labels)
    folders.append(str(tmp_path / f"seed{run}"))
  return folders


def test_sweep_rows_and_tolerances(runs):
  rows = noise_report.sweep_rows(runs)
  assert [(r["kind"], r["setting"]) for r in rows] == [("exact", "")] + [(k, v) for k, v, *_ in SWEEP]
  shots_100 = rows[2]
  assert shots_100["auc_drop"] == pytest.approx(0.012) and shots_100["auc_drop_std"] == pytest.approx(
      np.std([0.02, 0.004], ddof=1)) and shots_100["auc_drop_worst"] == pytest.approx(0.02)
  assert rows[3]["auc_drop_worst"] == pytest.approx(0.008)  # the largest deviation, either sign
  # shots: 1000 and more stay within 0.01, 100 does not; p: 0.001 does, 0.01 does not (0.1 would,
  # but a milder p fails first); readout error: none
  assert noise_report.tolerances(rows, 0.01) == {"shots": ">= 1000", "depolarizing": "<= 0.001",
                                                 "readout_error": "none tested"}
  assert noise_report.tolerances(rows, 0.06)["shots"] == ">= 10"


def test_device_rows_pool_layouts_and_sampling_runs_per_run_first(runs):
  (ideal, device) = noise_report.device_rows(runs, num_resamples=500)
  assert ideal["noise"] == "ideal" and ideal["n_rows"] == 6 and device["n_runs"] == 2
  assert abs(ideal["auc_drop_low"]) < 1e-3 and abs(ideal["auc_drop_high"]) < 1e-3  # logits = exact + 0.01 * seed
  # run 0: mean of 0.1, 0.11, 0.15, 0.16 = 0.13; run 1: 0.205; the runs averaged, not the rows
  assert device["auc_drop"] == pytest.approx((0.13 + 0.205) / 2)
  assert (device["auc_drop_min"], device["auc_drop_max"]) == (pytest.approx(0.1), pytest.approx(0.21))
  assert device["auc_layout_range"] == pytest.approx(0.05) and device["acc_layout_range"] == pytest.approx(0.0)
  assert device["within_tolerance"] == 0.0 and ideal["within_tolerance"] == 1.0
  assert (ideal["readout_scale"], device["readout_scale"]) == (pytest.approx(1.0), pytest.approx(0.5))
  assert 0.3 < device["auc_drop_low"] < device["auc_drop_high"] < 0.7  # from the logits: AUC ~1 vs ~0.5
  claims = " ".join(noise_report.device_claims([ideal, device]))
  assert "the AUC drop is" in claims and "(worse than exact)" in claims and "varies by 0.0500" in claims
  assert "Single sampling runs at 100 shots (6)" in claims


def test_noise_report_command(runs, tmp_path):
  out = tmp_path / "report" / "noise"
  result = subprocess.run([sys.executable, "-m", "experiments.noise_report", f"--runs={','.join(runs)}",
                           f"--out={out}", "--num_resamples=200"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  text = (tmp_path / "report" / "noise.md").read_text()
  assert "| shots | >= 1000 |" in text and "## Device noise by backend and schedule" in text
  assert "| fake_x | ALAP | device | 100 | 6 |" in text and "## Claims\n\nOn fake_x, scheduled (20 µs" in text
  with open(f"{out}_device.csv", newline="") as f:
    assert [r["noise"] for r in csv.DictReader(f)] == ["ideal", "device"]
  missing = subprocess.run([sys.executable, "-m", "experiments.noise_report", f"--runs={tmp_path / 'nowhere'}",
                            f"--out={out}"], capture_output=True, text=True, timeout=300)
  assert missing.returncode == 1 and missing.stderr.strip().splitlines()[-1].startswith("error:")
  assert "experiments.robustness" in missing.stderr
