"""Readout confusion in the density-matrix engine (qcnn_jax.models.quantum.density.confuse): the
closed-form shrink of <Z> under a symmetric flip, and the readout wires' probabilities through the
Kronecker product of their confusion matrices."""

import math

import jax
import jax.numpy as jnp
import numpy as np

from qcnn_jax.models.quantum import Noise, QCNNSpec, density, execution, param_shapes, qcnn


def _run(spec, confusion, noise=Noise("depolarizing", 0.05)):
  keys = jax.random.split(jax.random.PRNGKey(3))
  params = {name: jax.random.uniform(key, shape, maxval=2 * math.pi)
            for key, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}
  features = jax.random.uniform(jax.random.PRNGKey(7), (3, spec.n_features), maxval=math.pi)
  blocks = execution.layer_blocks(spec, "statevector", *execution.layer_args(spec, params, "statevector"))
  return np.asarray(density.qcnn_density(spec, features, *blocks, noise, confusion))


def test_symmetric_readout_flip_shrinks_every_expectation_by_one_minus_two_eps():
  spec, eps = QCNNSpec(4, "su4", readout="expvals", n_readout=2), 0.07
  flip = jnp.asarray(np.tile([[1 - eps, eps], [eps, 1 - eps]], (4, 1, 1)), jnp.float32)
  exact = _run(spec, None)
  np.testing.assert_allclose(_run(spec, flip), (1 - 2 * eps) * exact, atol=2e-6)
  assert np.abs(exact).max() > 0.05  # the check is not vacuous


def test_readout_probabilities_go_through_the_readout_wires_confusion():
  spec = QCNNSpec(4, "su4", readout="probs", n_readout=2, n_outcomes=4)
  rng = np.random.default_rng(0)
  errors = rng.uniform(0.01, 0.2, (4, 2))  # P(read 1 | 0), P(read 0 | 1) per wire
  confusion = np.stack([[[1 - a, a], [b, 1 - b]] for a, b in errors])
  wires = qcnn.readout_wires(spec)
  exact, confused = _run(spec, None), _run(spec, jnp.asarray(confusion, jnp.float32))
  expected = exact @ np.kron(confusion[wires[0]], confusion[wires[1]])
  np.testing.assert_allclose(confused, expected, atol=2e-6)
  np.testing.assert_allclose(np.asarray(density.confuse(jnp.asarray(exact), jnp.asarray(confusion[list(wires)]))),
                             expected, atol=2e-6)
