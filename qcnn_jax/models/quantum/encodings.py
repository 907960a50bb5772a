"""Classical-data encodings (feature maps) for the QCNN circuits.

Every encoding takes ``qubit_features`` of shape ``(len(wires), k)`` — ``k`` features per qubit —
except amplitude encoding, which takes the whole feature vector. Features are angles in radians.
"""

import functools
from typing import Callable, Sequence

import jax.numpy as jnp
import pennylane as qml

AMPLITUDE_EPS = 1e-12
_ROTATIONS = {"x": qml.RX, "y": qml.RY, "z": qml.RZ}


def angle_encoding(qubit_features, wires: Sequence[int], axis: str = "y") -> None:
  """One rotation R_axis(x_i) per qubit; ``qubit_features``: (len(wires), 1) radians."""
  rotation = _ROTATIONS[axis]
  for row, wire in enumerate(wires):
    rotation(qubit_features[row, 0], wires=wire)


def dense_angle_encoding(qubit_features, wires: Sequence[int]) -> None:
  """Two features per qubit: RY(x_2i) then RZ(x_2i+1); ``qubit_features``: (len(wires), 2) radians."""
  for row, wire in enumerate(wires):
    qml.RY(qubit_features[row, 0], wires=wire)
    qml.RZ(qubit_features[row, 1], wires=wire)


def normalized_amplitudes(features, n_qubits: int):
  """Zero-pads (F,) to (2**n_qubits,) and L2-normalises; an all-zero input maps to |0...0>."""
  padded = jnp.zeros(2**n_qubits, features.dtype).at[: features.shape[-1]].set(features)
  squared_norm = jnp.sum(padded**2)
  is_zero = squared_norm <= AMPLITUDE_EPS**2
  norm = jnp.sqrt(jnp.where(is_zero, 1.0, squared_norm))  # no sqrt(0): finite gradients at 0
  basis_zero = jnp.zeros_like(padded).at[0].set(1.0)
  return jnp.where(is_zero, basis_zero, padded / norm)


def amplitude_encoding(features, wires: Sequence[int]) -> None:
  """Amplitude encoding of ``features`` (F <= 2**len(wires),) as one state preparation."""
  state = normalized_amplitudes(features, len(wires))
  qml.StatePrep(state.astype(jnp.result_type(state.dtype, jnp.complex64)), wires=wires)


# name -> (features per qubit, or None for amplitude; encoding function)
ENCODINGS: dict[str, tuple[int | None, Callable]] = {
    "angle_x": (1, functools.partial(angle_encoding, axis="x")),
    "angle_y": (1, functools.partial(angle_encoding, axis="y")),
    "angle_z": (1, functools.partial(angle_encoding, axis="z")),
    "dense_angle": (2, dense_angle_encoding),
    "amplitude": (None, amplitude_encoding),
}


def n_features(encoding: str, n_qubits: int) -> int:
  """Number of input features F the encoding takes on ``n_qubits`` qubits."""
  per_qubit, _ = ENCODINGS[encoding]
  return 2**n_qubits if per_qubit is None else per_qubit * n_qubits


def encode(encoding: str, features, wires: Sequence[int], n_qubits: int) -> None:
  """Applies ``encoding`` of ``features`` (F,) on ``wires`` (a subset of range(n_qubits)).

  Angle encodings put the features of qubit ``w`` on wire ``w``, so re-uploading on the wires
  still active after pooling re-encodes exactly their own features.
  """
  per_qubit, encoding_fn = ENCODINGS[encoding]
  if per_qubit is None:
    encoding_fn(features, wires)
  else:
    encoding_fn(features.reshape(n_qubits, per_qubit)[jnp.asarray(wires)], wires)
