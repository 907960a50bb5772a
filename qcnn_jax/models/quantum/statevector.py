"""Pure-JAX statevector execution of ``qcnn.qcnn_circuit`` (no PennyLane device).

The circuit is not re-defined here: ``qcnn.qcnn_circuit`` is recorded on a PennyLane tape with
each layer's two-qubit block as one ``qml.QubitUnitary`` (the "fused" matrices), and every
recorded operation is applied through its own ``op.matrix()`` to a batched state of shape
(B, 2**n_qubits), wire 0 being the most significant bit (PennyLane's order).

* Encoding: the single-qubit operations before the first multi-qubit one (angle encodings) build
  the initial state as a Kronecker product of single-qubit states; a leading ``StatePrep``
  (amplitude encoding) is the initial state itself. Both are computed per sample (vmap).
* Gates: a k-qubit matrix (k <= 2), shared (2**k, 2**k) or per sample (B, 2**k, 2**k), is
  applied as 2**k scaled strided slices of the state summed per output slice, which XLA fuses into
  one pass over the state (on CPU about twice as fast as a dot with transposes).
* Gradient: adjoint method in a ``jax.custom_vjp``: the backward pass uncomputes the state with
  U† instead of storing it after every gate, so memory stays at a few copies of the state
  whatever the depth; batches whose state exceeds ``CHUNK_BYTES`` run chunk by chunk
  (``lax.map``), which bounds it further (n=16, B=128, complex64: 64 MiB for the whole state).
* Readout: probabilities of the readout wires (others marginalised), <Z> from them, then
  ``qcnn.postprocess``, as the PennyLane modes do.

Exact expectations only (no shots, no noise). complex64, or complex128 under x64.
"""

import functools
import itertools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import pennylane as qml
from pennylane.measurements import ExpectationMP, ProbabilityMP

from qcnn_jax.models.quantum import qcnn


# Samples are simulated in chunks of at most this many bytes of state, which keeps the passes over
# the state in the CPU's cache; a whole batch that fits runs in one piece.
CHUNK_BYTES = 4 * 2**20


class Gate(NamedTuple):
  """A recorded operation: its wires and whether its matrix depends on the input features."""

  wires: tuple[int, ...]
  per_sample: bool


class Program(NamedTuple):
  """Static structure of a recorded circuit: what runs where, without the matrices."""

  n_prep: int  # leading operations that build the initial state
  gates: tuple[Gate, ...]  # the operations after them, in order
  measurements: tuple[tuple[str, tuple[int, ...]], ...]  # ("expval" | "probs", wires)


def record(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks) -> qml.tape.QuantumScript:
  """Tape of ``qcnn.qcnn_circuit`` for one sample's (F,) ``features`` and per-layer blocks."""
  return qml.tape.make_qscript(qcnn.qcnn_circuit)(spec, features, conv_blocks, pool_blocks)


def _n_prep(operations) -> int:
  """Number of leading operations that prepare the initial state (StatePrep, or 1-qubit gates)."""
  if operations and isinstance(operations[0], qml.StatePrep):
    return 1
  return next((i for i, op in enumerate(operations) if len(op.wires) > 1), len(operations))


def _measurement(mp) -> tuple[str, tuple[int, ...]]:
  """("probs", wires) or ("expval", (wire,)) of a recorded measurement."""
  if isinstance(mp, ProbabilityMP) and mp.obs is None:
    return "probs", tuple(mp.wires)
  if isinstance(mp, ExpectationMP) and isinstance(mp.obs, qml.PauliZ):
    return "expval", tuple(mp.wires)
  raise NotImplementedError(f"statevector execution supports probs and <Z> readouts, not {mp}")


def program(tape: qml.tape.QuantumScript) -> Program:
  """Static structure of a recorded circuit (``record`` with any features)."""
  ops = tape.operations
  n_prep = _n_prep(ops)
  for op in ops[n_prep:]:
    if len(op.wires) > 2 or isinstance(op, qml.StatePrep):
      raise NotImplementedError(f"statevector execution cannot apply {op} after state preparation")
  gates = tuple(Gate(tuple(op.wires), not isinstance(op, qml.QubitUnitary)) for op in ops[n_prep:])
  return Program(n_prep, gates, tuple(_measurement(mp) for mp in tape.measurements))


def _initial_state(prep_ops, n_qubits: int, dtype):
  """(2**n,) state the preparation operations produce from |0...0>."""
  if len(prep_ops) == 1 and isinstance(prep_ops[0], qml.StatePrep):
    return prep_ops[0].state_vector(wire_order=range(n_qubits)).reshape(-1).astype(dtype)
  qubits = [jnp.array([1, 0], dtype) for _ in range(n_qubits)]
  for op in prep_ops:
    wire = op.wires[0]
    qubits[wire] = op.matrix().astype(dtype) @ qubits[wire]
  return functools.reduce(jnp.kron, qubits)


def _sample_inputs(spec: qcnn.QCNNSpec, prog: Program, dtype, conv_blocks, pool_blocks, features):
  """One sample's initial state (2**n,) and the matrices of its feature-dependent gates."""
  ops = record(spec, features, conv_blocks, pool_blocks).operations
  state = _initial_state(ops[: prog.n_prep], spec.n_qubits, dtype)
  mats = [op.matrix().astype(dtype) for op, gate in zip(ops[prog.n_prep:], prog.gates) if gate.per_sample]
  return state, mats


class _View(NamedTuple):
  """(B, 2**n) state seen as (B, 2**w0, 2, 2**(w1-w0-1), 2, ..., rest) around k sorted wires."""

  sizes: tuple[int, ...]
  order: tuple[int, ...]  # gate qubit (index into wires) of each 2-sized axis, ascending wire

  @classmethod
  def of(cls, shape, wires: Sequence[int]):
    batch, dim = shape
    n = dim.bit_length() - 1
    order = tuple(sorted(range(len(wires)), key=lambda i: wires[i]))
    sizes, previous = [batch], -1
    for i in order:
      sizes += [2 ** (wires[i] - previous - 1), 2]
      previous = wires[i]
    sizes.append(2 ** (n - previous - 1))
    return cls(tuple(sizes), order)

  def take(self, view, bits):
    """Slice of ``view`` with the gate's qubits fixed to ``bits`` (gate-qubit order)."""
    index = [slice(None)] * len(self.sizes)
    for position, i in enumerate(self.order):
      index[2 + 2 * position] = bits[i]
    return view[tuple(index)]

  def stack(self, fn):
    """Array of the view's shape whose slice at gate bits ``bits`` is ``fn(bits)``."""
    k = len(self.order)

    def build(view_bits):
      if len(view_bits) == k:
        bits = [0] * k
        for position, i in enumerate(self.order):
          bits[i] = view_bits[position]
        return fn(tuple(bits))
      depth = len(view_bits)
      return jnp.stack([build(view_bits + (b,)) for b in range(2)], axis=2 + depth)

    return build(())


def _bits(k: int) -> list[tuple[int, ...]]:
  """All k-bit tuples, (0, ..., 0) first."""
  return list(itertools.product((0, 1), repeat=k))


def apply_matrix(state, matrix, wires: Sequence[int]):
  """Applies a k-qubit ``matrix`` (k = 1, 2) to ``wires`` of a batched state.

  Args:
    state: (B, 2**n) amplitudes, wire 0 most significant.
    matrix: (2**k, 2**k) shared by all samples, or (B, 2**k, 2**k) one per sample.
    wires: the k wires, in the matrix's order.

  Returns:
    (B, 2**n) amplitudes. Each output slice is a sum of 2**k scaled input slices, which XLA fuses
    into one pass over the state.
  """
  k = len(wires)
  view_of = _View.of(state.shape, wires)
  view = state.reshape(view_of.sizes)
  coeffs = matrix.reshape(matrix.shape[:-2] + (2,) * (2 * k))
  coeff_shape = (state.shape[0],) + (1,) * (k + 1) if matrix.ndim == 3 else ()

  def output(out_bits):
    return sum(coeffs[(Ellipsis,) + out_bits + in_bits].reshape(coeff_shape) * view_of.take(view, in_bits)
               for in_bits in _bits(k))

  return view_of.stack(output).reshape(state.shape)


def _adjoint(matrix):
  """U† of a (..., d, d) matrix."""
  return jnp.conj(jnp.swapaxes(matrix, -1, -2))


def _outer_sum(pair, wires: Sequence[int], per_sample: bool):
  """sum over amplitudes of conj(pair[1])[.. i ..] * pair[0][.. j ..]: (2**k, 2**k), summed over
  samples unless ``per_sample`` ((B, 2**k, 2**k) then); ``pair``: (2, B, 2**n).

  One einsum on the gate's view of the state, which XLA lowers to transposes and a dot (its CPU
  reductions of complex products are several times slower).
  """
  _, batch, dim = pair.shape
  view_of = _View.of((batch, dim), wires)
  view = pair.reshape((2,) + view_of.sizes)
  k = len(wires)
  outs, ins = "ST"[:k], "UV"[:k]  # gate axes of the two operands, in view order

  def subscripts(gate_letters):  # "a" batch, "bcd" the untouched blocks between the gate axes
    return "a" + "".join("bcd"[p] + gate_letters[p] for p in range(k)) + "bcd"[k]

  gate_order = [view_of.order.index(i) for i in range(k)]
  result = ("a" if per_sample else "") + "".join(outs[p] for p in gate_order) + "".join(ins[p] for p in gate_order)
  summed = jnp.einsum(f"{subscripts(outs)},{subscripts(ins)}->{result}", jnp.conj(view[1]), view[0])
  return summed.reshape(summed.shape[: int(per_sample)] + (2**k, 2**k))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def evolve(wires: tuple[tuple[int, ...], ...], state, matrices):
  """Applies ``matrices[i]`` on ``wires[i]`` in order to a (B, 2**n) state (see apply_matrix)."""
  for gate_wires, matrix in zip(wires, matrices):
    state = apply_matrix(state, matrix, gate_wires)
  return state


def _evolve_fwd(wires, state, matrices):
  final = evolve(wires, state, matrices)
  return final, (final, matrices)


def _evolve_bwd(wires, residuals, ct):
  """Adjoint method, walking the gates backwards from the final state ψ and its cotangent λ.

  For out = U in, JAX's cotangents are λ_in = U^T λ_out and ct_U = sum λ_out in^T (no
  conjugation). With μ = conj(λ) both updates are the same map, in = U† out and μ_in = U† μ_out,
  so ψ and μ are stacked and uncomputed by one ``apply_matrix``; and
  ct_U = sum λ_out (U† ψ_out)^T = (sum conj(μ_out) ψ_out^T) conj(U).
  """
  state, matrices = residuals
  batch, dim = state.shape
  pair = jnp.stack([state, jnp.conj(ct)])  # (2, B, 2**n): ψ, μ
  ct_matrices = []
  for gate_wires, matrix in zip(reversed(wires), reversed(matrices)):
    per_sample = matrix.ndim == 3
    ct_matrices.append(_outer_sum(pair, gate_wires, per_sample) @ jnp.conj(matrix))
    adjoint = _adjoint(matrix)
    stacked = jnp.concatenate([adjoint, adjoint]) if per_sample else adjoint
    pair = apply_matrix(pair.reshape(2 * batch, dim), stacked, gate_wires).reshape(2, batch, dim)
  return jnp.conj(pair[1]), tuple(reversed(ct_matrices))


evolve.defvjp(_evolve_fwd, _evolve_bwd)


def measure(state, n_qubits: int, measurements) -> list:
  """Readouts of a (B, 2**n) state, one per ``Program.measurements`` entry: (B,) <Z> of a wire,
  or (B, 2**r) probabilities of r wires in the listed order (other wires marginalised)."""
  probs = jnp.abs(state.reshape((state.shape[0],) + (2,) * n_qubits)) ** 2
  results = []
  for kind, wires in measurements:
    kept = jnp.sum(probs, axis=tuple(1 + w for w in range(n_qubits) if w not in wires))
    kept = jnp.transpose(kept, [0] + [1 + sorted(wires).index(w) for w in wires])
    results.append(kept.reshape(state.shape[0], -1) if kind == "probs" else kept[:, 0] - kept[:, 1])
  return results


def qcnn_statevector(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks):
  """Batched QCNN forward on the statevector engine.

  Args:
    spec: circuit options.
    features: (B, F) encoding inputs (radians, or amplitudes).
    conv_blocks, pool_blocks: one ``block(wires)`` per layer. ``qml.QubitUnitary`` operations
      (the "fused" blocks) are applied with one matrix shared by all samples; any other
      operation is evaluated per sample, so gate-by-gate blocks also work, only slower.

  Returns:
    (B, R) readout values, equal to the PennyLane modes' ``qcnn_apply`` output.
  """
  tape = record(spec, jnp.zeros(spec.n_features, features.dtype), conv_blocks, pool_blocks)
  prog = program(tape)
  shared = [op.matrix() for op, gate in zip(tape.operations[prog.n_prep:], prog.gates) if not gate.per_sample]
  dtype = jnp.result_type(features.dtype, jnp.complex64, *[m.dtype for m in shared])
  sample = functools.partial(_sample_inputs, spec, prog, dtype, conv_blocks, pool_blocks)
  state, sample_mats = jax.vmap(sample)(features)
  wires = tuple(gate.wires for gate in prog.gates)
  shared = [m.astype(dtype) for m in shared]

  def run(chunk_state, chunk_sample_mats):
    shared_iter, sample_iter = iter(shared), iter(chunk_sample_mats)
    matrices = tuple(next(sample_iter) if gate.per_sample else next(shared_iter) for gate in prog.gates)
    return evolve(wires, chunk_state, matrices)

  batch, dim = state.shape
  chunk = max(d for d in range(1, batch + 1)
              if batch % d == 0 and (d == 1 or d * dim * state.dtype.itemsize <= CHUNK_BYTES))
  if chunk == batch:
    state = run(state, sample_mats)
  else:  # one chunk of samples at a time, so that the gates run in cache
    split = lambda x: x.reshape((batch // chunk, chunk) + x.shape[1:])
    state = jax.lax.map(lambda xs: run(*xs), (split(state), [split(m) for m in sample_mats]))
    state = state.reshape(batch, dim)
  raw = measure(state, spec.n_qubits, prog.measurements)
  return qcnn.postprocess(spec, raw[0] if prog.measurements[0][0] == "probs" else raw)
