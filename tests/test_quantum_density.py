"""The density-matrix engine: equal to PennyLane's default.mixed (values and gradients), the size of
each noise source against its closed form, and the noiseless limit against the statevector engine."""

import itertools
import math
import re

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest

from qcnn_jax.models.quantum import Noise, QCNNSpec, density, execution, param_shapes, statevector


def _params(spec: QCNNSpec, seed: int = 0) -> dict:
  keys = jax.random.split(jax.random.PRNGKey(seed))
  return {name: jax.random.uniform(key, shape, maxval=2 * math.pi)
          for key, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}


def _features(spec: QCNNSpec, batch: int = 5):
  return jax.random.uniform(jax.random.PRNGKey(7), (batch, spec.n_features), maxval=math.pi)


@pytest.mark.parametrize("n,readout,n_readout,channel", [(4, "expval", 1, "depolarizing"),
                                                         (4, "probs", 2, "amplitude_damping"),
                                                         (5, "expvals", 2, "phase_damping")])
def test_density_engine_equals_default_mixed_with_its_gradient(n, readout, n_readout, channel):
  spec, noise = QCNNSpec(n, "su4", readout=readout, n_readout=n_readout), Noise(channel, 0.1)
  params, features = _params(spec), _features(spec)
  loss = lambda p, ex: jnp.sum(execution.qcnn_apply(spec, p, features, execution=ex, noise=noise) ** 2)
  mixed = execution.qcnn_apply(spec, params, features, execution="fused", noise=noise)  # default.mixed
  engine = jax.jit(lambda p: execution.qcnn_apply(spec, p, features, execution="density", noise=noise))(params)
  np.testing.assert_allclose(np.asarray(engine), np.asarray(mixed), atol=1e-5)
  grads = [jax.jit(jax.grad(loss), static_argnums=1)(params, ex) for ex in ("density", "fused")]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)
  assert float(jnp.max(jnp.abs(engine - execution.qcnn_apply(spec, params, features)))) > 1e-3  # noise shows


def test_without_noise_the_density_engine_is_the_statevector_engine():
  spec = QCNNSpec(5, "u9")
  params, features = _params(spec, 1), _features(spec, 3)
  np.testing.assert_allclose(np.asarray(execution.qcnn_apply(spec, params, features, execution="density")),
                             np.asarray(execution.qcnn_apply(spec, params, features, execution="statevector")),
                             atol=1e-5)


def _one_qubit(state, ops) -> np.ndarray:
  """ρ (2, 2) after ``ops`` on the one-qubit pure ``state``, through the engine's superoperators."""
  rho = jnp.outer(state, jnp.conj(state)).astype(jnp.complex64).reshape(4)  # (row, column) of wire 0
  for wires, group in density.groups(ops):
    rho = density.superoperator(group, wires, jnp.complex64) @ rho
  return np.asarray(rho).reshape(2, 2)


@pytest.mark.parametrize("p", [0.05, 0.3])
def test_each_noise_source_has_its_closed_form_size(p):
  """Depolarizing p shrinks <Z> of |0> to 1 - 4p/3; amplitude damping γ leaves P(1) = 1 - γ of |1>;
  phase damping γ shrinks <X> of |+> to sqrt(1 - γ)."""
  zero, one, plus = jnp.array([1, 0]), jnp.array([0, 1]), jnp.array([1, 1]) / math.sqrt(2)
  rho = _one_qubit(zero, [qml.DepolarizingChannel(p, wires=0)])
  assert rho[0, 0].real - rho[1, 1].real == pytest.approx(1 - 4 * p / 3, abs=1e-6)
  assert _one_qubit(one, [qml.AmplitudeDamping(p, wires=0)])[1, 1].real == pytest.approx(1 - p, abs=1e-6)
  assert 2 * _one_qubit(plus, [qml.PhaseDamping(p, wires=0)])[0, 1].real == pytest.approx(math.sqrt(1 - p), abs=1e-6)
  # a gate then its channel fuse into one superoperator: X then amplitude damping takes |0> to P(1) = 1 - γ
  fused = _one_qubit(zero, [qml.PauliX(0), qml.AmplitudeDamping(p, wires=0)])
  assert len(density.groups([qml.PauliX(0), qml.AmplitudeDamping(p, wires=0)])) == 1
  assert fused[1, 1].real == pytest.approx(1 - p, abs=1e-6)


@pytest.mark.parametrize("readout,n_readout", [("expval", 1), ("expvals", 2), ("probs", 2)])
def test_shot_readouts_are_unbiased_and_carry_the_exact_gradient(readout, n_readout):
  spec = QCNNSpec(4, readout=readout, n_readout=n_readout)
  joint = jnp.array([[0.1, 0.2, 0.3, 0.4], [0.7, 0.1, 0.1, 0.1]])[:, : 2**n_readout]
  joint = joint / joint.sum(-1, keepdims=True)
  exact = execution.shot_readout(spec, joint, 10**9, jax.random.PRNGKey(0))  # frequencies at 1e9 shots
  keys = jax.random.split(jax.random.PRNGKey(1), 4000)
  sampled = jax.vmap(lambda k: execution.shot_readout(spec, joint, 50, k))(keys)
  # the mean of 4000 runs of 50 shots: standard error <= 1/sqrt(200000) = 0.0022 per entry
  np.testing.assert_allclose(np.asarray(sampled.mean(0)), np.asarray(exact), atol=0.01)
  assert float(sampled.std(0).max()) > 0.02  # 50 shots do vary
  grad = lambda k: jax.grad(lambda p: jnp.sum(execution.shot_readout(spec, p, 50, k) * jnp.arange(1, 3)[:, None]))(joint)
  np.testing.assert_allclose(np.asarray(grad(keys[0])), np.asarray(grad(keys[1])), atol=1e-6)  # exact: key-free


@pytest.mark.parametrize("noise", [None, Noise("amplitude_damping", 0.1)])
def test_engines_sample_shots_of_the_circuit_they_simulate(noise):
  spec = QCNNSpec(4, "u9", readout="expvals", n_readout=2)
  params, features = _params(spec, 2), _features(spec, 4)
  exact = execution.qcnn_apply(spec, params, features, execution="auto", noise=noise)
  run = jax.jit(lambda key: execution.qcnn_apply(spec, params, features, execution="auto", noise=noise, shots=20000,
                                                 key=key))
  first, second = run(jax.random.PRNGKey(3)), run(jax.random.PRNGKey(4))
  np.testing.assert_allclose(np.asarray(first), np.asarray(exact), atol=0.035)  # 5 standard errors at 20000 shots
  assert float(jnp.max(jnp.abs(first - second))) > 0
  value, grad = jax.value_and_grad(
      lambda p: execution.qcnn_apply(spec, p, features, execution="auto", noise=noise, shots=100,
                                     key=jax.random.PRNGKey(5)).sum())(params)
  exact_grad = jax.grad(lambda p: execution.qcnn_apply(spec, p, features, execution="auto", noise=noise).sum())(params)
  for a, b in zip(jax.tree.leaves(grad), jax.tree.leaves(exact_grad)):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)  # straight-through: the exact gradient
  assert np.isfinite(float(value))


def _noise_of_many_channels(wires):
  """A bit flip and a generalized amplitude damping on one wire, a two-qubit Kraus channel on both."""
  qml.BitFlip(0.05, wires=wires[0])
  qml.GeneralizedAmplitudeDamping(0.1, 0.3, wires=wires[1])
  kraus = [np.sqrt(0.9) * np.eye(4), np.sqrt(0.1) * np.kron(np.diag([1.0, -1.0]), np.array([[0, 1], [1, 0]]))]
  qml.QubitChannel(kraus, wires=list(wires))


@pytest.mark.parametrize("spec", [QCNNSpec(4, "su4", encoding="amplitude"),
                                  QCNNSpec(4, "u9", encoding="dense_angle", reuploading=2)])
def test_state_preparation_reuploading_and_any_channel_equal_default_mixed(spec):
  """A StatePrep start (one factor of all wires), feature-dependent gates after the first layer (one
  matrix per sample) and channels beyond the three of ``Noise``, values and gradients."""
  params, features = _params(spec, 4), _features(spec, 3) + 0.1
  apply = lambda p, ex: execution.qcnn_apply(spec, p, features, execution=ex, noise=_noise_of_many_channels)
  np.testing.assert_allclose(np.asarray(apply(params, "density")), np.asarray(apply(params, "fused")), atol=1e-5)
  grads = [jax.jit(jax.grad(lambda p, ex=ex: jnp.sum(apply(p, ex) ** 2)))(params) for ex in ("density", "fused")]
  for a, b in zip(jax.tree.leaves(grads[0]), jax.tree.leaves(grads[1])):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


def _cost(group_wires, order, n, kept, full_start=False) -> int:
  steps = density._plan(group_wires, order, n, kept, full_start)[0]  # pylint: disable=protected-access
  return sum(4**step.size for step in steps)


def test_schedule_finds_the_cheapest_order_that_keeps_each_wires_order():
  """Against every order of the groups (permutations that keep the order of the groups on each wire)."""
  group_wires = ((0, 1), (2, 3), (1, 2), (0,), (3, 4), (0, 1), (2, 4), (1, 3))
  kept = frozenset([1])
  valid = lambda order: all([g for g in order if w in group_wires[g]] == [g for g in range(8) if w in group_wires[g]]
                            for w in range(5))
  best = min(_cost(group_wires, order, 5, kept) for order in itertools.permutations(range(8)) if valid(order))
  order = density.schedule(group_wires, 5, kept, False)
  assert valid(order) and _cost(group_wires, order, 5, kept) == best
  assert best < _cost(group_wires, tuple(range(8)), 5, kept)  # the tape's order is not the cheapest here


def _largest_array(spec: QCNNSpec, batch: int) -> int:
  """Elements of the largest array in the compiled value-and-gradient program of the density engine."""
  params, features = _params(spec), _features(spec, batch)
  noise = Noise("depolarizing", 0.01)
  loss = lambda p: jnp.sum(execution.qcnn_apply(spec, p, features, execution="density", noise=noise))
  hlo = jax.jit(jax.value_and_grad(loss)).lower(params).compile().as_text()
  return max(math.prod(int(d) for d in dims.split(",") if d) for dims in re.findall(r"[fc](?:32|64)\[([\d,]*)\]", hlo))


def test_no_array_holds_one_samples_full_density_matrix_at_eight_qubits():
  """Partial traces after each wire's last gate and the searched order keep every factor at 6 of 8
  qubits: no array of the gradient program of two samples holds 4**8 entries (a dense engine
  holds at least one sample's ρ, 4**8 complex entries)."""
  spec = QCNNSpec(8, "su4")
  assert _largest_array(spec, 2) < 4**8
  steps = density.program(statevector.record(spec, jnp.zeros(8), *[[lambda w: qml.QubitUnitary(np.eye(4), w)] * 3] * 2),
                          8).steps
  assert max(step.size for step in steps) == 6
