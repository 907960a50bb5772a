"""The density-matrix engine: equal to PennyLane's default.mixed (values and gradients), the size of
each noise source against its closed form, and the noiseless limit against the statevector engine."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest

from qcnn_jax.models.quantum import Noise, QCNNSpec, density, execution, param_shapes


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
  rho = jnp.outer(state, jnp.conj(state)).astype(jnp.complex64)
  for wires, group in density.groups(ops):
    rho = density._apply(rho, density.superoperator(group, wires, jnp.complex64), (0, 1))  # pylint: disable=protected-access
  return np.asarray(rho)


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
