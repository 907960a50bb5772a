"""Flax modules wrapping the QCNN circuit: ``QCNN`` (raw readout) and ``QCNNHead`` (logits).

All circuit angles live in params whose names start with ``quantum_`` (``quantum_conv``,
``quantum_pool``), so training code can tell quantum parameters from classical ones by path.
By default they are initialised uniformly in [0, 2π): every rotation starts anywhere on its
period, as in Hur et al.'s random initialisation; ``angle_init_std`` draws them from N(0, std²)
instead (every rotation near the identity: a small-angle start, as for barren-plateau-aware heads). Computation is float32/complex64, or float64/complex128 when
``jax_enable_x64`` is on.
"""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp

from qcnn_jax.models.quantum import execution as execution_lib
from qcnn_jax.models.quantum import qcnn

PROBS_LOG_EPS = 1e-7


def float_dtype():
  """float64 when jax_enable_x64 is on, else float32."""
  return jax.dtypes.canonicalize_dtype(jnp.float64)


def uniform_angles(key, shape, dtype=jnp.float32):
  """Angles uniform in [0, 2π) radians, ``shape`` as given."""
  return jax.random.uniform(key, shape, dtype, 0.0, 2 * math.pi)


def angle_initializer(std: float | None):
  """``uniform_angles`` when ``std`` is None, else angles ~ N(0, std²) radians."""
  return uniform_angles if std is None else nn.initializers.normal(std)


class QCNN(nn.Module):
  """Quantum convolutional neural network on ``n_qubits`` qubits.

  ``__call__(features (B, F)) -> (B, R)``: F = ``n_qubits`` (angle_*), 2·n_qubits (dense_angle)
  or up to 2**n_qubits (amplitude); R = 1 (expval), n_outcomes or 2**n_readout (probs),
  n_readout (expvals). Angle features are radians. With ``shots`` the module needs a
  ``"shots"`` PRNG stream (``rngs={"shots": key}``).
  """

  n_qubits: int
  conv_unit: str = "su4"
  encoding: str = "angle_y"
  readout: str = "expval"
  n_readout: int = 1
  n_outcomes: int | None = None
  reuploading: int = 1
  execution: str = "auto"
  shots: int | None = None
  noise: execution_lib.Noise | None = None
  angle_init_std: float | None = None

  @property
  def circuit_spec(self) -> qcnn.QCNNSpec:
    """The circuit definition these fields describe."""
    return qcnn.QCNNSpec(self.n_qubits, self.conv_unit, self.encoding, self.readout, self.n_readout,
                         self.n_outcomes, self.reuploading)

  @nn.compact
  def __call__(self, features):
    spec, dtype = self.circuit_spec, float_dtype()
    params = {name: self.param(f"quantum_{name}", angle_initializer(self.angle_init_std), shape, dtype)
              for name, shape in qcnn.param_shapes(spec).items()}
    key = None if self.shots is None else self.make_rng("shots")
    return execution_lib.qcnn_apply(spec, params, features.astype(dtype), execution=self.execution,
                                    shots=self.shots, noise=self.noise, key=key)


def head_readout(num_outputs: int, n_qubits: int, readout: str = "auto") -> tuple[str, int]:
  """(readout, n_readout) a ``QCNNHead`` uses.

  "auto": 1 output -> ("expval", 1); C >= 2 outputs with k = ceil(log2 C) < n_qubits ->
  ("probs", k); otherwise ("expvals", min(C, n_qubits // 2)). A forced "expvals" uses the same
  qubit count; forced "probs"/"expval" must fit as above.
  """
  n_prob_qubits = max(1, math.ceil(math.log2(num_outputs)))
  if readout == "auto":
    if num_outputs == 1:
      readout = "expval"
    else:
      readout = "probs" if n_prob_qubits < n_qubits else "expvals"
  if readout == "expval":
    if num_outputs != 1:
      raise ValueError("readout 'expval' gives one logit; use 'probs' or 'expvals'")
    return "expval", 1
  if readout == "probs":
    return "probs", n_prob_qubits
  if readout == "expvals":
    return "expvals", min(num_outputs, max(1, n_qubits // 2))
  raise ValueError(f"readout {readout!r} not in ('auto', {qcnn.READOUTS})")


class QCNNHead(nn.Module):
  """QCNN classifier head: ``(B, F)`` features in angle range -> ``(B, num_outputs)`` logits.

  Readouts (see ``head_readout``): "expval" -> logit = a·<Z> + b (a starts at
  ``logit_scale_init``, b at 0); "probs" -> logits = log(p + 1e-7) of the first C outcomes
  renormalised (for softmax cross-entropy); "expvals" -> nn.Dense(num_outputs) of the <Z>s.
  Multi-label heads (trained with sigmoid BCE) should pass ``readout="expvals"``: "auto" would
  pick "probs", whose log-probabilities are meant for softmax.
  """

  num_outputs: int
  n_qubits: int
  conv_unit: str = "su4"
  encoding: str = "angle_y"
  readout: str = "auto"
  reuploading: int = 1
  execution: str = "auto"
  shots: int | None = None
  noise: execution_lib.Noise | None = None
  logit_scale_init: float = 3.0

  @nn.compact
  def __call__(self, features):
    readout, n_readout = head_readout(self.num_outputs, self.n_qubits, self.readout)
    values = QCNN(self.n_qubits, self.conv_unit, self.encoding, readout, n_readout,
                  self.num_outputs if readout == "probs" else None, self.reuploading,
                  self.execution, self.shots, self.noise, name="qcnn")(features)
    if readout == "expval":
      scale = self.param("logit_scale", nn.initializers.constant(self.logit_scale_init), (1,), values.dtype)
      bias = self.param("logit_bias", nn.initializers.zeros, (1,), values.dtype)
      return scale * values + bias
    if readout == "probs":
      return jnp.log(values + PROBS_LOG_EPS)
    return nn.Dense(self.num_outputs, name="readout")(values)
