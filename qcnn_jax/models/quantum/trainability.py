"""Trainability of a QCNN at random initialisation: the variance of the cost gradient.

A barren plateau (McClean et al. 2018) shows as Var_theta[dC/dtheta_k] shrinking exponentially
with the number of qubits; QCNNs are known to avoid it (Pesah et al. 2021: polynomial decay).
``gradient_variance`` measures it for the project's circuits, so a poor result can be checked
against vanishing gradients before blaming the head, the data or the learning rate.
"""

import jax
import jax.numpy as jnp
import numpy as np

from qcnn_jax.models.quantum import qcnn
from qcnn_jax.models.quantum.execution import qcnn_apply


def gradient_variance(spec: qcnn.QCNNSpec, num_samples: int = 256, seed: int = 0,
                      execution: str = "fused") -> dict[str, np.ndarray]:
  """Variance over random circuits of the gradient of the first readout value.

  Each sample draws every angle uniformly in [0, 2 pi) and one input with features uniform in
  [0, pi) (amplitude encoding: uniform in [0, 1), normalised by the encoding); the cost is the
  first readout value (<Z> of the readout qubit for "expval").

  Args:
    spec: circuit options (any readout; the first output is differentiated).
    num_samples: number of (angles, input) draws.
    seed: PRNG seed.
    execution: how circuits run (``EXECUTIONS``); all give the same values.

  Returns:
    {"conv": (layers, unit params), "pool": (layers, 2)} variances of dC/dtheta (float64 numpy).
  """
  shapes = qcnn.param_shapes(spec)
  keys = jax.random.split(jax.random.PRNGKey(seed), len(shapes) + 1)
  params = {name: jax.random.uniform(key, (num_samples, *shape), jnp.float32, 0.0, 2 * np.pi)
            for key, (name, shape) in zip(keys, sorted(shapes.items()))}
  high = 1.0 if spec.encoding == "amplitude" else np.pi
  features = jax.random.uniform(keys[-1], (num_samples, 1, spec.n_features), jnp.float32, 0.0, high)

  def cost(p, x):
    return qcnn_apply(spec, p, x, execution=execution)[0, 0]

  grads = jax.jit(jax.vmap(jax.grad(cost)))(params, features)
  return {name: np.var(np.asarray(g, np.float64), axis=0) for name, g in grads.items()}
