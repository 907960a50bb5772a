"""A trained head on a simulated IBM device (qcnn_jax.studies.device_eval): bit order of sampled
readouts, routed circuits against the model's engine, the noise models' sources, and the command
on a trained run. Skipped without the optional hardware extra (qiskit-aer, qiskit-ibm-runtime)."""

import csv
import json
import math
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.models.quantum import QCNNSpec, export, param_shapes, qcnn_apply
from qcnn_jax.studies import device_eval
from qcnn_jax.training import train

pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype complex128:UserWarning")
SMALL_BACKEND = "fake_manila"  # 5 qubits on a line: 4-qubit QCNNs need SWAPs there


def needs_hardware_extra():
  pytest.importorskip("qiskit_aer")
  pytest.importorskip("qiskit_ibm_runtime")


def test_counts_to_readout_bit_order():
  """qiskit writes c[n-1]...c[0]; c[0] is the first readout wire, the most significant outcome bit."""
  counts = [{"00": 60, "01": 30, "10": 10}]  # "01": c[0] = 1, c[1] = 0
  probs = device_eval.outcome_probabilities(counts, 2)
  np.testing.assert_allclose(probs, [[0.6, 0.1, 0.3, 0.0]])
  expvals = device_eval.raw_readout(probs, QCNNSpec(5, "ttn", readout="expvals", n_readout=2))
  np.testing.assert_allclose(expvals, [[0.7 - 0.3, 0.9 - 0.1]])  # <Z> of c[0], then of c[1]
  probs_spec = QCNNSpec(5, "ttn", readout="probs", n_readout=2, n_outcomes=3)
  np.testing.assert_allclose(device_eval.model_readout(device_eval.raw_readout(probs, probs_spec), probs_spec),
                             [[0.6, 0.1, 0.3]])


def _circuits(spec, n=3):
  """(OpenQASM programs, the engine's readouts (n, R)) of n random inputs."""
  keys = jax.random.split(jax.random.PRNGKey(1), 3)
  params = {name: np.asarray(jax.random.uniform(k, shape, jnp.float32, 0, 2 * math.pi))
            for k, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}
  features = np.asarray(jax.random.uniform(keys[2], (n, spec.n_features), jnp.float32, 0, math.pi))
  programs = [export.export(spec, params, f)[0] for f in features]
  return programs, np.asarray(qcnn_apply(spec, params, jnp.asarray(features), execution="auto"))


@pytest.mark.parametrize("spec", [QCNNSpec(4, "so4", readout="expvals", n_readout=2),
                                  QCNNSpec(4, "u15", readout="probs", n_readout=2, n_outcomes=3)],
                         ids=["expvals", "probs"])
def test_routed_circuits_sampled_without_noise_reproduce_the_engine(spec):
  needs_hardware_extra()
  device = device_eval.backend(SMALL_BACKEND)
  programs, engine = _circuits(spec)
  routed, resources = device_eval.transpile(programs, device, seed=0)
  assert resources["gates_2q_max"] >= 1 and resources["depth_max"] >= resources["depth_mean"] > 0
  probs = device_eval.outcome_probabilities(device_eval.sample(routed, device, "ideal", 200_000, seed=0), 2)
  sampled = device_eval.model_readout(device_eval.raw_readout(probs, spec), spec)
  np.testing.assert_allclose(sampled, engine, atol=0.012)  # 200k shots: sigma <= 0.0023


def test_noise_sources_hold_only_their_errors():
  needs_hardware_extra()
  device = device_eval.backend(SMALL_BACKEND)
  assert device_eval.noise_model(device, "ideal") is None

  def errors(source):
    found = device_eval.noise_model(device, source).to_dict()["errors"]
    return {(e["type"], len(e["gate_qubits"][0]) if e["type"] == "qerror" else 0) for e in found}

  assert errors("readout") == {("roerror", 0)}
  assert errors("gates_2q") == {("qerror", 2)} and errors("gates_1q") == {("qerror", 1)}
  assert errors("relaxation") == {("qerror", 1), ("qerror", 2)}
  assert errors("device") == {("roerror", 0), ("qerror", 1), ("qerror", 2)}
  with pytest.raises(train.ConfigError, match="not in device"):
    device_eval.noise_model(device, "cosmic_rays")
  with pytest.raises(train.ConfigError, match="fake_sherbrooke"):
    device_eval.backend("fake_nowhere")


def test_device_noise_shrinks_the_readout():
  needs_hardware_extra()
  spec = QCNNSpec(4, "so4", readout="expvals", n_readout=2)
  device = device_eval.backend(SMALL_BACKEND)
  programs, engine = _circuits(spec, n=6)
  routed, _ = device_eval.transpile(programs, device, seed=0)
  magnitude = {source: np.abs(device_eval.raw_readout(device_eval.outcome_probabilities(
      device_eval.sample(routed, device, source, 50_000, seed=0), 2), spec)).mean()
      for source in ("ideal", "device")}
  assert magnitude["ideal"] == pytest.approx(np.abs(engine).mean(), abs=0.01)
  assert magnitude["device"] < 0.95 * magnitude["ideal"]


def test_readouts_replace_the_circuit_in_the_trained_model(quick_run):
  needs_hardware_extra()
  workdir, _ = quick_run
  trainer, state, _, _ = train.load_run(str(workdir))
  with pytest.raises(train.ConfigError, match=r"split 'tset' not in \['test', 'train', 'val'\]"):
    device_eval.examples(trainer, state, "tset")
  found = device_eval.examples(trainer, state, "test", limit=20)
  np.testing.assert_allclose(device_eval.model_readout(found.exported_readout, found.spec), found.engine_readout,
                             atol=2e-5)
  own = device_eval.logits(trainer, state, found.images)
  np.testing.assert_allclose(device_eval.logits(trainer, state, found.images, found.engine_readout), own, atol=1e-5)
  flat = device_eval.logits(trainer, state, found.images, np.zeros_like(found.engine_readout))
  assert np.ptp(flat) < 1e-5 < np.ptp(own)  # the in-path head: a constant readout, a constant logit


def test_device_eval_command(quick_run, tmp_path):
  needs_hardware_extra()
  workdir, summary = quick_run
  out = tmp_path / "device"
  result = subprocess.run([sys.executable, "-m", "experiments.device_eval", f"--workdir={workdir}",
                           f"--backend={SMALL_BACKEND}", "--shots=100000", "--noise=ideal,readout", f"--out={out}"],
                          capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(out / "device_eval.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["noise"] for r in rows] == ["ideal", "readout"] and rows[0]["n_examples"] == "156"
  assert float(rows[0]["exact_test_auc"]) == pytest.approx(summary["test_auc"], abs=1e-6)  # the run's own metrics
  assert float(rows[0]["exact_test_acc"]) == pytest.approx(summary["test_acc"], abs=1e-6)
  with np.load(out / "device_eval_readouts.npz") as f:
    assert np.abs(f["ideal"] - f["exact"]).max() < 0.02 and np.abs(f["readout"] - f["exact"]).max() > 1e-3
  info = json.loads((out / "device_eval.json").read_text())
  assert info["max_abs_exported_vs_engine_readout"] < 2e-5 and info["backend"] == SMALL_BACKEND
  assert (out / "device_eval.png").stat().st_size > 1000
  bad = subprocess.run([sys.executable, "-m", "experiments.device_eval", f"--workdir={workdir}",
                        "--backend=fake_nowhere", f"--out={out}"], capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: no fake backend")
  assert "Traceback" not in bad.stderr


def test_circuit_resources_command_routes_on_the_backend(tmp_path):
  needs_hardware_extra()
  out = tmp_path / "resources.csv"
  result = subprocess.run([sys.executable, "-m", "experiments.circuit_resources", "--qubits=4", "--units=ttn,so4",
                           f"--backend={SMALL_BACKEND}", f"--out={out}"], capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(out, newline="") as f:
    rows = list(csv.DictReader(f))
  assert [r["unit"] for r in rows] == ["ttn", "so4"] and {r["routed_backend"] for r in rows} == {SMALL_BACKEND}
  for r in rows:
    native = export.resources(QCNNSpec(4, r["unit"], "angle_y"))["native"]
    assert int(r["native_cnot"]) == native["gates_2q"]
    # routing on a line adds SWAPs (3 two-qubit gates each) that the optimiser partly cancels
    assert 0 < int(r["routed_2q"]) <= native["gates_2q"] + 3 * 6 and int(r["routed_depth"]) > native["depth"] // 2
