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


def test_exact_distribution_is_the_engine_and_aer_sampling_of_the_device_model():
  needs_hardware_extra()
  spec = QCNNSpec(4, "so4", readout="expvals", n_readout=2)
  device = device_eval.backend(SMALL_BACKEND)
  programs, engine = _circuits(spec)  # the same inputs as above: compiled once
  routed, _ = device_eval.transpile(programs, device, seed=0)
  exact = device_eval.distribution(routed, device, "ideal")
  np.testing.assert_allclose(device_eval.raw_readout(exact, spec), engine, atol=1e-5)
  scheduled = device_eval.schedule(routed, device)
  noisy = device_eval.distribution(scheduled, device, "device")
  sampled = device_eval.outcome_probabilities(device_eval.sample(scheduled, device, "device", 40_000, seed=0), 2)
  np.testing.assert_allclose(noisy, sampled, atol=0.012)  # 40k shots: sigma <= 0.0025
  frequencies = device_eval.draw(noisy, 1000, seed=3)
  assert np.allclose(frequencies * 1000, np.round(frequencies * 1000)) and np.abs(frequencies - noisy).max() < 0.08
  np.testing.assert_array_equal(device_eval.draw(noisy, 0, seed=3), noisy)
  # idle qubits relax: the scheduled readout shrinks more than the unscheduled one
  scale = {name: device_eval.fit_recalibration(engine, device_eval.raw_readout(
      device_eval.distribution(c, device, "device"), spec))[0].mean() for name, c in (("alap", scheduled),
                                                                                      ("none", routed))}
  assert scale["alap"] < scale["none"] < 0.97


def test_schedule_pads_idle_time_on_used_qubits_only():
  needs_hardware_extra()
  from qiskit import QuantumCircuit  # pylint: disable=g-import-not-at-top
  device = device_eval.backend(SMALL_BACKEND)
  circuit = QuantumCircuit(5, 2)
  circuit.x(0)
  for _ in range(4):
    circuit.cx(1, 2)
  circuit.measure([0, 1], [0, 1])
  (scheduled,) = device_eval.schedule([circuit], device)
  delayed = {scheduled.find_bit(i.qubits[0]).index for i in scheduled.data if i.operation.name == "delay"}
  assert delayed <= {0, 1, 2} and 0 in delayed  # qubit 0 waits for the CNOTs; 3 and 4 stay empty
  found = device_eval.timing([scheduled], device)
  gates = {0: device.target["x"][(0,)].duration, 1: 4 * device.target["cx"][(1, 2)].duration}
  busy = {0: gates[0] + device.target["measure"][(0,)].duration, 1: gates[1] + device.target["measure"][(1,)].duration,
          2: gates[1]}  # qubit 2 is not measured: it idles while the others are
  longest = max(busy.values())
  assert found["duration_us"] == pytest.approx(1e6 * longest, rel=1e-3)
  assert found["idle_us"] == pytest.approx(1e6 * sum(longest - b for b in busy.values()), rel=1e-3)
  # exposure: from the first gate to the measurement; qubit 2, unmeasured, until its last CNOT ends
  assert device_eval.exposure(scheduled, device) == pytest.approx({0: gates[0], 1: gates[1], 2: gates[1]}, rel=1e-6)


def _one_qubit(body, qubit=0):
  """A 5-qubit circuit running `body(circuit, qubit)` and measuring `qubit` into c[0]."""
  from qiskit import QuantumCircuit  # pylint: disable=g-import-not-at-top
  circuit = QuantumCircuit(5, 1)
  body(circuit, qubit)
  circuit.measure(qubit, 0)
  return circuit


def _z(circuits, device, source):
  return device_eval.distribution(circuits, device, source) @ np.array([1.0, -1.0])


def test_readout_error_size_is_the_calibration():
  """<Z> of |0> and |1> under readout error alone: the fitted readout scale is 1 - 2 e with e the
  calibration's readout error of the qubit (Aer reads it symmetric)."""
  needs_hardware_extra()
  device = device_eval.backend(SMALL_BACKEND)
  for qubit in (0, 3):
    circuits = [_one_qubit(lambda c, q: None, qubit), _one_qubit(lambda c, q: c.x(q), qubit)]
    scale, offset = device_eval.fit_recalibration(np.array([[1.0], [-1.0]]), _z(circuits, device, "readout")[:, None])
    assert scale[0] == pytest.approx(1 - 2 * device.target["measure"][(qubit,)].error, abs=1e-9)
    assert abs(offset[0]) < 1e-9
    np.testing.assert_allclose(device_eval.recalibrate(_z(circuits, device, "readout")[:, None], scale, offset),
                               [[1.0], [-1.0]], atol=1e-9)


def test_gate_error_size_is_the_calibration():
  """k gates under their depolarizing error alone: <Z> shrinks by 1 - 2 e per one-qubit gate and by
  1 - 4 e / 3 per CNOT (depolarizing with the calibration's average gate error e)."""
  needs_hardware_extra()
  device = device_eval.backend(SMALL_BACKEND)
  x_error, cx_error = device.target["x"][(0,)].error, device.target["cx"][(0, 1)].error

  def xs(c, q):
    for _ in range(40):
      c.x(q)

  def cxs(c, q):
    for _ in range(10):
      c.cx(q, 1)

  assert _z([_one_qubit(xs)], device, "gates_1q")[0] == pytest.approx((1 - 2 * x_error)**40, rel=1e-6)
  assert _z([_one_qubit(cxs)], device, "gates_2q")[0] == pytest.approx((1 - 4 * cx_error / 3)**10, rel=1e-6)
  assert _z([_one_qubit(cxs)], device, "gates_1q")[0] == pytest.approx(1.0)


def test_idle_relaxation_size_is_t1_and_t2():
  """A delay of t under T1/T2 alone: |1> decays to P(1) = exp(-t / T1); an equator state keeps a
  coherence exp(-t / T2), read as <Z> after a second SX."""
  needs_hardware_extra()
  device = device_eval.backend(SMALL_BACKEND)
  t1, t2 = device.target.qubit_properties[0].t1, device.target.qubit_properties[0].t2
  sx = device.target["sx"][(0,)].duration

  def wait(first, t):
    def body(c, q):
      first(c, q)
      c.delay(round(t / device.dt), q, unit="dt")
      c.sx(q) if first.__name__ == "_sx" else None
    return body

  def _x(c, q):
    c.x(q)

  def _sx(c, q):
    c.sx(q)

  t = t1 / 2
  p1 = device_eval.distribution([_one_qubit(wait(_x, t))], device, "relaxation")[0, 1]
  assert p1 == pytest.approx(np.exp(-t / t1), rel=2e-3)  # relaxation during the X gate: 4e-4 of T1
  t = t2 / 2
  z = _z([_one_qubit(wait(_sx, t))], device, "relaxation")[0]
  assert -z == pytest.approx(np.exp(-t / t2), rel=2e-3 + 2 * sx / t2)


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
  # Recalibration's target is what the model was trained on: exact, or its training noise's readout.
  np.testing.assert_array_equal(found.trained_readout, device_eval.model_readout(found.exported_readout, found.spec))
  trainer.config.model_options.noise = "depolarizing:0.2"
  noisy = device_eval.examples(trainer, state, "test", limit=20)
  np.testing.assert_array_equal(noisy.engine_readout, found.engine_readout)
  assert np.abs(noisy.trained_readout).mean() < 0.8 * np.abs(found.engine_readout).mean()


def test_device_eval_command(quick_run, tmp_path):
  needs_hardware_extra()
  workdir, summary = quick_run
  out = tmp_path / "device"
  result = subprocess.run([sys.executable, "-m", "experiments.device_eval", f"--workdir={workdir}",
                           f"--backends={SMALL_BACKEND}", "--layout_seeds=0", "--shots=0,300", "--sampling_seeds=2",
                           "--noise=device", "--val_limit=20", f"--out={out}"], capture_output=True, text=True, timeout=900)
  assert result.returncode == 0, result.stderr[-2000:]
  with open(out / "device_eval.csv", newline="") as f:
    rows = list(csv.DictReader(f))
  # layout 0 scheduled and not; shots 0 once, 300 twice; raw and recalibrated
  assert len(rows) == 2 * 3 * 2 and {r["n_examples"] for r in rows} == {"156"}
  assert [(r["layout_seed"], r["scheduled"]) for r in rows[::6]] == [("0", "True"), ("0", "False")]
  assert float(rows[0]["exact_test_auc"]) == pytest.approx(summary["test_auc"], abs=1e-6)  # the run's own metrics
  assert float(rows[0]["exact_test_acc"]) == pytest.approx(summary["test_acc"], abs=1e-6)
  scheduled = [r for r in rows if r["scheduled"] == "True" and r["shots"] == "0"]
  unscheduled = [r for r in rows if r["scheduled"] == "False" and r["shots"] == "0"]
  assert all(float(r["idle_us"]) > 0 for r in scheduled) and float(unscheduled[0]["idle_us"]) == 0.0
  assert float(scheduled[0]["readout_scale"]) < float(unscheduled[0]["readout_scale"]) < 0.99
  with np.load(out / "device_eval_readouts.npz") as f:
    assert {r["key"] for r in rows} <= set(f.files) and f[rows[0]["key"]].shape == f["logits_exact"].shape
    raw, recalibrated = (f[r["key"]] for r in scheduled[:2])
    # the in-path head: logit = a <Z> + b; a recalibrated readout restores the exact logits' spread
    assert np.std(raw) < np.std(recalibrated) and abs(np.std(recalibrated) / np.std(f["logits_exact"]) - 1) < 0.1
  info = json.loads((out / "device_eval.json").read_text())
  assert info["max_abs_exported_vs_engine_readout"] < 2e-5 and list(info["calibrations"]) == [SMALL_BACKEND]
  assert info["n_calibration_examples"] == 20 and (out / "device_eval.png").stat().st_size > 1000
  bad = subprocess.run([sys.executable, "-m", "experiments.device_eval", f"--workdir={workdir}",
                        "--backends=fake_nowhere", f"--out={out}"], capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and bad.stderr.strip().splitlines()[-1].startswith("error: no fake backend")
  assert "Traceback" not in bad.stderr
  bad = subprocess.run([sys.executable, "-m", "experiments.device_eval", f"--workdir={workdir}", "--shots=-1"],
                       capture_output=True, text=True, timeout=300)
  assert bad.returncode == 2 and "--shots needs counts >= 0" in bad.stderr and "Traceback" not in bad.stderr


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


def test_noise_model_command_writes_the_runs_model(quick_run, tmp_path):
  needs_hardware_extra()
  from qcnn_jax.models.quantum import noise_model  # pylint: disable=g-import-not-at-top
  workdir, _ = quick_run
  out = tmp_path / "noise.json"
  result = subprocess.run([sys.executable, "-m", "experiments.device_eval", f"--workdir={workdir}",
                           f"--backends={SMALL_BACKEND}", "--layout_seeds=1", f"--noise_model_out={out}"],
                          capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-2000:]
  record = json.loads(out.read_text())
  assert record["calibration"]["backend"] == SMALL_BACKEND and record["calibration"]["layout_seed"] == 1
  model = noise_model.parse(str(out))
  assert model.n_qubits == 4 and max(model.depolarizing) > 0 and min(model.amplitude_damping) > 0
  assert not (out.parent / "device_eval.csv").exists()  # only the model was written
