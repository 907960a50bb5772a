"""The calibrated noise model (qcnn_jax.models.quantum.noise_model): its JSON file, the density engine
under it against PennyLane's default.mixed, each noise source against its closed form from the
calibration numbers, against qiskit-aer on the same device model (skipped without the hardware
extra), and a quantum head trained under it."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pennylane as qml
import pytest

from qcnn_jax.models import heads
from qcnn_jax.models.quantum import Noise, QCNNSpec, density, execution, noise_model, param_shapes, qcnn

pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype complex128:UserWarning")
IDENTITY = ((1.0, 0.0), (0.0, 1.0))


def _model(spec: QCNNSpec) -> noise_model.CalibratedNoise:
  """Every channel on, different per pair and wire; asymmetric readout confusion."""
  pairs = tuple(sorted(set(noise_model.block_pairs(spec))))
  n = spec.n_qubits
  return noise_model.CalibratedNoise(
      pairs, tuple(0.04 + 0.03 * i for i in range(len(pairs))), tuple(0.02 + 0.01 * w for w in range(n)),
      tuple(0.03 - 0.005 * w for w in range(n)),
      tuple(((1 - 0.02 * (w + 1), 0.02 * (w + 1)), (0.05, 0.95)) for w in range(n)))


def _inputs(spec: QCNNSpec, batch: int = 3):
  keys = jax.random.split(jax.random.PRNGKey(3), 3)
  params = {name: jax.random.uniform(k, shape, maxval=2 * math.pi)
            for k, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}
  return params, jax.random.uniform(keys[2], (batch, spec.n_features), maxval=math.pi)


def _calibration(spec: QCNNSpec, t1=1e9, t2=1e9, exposure=1e-6, error=0.0, readout=0.0, gates=3.0) -> dict:
  pairs = sorted(set(noise_model.block_pairs(spec)))
  n = spec.n_qubits
  return {"t1": [t1] * n, "t2": [t2] * n, "exposure": [exposure] * n,
          "readout": [[[1 - readout, readout], [readout, 1 - readout]]] * n, "pairs": [list(p) for p in pairs],
          "pair_error": [error] * len(pairs), "pair_gate_time": [4e-7] * len(pairs), "gates_per_block": gates}


def test_json_round_trip_and_config_strings(tmp_path):
  spec = QCNNSpec(4, "su4", readout="expvals", n_readout=2)
  model = _model(spec)
  path = noise_model.save(model, str(tmp_path / "noise.json"), {"backend": "made_up"})
  assert noise_model.load(path) == model and hash(noise_model.load(path)) == hash(model)
  assert noise_model.parse(path) == model and noise_model.parse(None) is None and noise_model.parse("") is None
  assert noise_model.parse("amplitude_damping:0.02") == Noise("amplitude_damping", 0.02)
  np.testing.assert_array_equal(model.confusion[1], [[0.96, 0.04], [0.05, 0.95]])
  for bad in ("depolarizing", "depolarizing:2", "cosmic:0.1", str(tmp_path / "missing.json")):
    with pytest.raises(ValueError, match="give '<channel>:<p>'"):
      noise_model.parse(bad)
  with pytest.raises(ValueError, match="no pair"):
    model((0, 2))
  with pytest.raises(ValueError, match="summing to 1"):
    dataclasses.replace(model, readout=((IDENTITY[0], (0.5, 0.6)),) + model.readout[1:])


def _default_mixed(spec: QCNNSpec, params, features, model) -> np.ndarray:
  """(B, R) readouts of the same circuit and channels on default.mixed, read through the model's
  confusion with numpy (every wire's probabilities, confused, then the readout wires' marginal)."""
  conv, pool = execution.layer_blocks(spec, "fused", *execution.layer_args(spec, params, "fused"))
  n, wires = spec.n_qubits, qcnn.readout_wires(spec)
  out = []
  for x in features:
    tape = qml.tape.make_qscript(qcnn.qcnn_circuit)(spec, x, conv, pool, model)
    tape = qml.tape.QuantumScript(tape.operations, [qml.probs(wires=range(n))])
    (probs,) = qml.execute([tape], qml.device("default.mixed", wires=n))
    p = np.asarray(probs, np.float64).reshape((2,) * n)
    for w in range(n):
      p = np.moveaxis(np.tensordot(np.moveaxis(p, w, -1), model.confusion[w], axes=1), -1, w)
    p = p.sum(axis=tuple(w for w in range(n) if w not in wires)).reshape(-1)
    bits = (np.arange(2 ** len(wires))[:, None] >> np.arange(len(wires) - 1, -1, -1)) & 1
    out.append(p if spec.readout == "probs" else p @ (1.0 - 2.0 * bits))
  return np.asarray(qcnn.postprocess(spec, jnp.asarray(np.array(out))) if spec.readout == "probs" else np.array(out))


@pytest.mark.parametrize("readout,n_readout", [("expvals", 2), ("probs", 2)])
def test_engine_under_calibrated_noise_equals_default_mixed(readout, n_readout):
  spec = QCNNSpec(4, "su4", readout=readout, n_readout=n_readout)
  model, (params, features) = _model(spec), _inputs(spec)
  engine = jax.jit(lambda p: execution.qcnn_apply(spec, p, features, execution="auto", noise=model))(params)
  np.testing.assert_allclose(np.asarray(engine), _default_mixed(spec, params, features, model), atol=1e-5)
  exact = execution.qcnn_apply(spec, params, features)
  assert float(jnp.max(jnp.abs(engine - exact))) > 1e-2
  sampled = execution.qcnn_apply(spec, params, features, execution="auto", noise=model, shots=200_000,
                                 key=jax.random.PRNGKey(0))  # shots drawn after the readout confusion
  np.testing.assert_allclose(np.asarray(sampled), np.asarray(engine), atol=0.01)  # sigma <= 0.0023
  with pytest.raises(ValueError, match="use execution 'auto' or 'density'"):
    execution.qcnn_apply(spec, params, features, execution="fused", noise=model)


def test_two_qubit_depolarizing_and_readout_sizes_are_the_calibration():
  """A 2-qubit QCNN (a conv and a pool block on the same pair): every <Z> shrinks by (1 - 4e/3)^k
  per block (k native gates of average error e, no relaxation), and a readout error e reads
  <Z> as (1 - 2e) <Z>."""
  spec = QCNNSpec(2, "su4", readout="expval")
  params, features = _inputs(spec, 4)
  exact = np.asarray(execution.qcnn_apply(spec, params, features))
  error, k = 0.012, 2.5
  gates = noise_model.from_calibration(spec, _calibration(spec, error=error, gates=k))
  assert gates.depolarizing[0] == pytest.approx(1 - (1 - 4 * error / 3) ** k)
  np.testing.assert_allclose(np.asarray(execution.qcnn_apply(spec, params, features, noise=gates, execution="auto")),
                             exact * (1 - 4 * error / 3) ** (2 * k), atol=2e-6)
  read = noise_model.from_calibration(spec, _calibration(spec, readout=0.03))
  np.testing.assert_allclose(np.asarray(execution.qcnn_apply(spec, params, features, noise=read, execution="auto")),
                             exact * (1 - 2 * 0.03), atol=2e-6)


def _idle_z(model, angle: float) -> float:
  """<Z> of wire 0 (the readout) of a 2-qubit circuit RY(angle) on both wires, then two identity blocks with the
  model's channels after each (the density engine's public interface)."""
  spec = QCNNSpec(2, "su4", readout="expval")
  identity = [lambda wires: qml.QubitUnitary(np.eye(4), wires=wires)]
  return float(density.qcnn_density(spec, jnp.full((1, 2), angle), identity, identity, model)[0, 0])


def test_relaxation_size_is_t1_and_t2():
  """A wire exposed for t over its 2 blocks: |1> decays to P(1) = exp(-t/T1) without pure dephasing
  (T2 = 2 T1); with T_phi, each block adds the averaged dephasing p = (1 - exp(-t/(2 T_phi)))/2, which
  shrinks <Z> by 1 - 4p/3 after the block's amplitude damping."""
  spec, t1, t = QCNNSpec(2, "su4", readout="expval"), 100e-6, 30e-6
  assert qcnn.readout_wires(spec) == (0,)
  no_dephasing = noise_model.from_calibration(spec, _calibration(spec, t1=t1, t2=2 * t1, exposure=t))
  assert _idle_z(no_dephasing, math.pi) == pytest.approx(1 - 2 * math.exp(-t / t1), abs=1e-5)
  t2 = 50e-6
  t_phi = 1 / (1 / t2 - 1 / (2 * t1))
  gamma, p = 1 - math.exp(-t / 2 / t1), (1 - math.exp(-t / 2 / t_phi)) / 2
  z = -1.0
  for _ in range(2):
    z = (1 - 4 * p / 3) * ((1 - gamma) * z + gamma)
  both = noise_model.from_calibration(spec, _calibration(spec, t1=t1, t2=t2, exposure=t))
  assert _idle_z(both, math.pi) == pytest.approx(z, abs=1e-5)


def test_gate_depolarizing_leaves_out_what_relaxation_explains():
  """λ = e d/(d-1) without relaxation; with it, the gate's depolarizing part is smaller and zero once
  relaxation alone exceeds the gate's error (qiskit-aer's NoiseModel.from_backend)."""
  assert noise_model.gate_depolarizing(0.01, (1.0, 1.0)) == pytest.approx(0.01 * 4 / 3)
  assert noise_model.gate_depolarizing(0.01, (1.0,)) == pytest.approx(0.02)
  f = noise_model.relaxation_process_fidelity(100e-6, 80e-6, 4e-7)
  assert f == pytest.approx((1 + 2 * math.exp(-0.4 / 80) + math.exp(-0.4 / 100)) / 4)
  assert 0 < noise_model.gate_depolarizing(0.01, (f, f)) < 0.01 * 4 / 3
  assert noise_model.gate_depolarizing(1e-4, (f, f)) == 0.0


def test_head_trains_one_step_under_noise(tmp_path):
  path = noise_model.save(_model(QCNNSpec(4, "su4", readout="expval")), str(tmp_path / "noise.json"))
  x = jax.random.normal(jax.random.PRNGKey(0), (4, 6))
  labels = jnp.array([0.0, 1.0, 1.0, 0.0])
  for setting in (path, "depolarizing:0.05"):
    head = heads.FeatureHead(1, n_qubits=4, noise=setting)
    params = head.init(jax.random.PRNGKey(1), x)["params"]
    loss = lambda p: optax.sigmoid_binary_cross_entropy(head.apply({"params": p}, x)[:, 0], labels).mean()
    optimizer = optax.adam(0.05)

    @jax.jit
    def step(p, state):
      value, grads = jax.value_and_grad(loss)(p)
      updates, state = optimizer.update(grads, state, p)
      return optax.apply_updates(p, updates), state, value, grads

    new, _, before, grads = step(params, optimizer.init(params))
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
    assert abs(float(loss(new)) - float(before)) > 1e-4
    exact = heads.FeatureHead(1, n_qubits=4).apply({"params": params}, x)
    assert float(jnp.max(jnp.abs(head.apply({"params": params}, x) - exact))) > 1e-3  # the noise shows
  with pytest.raises(ValueError, match="give '<channel>:<p>'"):
    heads.FeatureHead(1, n_qubits=4, noise="depolarising:0.1").init(jax.random.PRNGKey(1), x)


def _against_aer(spec: QCNNSpec, backend: str = "fake_manila"):
  """Per source ("readout", "gates_2q", "device"): (engine readouts under the calibrated model, aer's
  readouts of the same circuits routed and scheduled on the backend, the exact readouts); 6 inputs."""
  device_eval = pytest.importorskip("qcnn_jax.studies.device_eval")
  pytest.importorskip("qiskit_aer")
  pytest.importorskip("qiskit_ibm_runtime")
  from qcnn_jax.models.quantum import export  # pylint: disable=g-import-not-at-top
  device = device_eval.backend(backend)
  numbers = device_eval.calibration(device, spec, layout_seed=0)
  n, full = spec.n_qubits, noise_model.from_calibration(spec, numbers)
  no_relaxation = noise_model.from_calibration(spec, dict(numbers, t1=[1e9] * n, t2=[1e9] * n))
  models = {"readout": dataclasses.replace(full, depolarizing=(0.0,) * len(full.pairs), amplitude_damping=(0.0,) * n,
                                           dephasing=(0.0,) * n),
            "gates_2q": dataclasses.replace(no_relaxation, readout=(IDENTITY,) * n), "device": full}
  params, features = _inputs(spec, 6)
  programs = [export.export(spec, params, f)[0] for f in np.asarray(features)]
  scheduled = device_eval.schedule(device_eval.transpile(programs, device, seed=0)[0], device)
  exact = np.asarray(execution.qcnn_apply(spec, params, features))
  return {source: (np.asarray(execution.qcnn_apply(spec, params, features, execution="auto", noise=model)),
                   device_eval.raw_readout(device_eval.distribution(scheduled, device, source), spec), exact)
          for source, model in models.items()}


def test_unrouted_circuit_matches_aer_device_model():
  """A 2-qubit circuit on a coupled pair (no routing): readout confusion and the two-qubit gates'
  depolarizing are aer's exactly (depolarizing commutes with the block); relaxation is spread over
  the blocks and its dephasing averaged over rotations, so the device model agrees to 0.01 (0.0074
  measured) of a 0.046 effect."""
  found = _against_aer(QCNNSpec(2, "su4", readout="expval"))
  for source, atol in (("readout", 1e-5), ("gates_2q", 1e-4), ("device", 0.01)):
    engine, aer, _ = found[source]
    np.testing.assert_allclose(engine, aer, atol=atol, err_msg=source)
  engine, aer, exact = found["device"]
  assert np.abs(aer - exact).max() > 0.03


def test_routed_circuit_is_near_aer_device_model():
  """4 qubits on a line (SWAPs routed in): readout confusion stays exact (the measured qubits'); the
  gates' depolarizing spreads the routed circuit's two-qubit gates evenly over the blocks, with path
  errors for uncoupled pairs (0.0032 measured); wires take the T1/T2 of the qubit they end on, so
  the device model is within 0.4 of aer's effect (0.020 of 0.147 measured) and its fitted readout
  scales within 0.07 of aer's (0.81, 0.81 against 0.77, 0.76: relaxation is underestimated)."""
  device_eval = pytest.importorskip("qcnn_jax.studies.device_eval")
  found = _against_aer(QCNNSpec(4, "so4", readout="expvals", n_readout=2))
  np.testing.assert_allclose(*found["readout"][:2], atol=1e-5)
  np.testing.assert_allclose(*found["gates_2q"][:2], atol=0.01)
  engine, aer, exact = found["device"]
  assert np.abs(engine - aer).max() < 0.4 * np.abs(aer - exact).max()
  scales = [device_eval.fit_recalibration(exact, noisy)[0] for noisy in (engine, aer)]
  np.testing.assert_allclose(*scales, atol=0.07)


def test_noise_model_file_of_a_backend(tmp_path):
  device_eval = pytest.importorskip("qcnn_jax.studies.device_eval")
  pytest.importorskip("qiskit_ibm_runtime")
  spec = QCNNSpec(4, "so4", readout="expvals", n_readout=2)
  path = device_eval.write_noise_model(str(tmp_path / "manila.json"), "fake_manila", spec, layout_seed=0)
  numbers = device_eval.calibration(device_eval.backend("fake_manila"), spec, layout_seed=0)
  assert noise_model.parse(path) == noise_model.from_calibration(spec, numbers)
  assert numbers["qubits"] == [1, 2, 3, 4] and numbers["gate"] == "cx"
  assert 0 < min(numbers["exposure"]) and max(numbers["exposure"]) < 10e-6  # seconds: a few µs per wire


def test_models_take_noise_from_their_options_and_twins_refuse_it():
  """A training config's model_options.noise reaches the circuit (get_model's option); a classical
  twin, which has no circuit, refuses it with one message instead of training exactly in silence."""
  from qcnn_jax import models  # pylint: disable=import-outside-toplevel
  images = jax.random.uniform(jax.random.PRNGKey(0), (2, 28, 28, 1))
  noisy = models.get_model("qcnn", 1, n_qubits=4, noise="depolarizing:0.2")
  exact = models.get_model("qcnn", 1, n_qubits=4)
  variables = exact.init(jax.random.PRNGKey(0), images)
  assert float(jnp.max(jnp.abs(noisy.apply(variables, images) - exact.apply(variables, images)))) > 1e-3
  x = jnp.ones((2, 6))
  with pytest.raises(ValueError, match="quantum heads only"):
    heads.FeatureHead(1, kind="classical", n_qubits=4, noise="depolarizing:0.2").init(jax.random.PRNGKey(0), x)
