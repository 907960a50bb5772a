"""Quanvolutional front-end (Henderson et al. 2020, "Quanvolutional neural networks").

Each 2x2 patch (stride 2) of the channel-mean image is angle-encoded on 4 qubits as RY(π·x),
then a random layer acts, and <Z> of the 4 qubits gives 4 output channels. Pixels are expected
in [0, 1] (no rescaling is done; RY(π·x) maps 0 -> |0>, 1 -> |1>). Input channels are averaged
first so the output always has 4 channels. H and W must be even.

The random layer is a fixed gate list drawn from ``seed`` (``random_layer_ops``): per layer a
rotation of random axis on every wire, then CNOTs along a random chain of the wires. It is one
16x16 ``qml.QubitUnitary`` computed once per forward pass (a constant when not trainable), and
the patch circuit is vmapped over all B·H/2·W/2 patches.
"""

import math
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml

from qcnn_jax.models.quantum.execution import quiet_complex128_truncation
from qcnn_jax.models.quantum.layer import float_dtype, uniform_angles

N_QUBITS = 4
_GATES = {"RX": qml.RX, "RY": qml.RY, "RZ": qml.RZ, "CNOT": qml.CNOT}


class Gate(NamedTuple):
  """A gate of the random layer: name, wires, weight index (None for CNOT)."""

  name: str
  wires: tuple[int, ...]
  weight: int | None


def random_layer_ops(n_layers: int, seed: int) -> tuple[Gate, ...]:
  """Fixed random gate list on 4 qubits; weights are indexed 0..n_layers*4-1."""
  rng = np.random.default_rng(seed)
  gates = []
  for layer in range(n_layers):
    for wire in range(N_QUBITS):
      axis = str(rng.choice(["RX", "RY", "RZ"]))
      gates.append(Gate(axis, (wire,), layer * N_QUBITS + wire))
    chain = [int(w) for w in rng.permutation(N_QUBITS)]
    gates.extend(Gate("CNOT", (a, b), None) for a, b in zip(chain[:-1], chain[1:]))
  return tuple(gates)


def fixed_weights(n_layers: int, seed: int):
  """Non-trainable random-layer weights: (n_layers * 4,) uniform in [0, 2π), drawn from ``seed``."""
  return np.random.default_rng(seed).uniform(0.0, 2 * math.pi, (n_layers * N_QUBITS,))


def random_layer(weights, gates: tuple[Gate, ...]) -> None:
  """Quantum function of the random layer; ``weights``: (n_layers * 4,) radians."""
  for gate in gates:
    angle = () if gate.weight is None else (weights[gate.weight],)
    _GATES[gate.name](*angle, wires=gate.wires)


def patch_circuit(pixels, unitary):
  """<Z> of 4 qubits after RY(π·pixels) and ``unitary``; pixels (4,) in [0, 1] -> (4,)."""

  @qml.qnode(qml.device("default.qubit", wires=N_QUBITS), interface="jax", diff_method="backprop")
  def circuit():
    for wire in range(N_QUBITS):
      qml.RY(math.pi * pixels[wire], wires=wire)
    qml.QubitUnitary(unitary, wires=range(N_QUBITS))
    return [qml.expval(qml.PauliZ(w)) for w in range(N_QUBITS)]

  return jnp.stack(circuit(), axis=-1)


def to_patches(images):
  """(B, H, W, C) -> (B, H/2, W/2, 4) channel-mean 2x2 patches, pixels row-major in a patch."""
  gray = jnp.mean(images, axis=-1)
  b, h, w = gray.shape
  blocks = gray.reshape(b, h // 2, 2, w // 2, 2).transpose(0, 1, 3, 2, 4)
  return blocks.reshape(b, h // 2, w // 2, N_QUBITS)


class Quanvolution(nn.Module):
  """Quanvolution: (B, H, W, C) pixels in [0, 1] -> (B, H/2, W/2, 4) <Z> values in [-1, 1].

  ``trainable=False`` keeps the random weights fixed (drawn from ``seed``, uniform [0, 2π));
  ``trainable=True`` makes them a ``quantum_weights`` param.
  """

  n_layers: int = 1
  seed: int = 0
  trainable: bool = False

  def layer_unitary(self):
    """(16, 16) unitary of the random layer."""
    gates = random_layer_ops(self.n_layers, self.seed)
    if self.trainable:
      weights = self.param("quantum_weights", uniform_angles, (self.n_layers * N_QUBITS,), float_dtype())
    else:
      weights = fixed_weights(self.n_layers, self.seed)
    return qml.matrix(random_layer, wire_order=range(N_QUBITS))(weights, gates)

  @nn.compact
  def __call__(self, images):
    if images.shape[1] % 2 or images.shape[2] % 2:
      raise ValueError(f"H and W must be even, got {images.shape}")
    patches = to_patches(images.astype(float_dtype()))
    unitary = jnp.asarray(self.layer_unitary())
    flat = patches.reshape(-1, N_QUBITS)
    with quiet_complex128_truncation():
      values = jax.vmap(patch_circuit, in_axes=(0, None))(flat, unitary)
    return values.reshape(patches.shape).astype(float_dtype())
