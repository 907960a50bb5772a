"""The statevector engine (``execution="statevector"``): real arithmetic on an interleaved state.

The circuit is ``qcnn.qcnn_circuit`` recorded and grouped as in ``statevector.py`` (``record``,
``program``: preparation, blocks of up to ``MAX_BLOCK_QUBITS`` fused gates, the dense suffix
block), but the state and its updates differ:

* State: real (B, 2, ..., 2, 2), float32 (float64 under x64): one axis per qubit, then the real
  and imaginary parts. Which wire sits on which axis is tracked while tracing (``_plan``), so
  axes move only when a block needs them to.
* Block: its wires are brought to the last qubit axes by at most one transpose (none when they are
  there already), then one real matmul with the (2**(k+1), 2**(k+1)) real embedding R of its
  unitary U (``real_embedding``: ``Re U ⊗ 1 + Im U ⊗ J``), the axes left where they are. On
  XLA:CPU a float32 matmul on interleaved parts costs about 1.6 passes over the state, a
  complex64 one 3.7 and the strided complex update of ``statevector.apply_matrix`` 7.3.
  Feature-dependent gates are batched matmuls, one R per sample. The dense suffix is the last
  block; its readout wires go last.
* Gradient: adjoint method (``evolve``, a ``jax.custom_vjp``) keeping only the final state. R is
  real orthogonal, so a block's inverse is its transpose: walking back, ψ_in = ψ_out R and
  λ_in = λ_out R (two matmuls with the same matrix, no conjugates, nothing concatenated), and
  ct_R = λ_outᵀ ψ_in is one dot over the rows; JAX differentiates U -> R -> gate angles outside.
* Preparation: the product state's factors (``statevector.factors``, per sample, differentiated
  by JAX) joined in their own wire order in real arithmetic, the last one multiplied in while the
  interleaved state is written (``initial_state``: one pass over the state, none to move axes).
* Batch: samples run in chunks of at most ``CHUNK_BYTES`` of state (``lax.map``), each chunk from
  its features to its readouts, so that no state of the whole batch is kept but the final one.

Exact expectations only (no shots, no noise), as ``statevector.py``; that engine stays selectable
as ``execution="statevector_v1"``, the reference this one was measured against.
"""

import functools
import itertools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import pennylane as qml

from qcnn_jax.models.quantum import qcnn, statevector
from qcnn_jax.models.quantum.statevector import HIGHEST, Block

# Batches whose state exceeds this many bytes run in chunks of samples (lax.map), preparation and
# readout included. At n = 12, batch 128 (4 MiB of state), 2-core CPU, the gradient took 42.5 ms
# with 2 MiB chunks against 51.7 ms in one piece (medians of 25 alternated rounds, loaded machine).
CHUNK_BYTES = 2 * 2**20
# Most qubits a block of fused gates acts on, at every width (in a prototype of this engine, 3-qubit
# blocks at n = 8 gave 1.58x TensorCircuit-NG's gradient throughput against 1.48x without fusion).
MAX_BLOCK_QUBITS = 3


class Step(NamedTuple):
  """How the engine applies one block: the state's axes before its matmul, its wires' order there."""

  perm: tuple[int, ...] | None  # transpose of the state's axes (batch, qubits, re/im) first; None: none
  wires: tuple[int, ...]  # the block's wires on the last qubit axes after ``perm``, in axis order
  per_sample: bool  # one matrix per sample


def _trailing(order: Sequence[int], wires: Sequence[int], last: Sequence[int]) -> tuple[int, ...]:
  """Order of ``wires`` on the last axes: kept as in ``order`` (wire of each axis), ``last`` after."""
  return tuple(sorted(wires, key=lambda w: (w in last, order.index(w))))


def _plan(blocks: Sequence[tuple[tuple[int, ...], bool]], initial: Sequence[int], last: Sequence[int]):
  """(steps, final wire order) of ``blocks`` given as (wires, per_sample) on a state whose axes hold
  the ``initial`` wires. A block whose wires are already the last axes (as a set; per-sample gates:
  in their own order, as their matrices come) moves nothing; any other brings them there with one
  transpose (``last``, the readout wires, after the others)."""
  order, steps, n_qubits = tuple(initial), [], len(initial)
  for wires, per_sample in blocks:
    k = len(wires)
    ready = order[n_qubits - k:] == tuple(wires) if per_sample else set(order[n_qubits - k:]) == set(wires)
    if ready:
      steps.append(Step(None, order[n_qubits - k:], per_sample))
      continue
    moved = tuple(wires) if per_sample else _trailing(order, wires, last)
    new = tuple(w for w in order if w not in wires) + moved
    steps.append(Step((0,) + tuple(1 + order.index(w) for w in new) + (n_qubits + 1,), moved, per_sample))
    order = new
  return tuple(steps), order


def real_embedding(matrix):
  """(..., 2d, 2d) real matrix R of a complex (..., d, d) ``matrix`` U acting on interleaved
  (real, imaginary) vectors: R[2i + a, 2j + b] = Re U[i, j] δ_ab + Im U[i, j] J_ab, J = [[0, -1], [1, 0]]."""
  dtype = matrix.real.dtype
  one, j = jnp.eye(2, dtype=dtype), jnp.array([[0, -1], [1, 0]], dtype)
  parts = matrix.real[..., :, None, :, None] * one[:, None, :] + matrix.imag[..., :, None, :, None] * j[:, None, :]
  d = matrix.shape[-1]
  return parts.reshape(matrix.shape[:-2] + (2 * d, 2 * d))


def _rows(state, step: Step):
  """``state`` after the step's transpose, as (B, M, 2d) rows of the block's interleaved amplitudes."""
  moved = state if step.perm is None else jnp.transpose(state, step.perm)
  return moved.reshape(state.shape[0], -1, 2 ** (len(step.wires) + 1))


def _times(rows, matrix):
  """(B, M, 2d) ``rows`` @ matrixᵀ: one matrix (2d, 2d) for all samples, or one per sample (B, 2d, 2d)."""
  if matrix.ndim == 3:
    return jnp.einsum("bmj,bij->bmi", rows, matrix, precision=HIGHEST)
  return jnp.matmul(rows, matrix.T, precision=HIGHEST)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def evolve(steps: tuple[Step, ...], state, matrices):
  """Applies each step's real ``matrices[i]`` (see ``real_embedding``) to a (B, 2, ..., 2, 2) state
  in order; returns the final state (its axes as the last step left them)."""
  for step, matrix in zip(steps, matrices):
    state = _times(_rows(state, step), matrix).reshape(state.shape)  # every qubit axis has size 2
  return state


def _evolve_fwd(steps, state, matrices):
  final = evolve(steps, state, matrices)
  return final, (final, matrices)


def _evolve_bwd(steps, residuals, ct):
  """Adjoint method from the final state ψ and its cotangent λ: per step, backwards, ψ_in = ψ_out R,
  λ_in = λ_out R (R orthogonal), ct_R = λ_outᵀ ψ_in summed over rows (per sample for per-sample R),
  then each state's axes put back where they were before the step's transpose."""
  psi, lam = residuals[0], ct
  ct_matrices = []
  for step, matrix in zip(reversed(steps), reversed(residuals[1])):
    shape = psi.shape
    rows_out = lam.reshape(shape[0], -1, matrix.shape[-1])
    psi_in = _times(psi.reshape(rows_out.shape), jnp.swapaxes(matrix, -1, -2))
    lam_in = _times(rows_out, jnp.swapaxes(matrix, -1, -2))
    if matrix.ndim == 3:
      ct_matrices.append(jnp.einsum("bmi,bmj->bij", rows_out, psi_in, precision=HIGHEST))
    else:
      flat = lambda x: x.reshape(-1, x.shape[-1])
      ct_matrices.append(jnp.matmul(flat(rows_out).T, flat(psi_in), precision=HIGHEST))
    psi, lam = psi_in.reshape(shape), lam_in.reshape(shape)
    if step.perm is not None:
      inverse = tuple(step.perm.index(a) for a in range(len(shape)))
      psi, lam = jnp.transpose(psi, inverse), jnp.transpose(lam, inverse)
  return lam, tuple(reversed(ct_matrices))


evolve.defvjp(_evolve_fwd, _evolve_bwd)


def _blocks(prog: statevector.Program) -> list[Block]:
  """The program's blocks and its dense suffix as the last, per-sample gates on their own wire order."""
  n_engine = len(prog.gates) - prog.n_suffix
  suffix = [Block(tuple(range(n_engine, len(prog.gates))), prog.suffix_wires)] if prog.n_suffix else []
  return [Block(b.gates, prog.gates[b.gates[0]].wires) if prog.gates[b.gates[0]].per_sample else b
          for b in prog.blocks] + suffix


def _initial_order(prep_ops, n_qubits: int) -> tuple[int, ...]:
  """Wire of each axis of the initial state: the product state's factors one after another (no axes
  to move when they are joined), or wire order for a StatePrep."""
  if len(prep_ops) == 1 and isinstance(prep_ops[0], qml.StatePrep):
    return tuple(range(n_qubits))
  return tuple(w for wires, _ in statevector.factors(prep_ops, n_qubits, jnp.complex64) for w in wires)


def _times_factor(re, im, factor):
  """(re, im) parts of the outer product of a tensor with parts (re, im) and a complex ``factor``."""
  shape = re.shape + (1,) * factor.ndim
  re, im = re.reshape(shape), im.reshape(shape)
  return re * factor.real - im * factor.imag, re * factor.imag + im * factor.real


def initial_state(prep_ops, n_qubits: int, dtype):
  """One sample's interleaved (2, ..., 2, 2) initial state, wires on axes as ``_initial_order``: a
  StatePrep's vector, or the product state's factors joined in real arithmetic (complex products
  as real and imaginary parts, so that their gradient is real arithmetic too: at n = 8 the
  preparation's gradient took 0.22 ms against 0.33 ms joined as complex tensors), the last one
  multiplied in while the interleaved state is written (one pass over the state, no axes moved)."""
  if len(prep_ops) == 1 and isinstance(prep_ops[0], qml.StatePrep):
    state = prep_ops[0].state_vector(wire_order=range(n_qubits)).astype(dtype)
    return jnp.stack([state.real, state.imag], -1).reshape((2,) * (n_qubits + 1))
  parts = [tensor for _, tensor in statevector.factors(prep_ops, n_qubits, dtype)]
  re, im = parts[0].real, parts[0].imag
  for factor in parts[1:]:
    re, im = _times_factor(re, im, factor)
  return jnp.stack([re, im], -1)


def _sample_inputs(spec: qcnn.QCNNSpec, prog: statevector.Program, dtype, conv_blocks, pool_blocks, features):
  """One sample's interleaved initial state (``initial_state``) and the real embeddings of its
  feature-dependent gates."""
  ops = statevector.record(spec, features, conv_blocks, pool_blocks).operations
  mats = [real_embedding(op.matrix().astype(dtype)) for op, gate in zip(ops[prog.n_prep:], prog.gates)
          if gate.per_sample]
  return initial_state(ops[: prog.n_prep], spec.n_qubits, dtype), mats


def qcnn_statevector(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks, *, max_block_qubits: int | None = None):
  """Batched QCNN forward on this engine: (B, F) features -> (B, R) readout values, equal to the
  PennyLane modes' ``qcnn_apply`` output (arguments as ``statevector.qcnn_statevector``;
  ``max_block_qubits`` None: ``MAX_BLOCK_QUBITS`` at every width)."""
  tape = statevector.record(spec, jnp.zeros(spec.n_features, features.dtype), conv_blocks, pool_blocks)
  prog = statevector.program(tape, spec.n_qubits, max_block_qubits or MAX_BLOCK_QUBITS)
  ops = tape.operations[prog.n_prep:]
  dtype = jnp.result_type(features.dtype, jnp.complex64, *[op.matrix().dtype for op, gate in zip(ops, prog.gates)
                                                            if not gate.per_sample])
  blocks = _blocks(prog)
  readout = [w for _, wires in prog.measurements for w in wires]
  steps, final = _plan([(b.wires, prog.gates[b.gates[0]].per_sample) for b in blocks],
                       _initial_order(tape.operations[: prog.n_prep], spec.n_qubits), readout)
  sample = functools.partial(_sample_inputs, spec, prog, dtype, conv_blocks, pool_blocks)
  per_sample = itertools.count()  # index of each per-sample block's matrix in sample_mats
  mats = [next(per_sample) if step.per_sample else real_embedding(statevector.block_matrix(
      [ops[i].matrix() for i in b.gates], [prog.gates[i].wires for i in b.gates], step.wires, dtype))
      for b, step in zip(blocks, steps)]
  measurements = [(kind, tuple(final.index(w) for w in wires)) for kind, wires in prog.measurements]

  def run(chunk_features):  # (C, F) features -> readouts, preparation and readout in the chunk too
    state, sample_mats = jax.vmap(sample)(chunk_features)
    state = evolve(steps, state, tuple(sample_mats[m] if isinstance(m, int) else m for m in mats))
    return statevector.measure_probs(jnp.sum(state**2, axis=-1).reshape(state.shape[0], -1), spec.n_qubits,
                                     measurements)

  raw = statevector.chunked(run, features, 2 ** (spec.n_qubits + 1) * jnp.finfo(dtype).bits // 8, CHUNK_BYTES)
  return qcnn.postprocess(spec, raw[0] if prog.measurements[0][0] == "probs" else raw)
