"""Pure-JAX density-matrix execution of a noisy ``qcnn.qcnn_circuit`` (no PennyLane device).

The circuit is not re-defined: ``qcnn.qcnn_circuit`` with its noise channels is recorded on a
PennyLane tape and every recorded operation acts through its own ``op.matrix()`` or
``op.kraus_matrices()``. A density matrix ρ (2**n, 2**n) is held as a (2,) * 2n tensor (axis w
indexes ρ's rows by wire w, axis n + w its columns), so each operation is one or two dots over the
axes of its wires:

* an operation with Kraus operators E_k (a gate: its matrix) acts as the superoperator
  Σ_k E_k ⊗ conj(E_k) on the row and column axes of its wires (ρ -> Σ_k E_k ρ E_k†);
* a two-qubit block and the noise channels on its wires that follow it are multiplied into one
  16 x 16 superoperator first, so each block with its noise is one dot over the state.

Readouts come from ρ's diagonal like the statevector engine's (``statevector.measure_probs``).
Each sample is simulated under ``jax.checkpoint`` inside ``lax.map``, so a gradient stores one
density matrix per sample of a chunk rather than one per operation; the result equals PennyLane's
``default.mixed`` on the same tape (tested to 1e-5), under ``jit``, ``vmap`` and ``grad``.
"""

import functools

import jax
import jax.numpy as jnp
import pennylane as qml

from qcnn_jax.models.quantum import qcnn, statevector

# Samples run in chunks of this many under lax.map (each chunk vmapped): the backward pass keeps one
# density matrix per sample of a chunk besides the chunk's own recomputation.
CHUNK = 8


def _initial(op, n: int, dtype):
  """ρ as a (2,) * 2n tensor: |0...0><0...0|, or |ψ><ψ| for a leading ``StatePrep``."""
  if isinstance(op, qml.StatePrep):
    psi = jnp.asarray(op.state_vector(wire_order=range(n)), dtype).reshape(-1)
    return jnp.outer(psi, jnp.conj(psi)).reshape((2,) * (2 * n))
  return jnp.zeros((2,) * (2 * n), dtype).at[(0,) * (2 * n)].set(1)


def _apply(rho, matrix, axes):
  """A (2**k, 2**k) ``matrix`` applied to ``axes`` of a (2,) * 2n tensor: one dot, axes put back."""
  k = len(axes)
  out = jnp.tensordot(matrix.reshape((2,) * (2 * k)), rho, axes=(tuple(range(k, 2 * k)), tuple(axes)),
                      precision=statevector.HIGHEST)
  return jnp.moveaxis(out, tuple(range(k)), tuple(axes))


def kraus_of(op, dtype) -> list:
  """Kraus operators of a recorded operation: its matrix for a gate, its own for a channel."""
  if isinstance(op, qml.operation.Channel):
    return [jnp.asarray(k, dtype) for k in op.kraus_matrices()]
  return [jnp.asarray(op.matrix(), dtype)]


def superoperator(ops, wires: tuple[int, ...], dtype):
  """(4**k, 4**k) map of consecutive ``ops`` acting within ``wires`` (k of them) on the vectorised
  k-qubit ρ with axes (rows of ``wires``, then their columns): Π_op Σ_K E_K ⊗ conj(E_K), E_K the
  Kraus operator embedded on ``wires``."""
  k, total = len(wires), None
  for op in ops:
    positions = [wires.index(w) for w in op.wires]
    embedded = [statevector.embed(K, positions, k) for K in kraus_of(op, dtype)]
    step = sum(jnp.kron(E, jnp.conj(E)) for E in embedded)
    total = step if total is None else step @ total
  return total


def groups(ops) -> list[tuple[tuple[int, ...], list]]:
  """``ops`` in order as (wires, ops) groups: each group is a gate followed by the operations on
  its wires only (its noise channels), so a two-qubit block and its noise make one superoperator."""
  out = []
  for op in ops:
    wires = tuple(op.wires)
    if out and set(wires) <= set(out[-1][0]):
      out[-1][1].append(op)
    else:
      out.append((wires, [op]))
  return out


def _probs(rho, n: int):
  """(1, 2**n) diagonal of ρ (real)."""
  return jnp.real(jnp.diagonal(rho.reshape(2**n, 2**n)))[None]


def confuse(probs, confusion):
  """Outcome probabilities (..., 2**n) of n wires (wire 0 the most significant bit) read through
  per-wire readout confusion (n, 2, 2): row = prepared bit, column = bit read, rows summing to 1."""
  n, lead = confusion.shape[0], probs.ndim - 1
  p = probs.reshape(probs.shape[:-1] + (2,) * n)
  for wire in range(n):
    p = jnp.moveaxis(jnp.tensordot(jnp.moveaxis(p, lead + wire, -1), confusion[wire], axes=1), -1, lead + wire)
  return p.reshape(probs.shape)


def _sample(spec: qcnn.QCNNSpec, conv_blocks, pool_blocks, noise, dtype, confusion, features):
  """(R,) readout of one sample: the tape run on a density matrix, one dot per group of operations,
  its outcome probabilities read through `confusion` (n, 2, 2) when given."""
  tape = statevector.record(spec, features, conv_blocks, pool_blocks, noise)
  n, ops = spec.n_qubits, tape.operations
  start = 1 if ops and isinstance(ops[0], qml.StatePrep) else 0
  rho = _initial(ops[0] if start else None, n, dtype)
  for wires, group in groups(ops[start:]):
    if len(wires) > 2:
      raise NotImplementedError(f"density execution applies one- and two-qubit operations, not {group[0]}")
    rho = _apply(rho, superoperator(group, wires, dtype), wires + tuple(n + w for w in wires))
  measurements = [statevector.measurement(mp) for mp in tape.measurements]
  probs = _probs(rho, n) if confusion is None else confuse(_probs(rho, n), confusion)
  raw = statevector.measure_probs(probs, n, measurements)
  raw = [r[0] for r in raw]
  return qcnn.postprocess(spec, raw[0] if measurements[0][0] == "probs" else raw)


def qcnn_density(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks, noise, confusion=None):
  """Batched noisy QCNN forward on density matrices.

  Args:
    spec: circuit options.
    features: (B, F) encoding inputs (radians, or amplitudes).
    conv_blocks, pool_blocks: one ``block(wires)`` per layer (``execution.layer_blocks``).
    noise: ``noise(wires)`` adding one-qubit channels after each two-qubit block (``execution.Noise``),
      or None (then the result equals the statevector engine's, at 2**n times its cost).
    confusion: optional (n_qubits, 2, 2) readout confusion per wire (row: prepared bit, column: bit
      read), applied to the outcome probabilities before the readout (a device's readout error).

  Returns:
    (B, R) readout values, equal to ``default.mixed``'s on the same circuit.
  """
  dtype = jnp.result_type(features.dtype, jnp.complex64)
  one = jax.checkpoint(functools.partial(_sample, spec, conv_blocks, pool_blocks, noise, dtype, confusion))
  return jax.lax.map(one, features, batch_size=min(CHUNK, features.shape[0]))
