"""Pure-JAX statevector execution of ``qcnn.qcnn_circuit`` (no PennyLane device).

The circuit is not re-defined here: ``qcnn.qcnn_circuit`` is recorded on a PennyLane tape with
each layer's two-qubit block as one ``qml.QubitUnitary`` (the "fused" matrices), and every
recorded operation is applied through its own ``op.matrix()`` to a batched state of shape
(B, 2**n_qubits) whose axes hold the wires in PennyLane's order (wire 0 most significant), except
that the wires of the dense suffix block (below) are moved to the last axes (``_positions``).

* State preparation: a leading ``StatePrep`` (amplitude encoding) is the initial state itself;
  otherwise the leading operations that leave the state a product of factors smaller than the
  register (the encoding's one-qubit gates, then the first conv gates on disjoint pairs and those
  joining them until one factor would span every qubit) are applied to the small factors, which
  are then joined into the full state. Computed per sample (vmap), differentiated by JAX.
* Gates: a k-qubit matrix (k <= 3), shared (2**k, 2**k) or per sample (B, 2**k, 2**k), is
  applied as 2**k scaled strided slices of the state summed per output slice, which XLA fuses into
  one pass over the state (on CPU about twice as fast as a dot with transposes). A pass costs
  about the same for 1, 2 or 3 qubits, so consecutive shared gates are first multiplied into
  blocks of up to ``MAX_BLOCK_QUBITS`` qubits (``_blocks``; a gate joins the last block that
  touches its wires, past later blocks it commutes with): fewer passes, forward and backward
  (from ``FUSE_MIN_QUBITS`` qubits on; below, the state is small and arithmetic dominates;
  ``max_block_qubits`` overrides both, 1 turns fusion off).
* Suffix: a QCNN's gates after its first pooling layer act on few qubits; the trailing shared
  gates are multiplied into one dense block of up to ``MAX_SUFFIX_QUBITS`` qubits (where the
  cost estimate in ``_suffix`` says it saves work) and applied with one matmul; its wires sit on
  the state's last axes throughout, so no axes move around that matmul.
* Gradient: adjoint method in a ``jax.custom_vjp`` for the gates: the backward pass uncomputes
  the state with U† instead of storing it after every gate, so memory stays at a few copies of
  the state whatever the depth; batches whose state exceeds ``CHUNK_BYTES`` run chunk by chunk
  (``lax.map``), which keeps the passes (the backward's two stacked states included) in the
  CPU's cache and bounds memory further (n=16, B=128, complex64: 64 MiB for the whole state).
  Preparation and suffix are differentiated by JAX (a few states of residuals).
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
# the state in the CPU's cache; a whole batch that fits runs in one piece. (At 12 qubits, batch 128,
# 2-core CPU with 1 MiB of L2 per core: 2 MiB gave 1.6x the gradient throughput of 4 MiB.)
CHUNK_BYTES = 2 * 2**20
# Every dot of the engine runs in full float32 (complex64): on GPUs the default precision lets
# matmuls round their inputs to TF32 (10-bit mantissa), which moved outputs by 3e-4 on an H100.
HIGHEST = jax.lax.Precision.HIGHEST


class Gate(NamedTuple):
  """A recorded operation: its wires and whether its matrix depends on the input features."""

  wires: tuple[int, ...]
  per_sample: bool


class Block(NamedTuple):
  """Gates the engine applies as one matrix: indices into ``Program.gates`` and their wires."""

  gates: tuple[int, ...]  # ascending
  wires: tuple[int, ...]  # ascending union of the gates' wires


class Program(NamedTuple):
  """Static structure of a recorded circuit: what runs where, without the matrices."""

  n_prep: int  # leading operations that build the initial state
  gates: tuple[Gate, ...]  # the operations after them, in order
  n_suffix: int  # trailing gates applied together as one dense block on ``suffix_wires``
  suffix_wires: tuple[int, ...]  # ascending
  measurements: tuple[tuple[str, tuple[int, ...]], ...]  # ("expval" | "probs", wires)
  blocks: tuple[Block, ...]  # the gates before the suffix, grouped into the matrices the engine
                             # applies, in order (`_blocks`)
  positions: tuple[int, ...]  # state axis of each wire (`_positions`); the fields above name wires


def record(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks, noise=None) -> qml.tape.QuantumScript:
  """Tape of ``qcnn.qcnn_circuit`` for one sample's (F,) ``features`` and per-layer blocks (with
  ``noise(wires)`` channels after each two-qubit block when given)."""
  return qml.tape.make_qscript(qcnn.qcnn_circuit)(spec, features, conv_blocks, pool_blocks, noise)


def _n_prep(operations, n_qubits: int) -> int:
  """Number of leading operations that build the initial state: a leading StatePrep, or the
  longest prefix after which the state is still a product of factors of fewer than ``n_qubits``
  qubits each (the encoding's one-qubit gates and, e.g., a first conv sublayer on disjoint pairs).
  """
  if operations and isinstance(operations[0], qml.StatePrep):
    return 1
  factor_of = {w: frozenset([w]) for w in range(n_qubits)}
  for i, op in enumerate(operations):
    if len(op.wires) > 2 or isinstance(op, qml.StatePrep):
      return i
    merged = frozenset().union(*(factor_of[w] for w in op.wires))
    if len(merged) == n_qubits:
      return i
    for w in merged:
      factor_of[w] = merged
  return len(operations)


def measurement(mp) -> tuple[str, tuple[int, ...]]:
  """("probs", wires) or ("expval", (wire,)) of a recorded measurement."""
  if isinstance(mp, ProbabilityMP) and mp.obs is None:
    return "probs", tuple(mp.wires)
  if isinstance(mp, ExpectationMP) and isinstance(mp.obs, qml.PauliZ):
    return "expval", tuple(mp.wires)
  raise NotImplementedError(f"statevector execution supports probs and <Z> readouts, not {mp}")


def program(tape: qml.tape.QuantumScript, n_qubits: int, max_block_qubits: int | None = None) -> Program:
  """Static structure of a recorded ``n_qubits`` circuit (``record`` with any features).

  ``max_block_qubits``: most qubits a block of fused gates may act on (1: no fusion); None for
  ``MAX_BLOCK_QUBITS`` from ``FUSE_MIN_QUBITS`` qubits on and 1 below.
  """
  ops = tape.operations
  n_prep = _n_prep(ops, n_qubits)
  for op in ops[n_prep:]:
    if len(op.wires) > 2 or isinstance(op, qml.StatePrep):
      raise NotImplementedError(f"statevector execution cannot apply {op} after state preparation")
  gates = tuple(Gate(tuple(op.wires), not isinstance(op, qml.QubitUnitary)) for op in ops[n_prep:])
  n_suffix, suffix_wires = _suffix(gates)
  if max_block_qubits is None:
    max_block_qubits = MAX_BLOCK_QUBITS if n_qubits >= FUSE_MIN_QUBITS else 1
  return Program(n_prep, gates, n_suffix, suffix_wires, tuple(measurement(mp) for mp in tape.measurements),
                 _blocks(gates[: len(gates) - n_suffix], max_block_qubits), _positions(n_qubits, suffix_wires))


def _positions(n_qubits: int, suffix_wires: Sequence[int]) -> tuple[int, ...]:
  """State axis of each wire: the suffix block's wires last, in ascending order, the others before
  them in theirs, so that the dense suffix block multiplies contiguous runs of amplitudes (no axes
  to move before and after its matmul)."""
  order = [w for w in range(n_qubits) if w not in suffix_wires] + list(suffix_wires)
  return tuple(order.index(w) for w in range(n_qubits))


# Most qubits a block of fused gates may act on, and the circuit width from which gates are fused.
# One pass of a k-qubit matrix over a large state (n=16, batch 128, chunked, 2-core CPU) takes about
# the same time for k = 1 and 2, 1.2x for k = 3, 2.8x for k = 4. Measured side by side (batch 128,
# `experiments.benchmarks.qcnn`, project vs project_unfused): forward 1.14x / 1.11x / 1.12x and
# gradient 1.05x / 1.09x / 1.14x at n = 10 / 12 / 16; at n = 8 the whole batch's state is in cache,
# arithmetic dominates and fusing costs 12%.
MAX_BLOCK_QUBITS = 3
FUSE_MIN_QUBITS = 10


def _blocks(gates: Sequence[Gate], max_qubits: int) -> tuple[Block, ...]:
  """Groups of ``gates`` to apply as one matrix each, in order of their first gate.

  A shared gate joins the last group that touches any of its wires, if that group is shared and
  stays within ``max_qubits`` qubits: the groups after it act on other wires, so the gate
  commutes with them and may run before them. Per-sample gates stay alone.
  """
  groups: list[list[int]] = []
  wires: list[set[int]] = []
  for i, gate in enumerate(gates):
    touching = [g for g, w in enumerate(wires) if w & set(gate.wires)]
    last = touching[-1] if touching else None
    if (last is not None and not gate.per_sample and not gates[groups[last][0]].per_sample
        and len(wires[last] | set(gate.wires)) <= max_qubits):
      groups[last].append(i)
      wires[last] |= set(gate.wires)
    else:
      groups.append([i])
      wires.append(set(gate.wires))
  return tuple(Block(tuple(g), tuple(sorted(w))) for g, w in zip(groups, wires))


# Most qubits a fused suffix block may act on (its matrix is 2**k x 2**k).
MAX_SUFFIX_QUBITS = 6


def _suffix(gates: Sequence[Gate]) -> tuple[int, tuple[int, ...]]:
  """(count, wires) of the trailing shared gates worth applying as one dense block.

  A QCNN's last layers act on few qubits, so the gates after the first pooling layer fit a block
  of a few qubits. Cost per amplitude, as multiply-adds: a two-qubit gate 4, a dense k-qubit block
  2**k plus about 8 for moving its axes; the count that saves most is chosen (0 if none saves).
  """
  best, best_saved, wires = (0, ()), 0, set()
  for count in range(1, len(gates) + 1):
    gate = gates[-count]
    wires |= set(gate.wires)
    if gate.per_sample or len(wires) > MAX_SUFFIX_QUBITS:
      break
    saved = 4 * count - (2 ** len(wires) + 8)
    if saved > best_saved:
      best, best_saved = (count, tuple(sorted(wires))), saved
  return best


def factors(prep_ops, n_qubits: int, dtype) -> list[tuple[tuple[int, ...], object]]:
  """(wires, tensor (2,) * len(wires)) of each factor of the product state the preparation
  operations (no StatePrep) produce from |0...0>, ordered by first wire. Each qubit starts as its
  own factor; a gate joins the factors of its wires (outer product) and is applied to that small
  tensor alone."""
  factor_of = {w: ((w,), jnp.array([1, 0], dtype)) for w in range(n_qubits)}  # wire -> (wires, tensor)
  for op in prep_ops:
    gate_wires = tuple(op.wires)
    wires, tensor = join(list({factor_of[w][0]: factor_of[w] for w in gate_wires}.values()))
    k, axes = len(gate_wires), [wires.index(w) for w in gate_wires]
    matrix = op.matrix().astype(dtype).reshape((2,) * (2 * k))
    tensor = jnp.moveaxis(jnp.tensordot(matrix, tensor, axes=(list(range(k, 2 * k)), axes), precision=HIGHEST), range(k), axes)
    for w in wires:
      factor_of[w] = (wires, tensor)
  return list({factor_of[w][0]: factor_of[w] for w in range(n_qubits)}.values())


def join(parts):
  """(wires, tensor) of the outer product of (wires, tensor) ``parts``, axes in the parts' order (a
  broadcast product: as a dot under vmap, XLA:CPU ran it as a slow batched complex dot)."""
  wires, tensor = parts[0]
  for more_wires, more in parts[1:]:
    wires, tensor = wires + more_wires, tensor.reshape(tensor.shape + (1,) * more.ndim) * more
  return wires, tensor


def _initial_state(prep_ops, positions: Sequence[int], dtype):
  """(2**n,) state the preparation operations produce from |0...0>, wire w on axis positions[w]:
  a leading StatePrep's vector, or the product of ``factors`` with its axes moved."""
  n_qubits = len(positions)
  order = sorted(range(n_qubits), key=lambda w: positions[w])  # the wire on each axis
  if len(prep_ops) == 1 and isinstance(prep_ops[0], qml.StatePrep):
    return prep_ops[0].state_vector(wire_order=order).reshape(-1).astype(dtype)
  wires, tensor = join(factors(prep_ops, n_qubits, dtype))
  return jnp.transpose(tensor, [wires.index(w) for w in order]).reshape(-1)


def _sample_inputs(spec: qcnn.QCNNSpec, prog: Program, dtype, conv_blocks, pool_blocks, features):
  """One sample's initial state (2**n,) and the matrices of its feature-dependent gates."""
  ops = record(spec, features, conv_blocks, pool_blocks).operations
  state = _initial_state(ops[: prog.n_prep], prog.positions, dtype)
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
  """Applies a k-qubit ``matrix`` (k = 1, 2, 3) to ``wires`` of a batched state.

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


def apply_dense(state, matrix, wires: Sequence[int]):
  """Applies a shared (2**k, 2**k) ``matrix`` on ascending ``wires`` of a (B, 2**n) state: the
  wires' axes are moved last and one matmul (B * 2**(n-k), 2**k) @ matrix^T does the rest."""
  batch, dim = state.shape
  n, k = dim.bit_length() - 1, len(wires)
  tensor = jnp.moveaxis(state.reshape((batch,) + (2,) * n), [1 + w for w in wires], range(-k, 0))
  moved_shape = tensor.shape
  tensor = jnp.matmul(tensor.reshape(-1, 2**k), matrix.T, precision=HIGHEST).reshape(moved_shape)
  return jnp.moveaxis(tensor, range(-k, 0), [1 + w for w in wires]).reshape(batch, dim)


def embed(matrix, positions: Sequence[int], k: int):
  """(2**k, 2**k) matrix of a gate ``matrix`` acting on ``positions`` of k qubits (position 0 most
  significant), identity on the others: a Kronecker product with the identity, axes permuted."""
  g = len(positions)
  full = jnp.kron(matrix, jnp.eye(2 ** (k - g), dtype=matrix.dtype)).reshape((2,) * (2 * k))
  order = list(positions) + [q for q in range(k) if q not in positions]  # qubit of each axis now
  perm = [order.index(q) for q in range(k)]
  return jnp.transpose(full, perm + [k + p for p in perm]).reshape(2**k, 2**k)


def block_matrix(matrices, gate_wires, wires: Sequence[int], dtype):
  """(2**k, 2**k) matrix of ``matrices[i]`` applied on ``gate_wires[i]`` in order, on the k
  ascending ``wires``: the product of the gates embedded in k qubits (a few ops per gate, so its
  gradient compiles quickly)."""
  local = {w: i for i, w in enumerate(wires)}
  block = jnp.eye(2 ** len(wires), dtype=dtype)
  for matrix, gw in zip(matrices, gate_wires):
    block = jnp.matmul(embed(matrix.astype(dtype), [local[w] for w in gw], len(wires)), block, precision=HIGHEST)
  return block


def _adjoint(matrix):
  """U† of a (..., d, d) matrix."""
  return jnp.conj(jnp.swapaxes(matrix, -1, -2))


def _outer_sum(mu, psi, wires: Sequence[int], per_sample: bool):
  """sum over amplitudes of conj(mu)[.. i ..] * psi[.. j ..] on the gate's ``wires``: (2**k, 2**k),
  summed over samples unless ``per_sample`` ((B, 2**k, 2**k) then); ``mu``, ``psi``: (B, 2**n).

  The gate axes are moved last and one dot contracts the rest (a dot with them in place is
  lowered to the same transposes, slower on XLA:CPU at 12 qubits; a reduction of complex products
  per matrix entry is several times slower still).
  """
  batch, dim = psi.shape
  view_of = _View.of((batch, dim), wires)
  k = len(wires)
  gate_axes = [2 + 2 * view_of.order.index(i) for i in range(k)]

  def gate_last(state):
    moved = jnp.moveaxis(state.reshape(view_of.sizes), gate_axes, range(-k, 0))
    return moved.reshape((batch, -1, 2**k) if per_sample else (-1, 2**k))

  if per_sample:
    return jnp.einsum("bpi,bpj->bij", jnp.conj(gate_last(mu)), gate_last(psi), precision=HIGHEST)
  return jnp.matmul(jnp.conj(gate_last(mu)).T, gate_last(psi), precision=HIGHEST)


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
  pair = jnp.concatenate([state, jnp.conj(ct)])  # (2B, 2**n): ψ, μ
  ct_matrices = []
  for gate_wires, matrix in zip(reversed(wires), reversed(matrices)):
    per_sample = matrix.ndim == 3
    ct_matrices.append(jnp.matmul(_outer_sum(pair[batch:], pair[:batch], gate_wires, per_sample), jnp.conj(matrix),
                                  precision=HIGHEST))
    adjoint = _adjoint(matrix)
    pair = apply_matrix(pair, jnp.concatenate([adjoint, adjoint]) if per_sample else adjoint, gate_wires)
  return jnp.conj(pair[batch:]), tuple(reversed(ct_matrices))


evolve.defvjp(_evolve_fwd, _evolve_bwd)


def measure(state, n_qubits: int, measurements) -> list:
  """Readouts of a (B, 2**n) state, one per ``Program.measurements`` entry (see ``measure_probs``)."""
  probs = state.real**2 + state.imag**2  # |.|**2 would differentiate through a complex division
  return measure_probs(probs, n_qubits, measurements)


def measure_probs(probs, n_qubits: int, measurements) -> list:
  """Readouts of (B, 2**n) basis probabilities, one per ``measurement`` entry: (B,) <Z> of a wire,
  or (B, 2**r) probabilities of r wires in the listed order (other wires marginalised)."""
  probs = probs.reshape((probs.shape[0],) + (2,) * n_qubits)
  results = []
  for kind, wires in measurements:
    kept = jnp.sum(probs, axis=tuple(1 + w for w in range(n_qubits) if w not in wires))
    kept = jnp.transpose(kept, [0] + [1 + sorted(wires).index(w) for w in wires])
    results.append(kept.reshape(probs.shape[0], -1) if kind == "probs" else kept[:, 0] - kept[:, 1])
  return results


def _fuse(blocks: Sequence[Block], gate_wires, gate_mats, dtype) -> list[tuple[tuple[int, ...], object]]:
  """(wires, matrix) of each of ``blocks`` (``Program.blocks``): a lone gate as recorded (its
  matrix may be a per-sample index), a group of shared gates as their product on its ascending wires."""
  out = []
  for block in blocks:
    if len(block.gates) == 1:
      out.append((gate_wires[block.gates[0]], gate_mats[block.gates[0]]))
    else:
      out.append((block.wires, block_matrix([gate_mats[i] for i in block.gates],
                                            [gate_wires[i] for i in block.gates], block.wires, dtype)))
  return out


def chunked(run, inputs, sample_bytes: int, chunk_bytes: int):
  """``run(inputs)`` (a pytree of (B, ...) arrays to a pytree of (B, ...) arrays) on chunks of
  samples of at most ``chunk_bytes`` of state (``sample_bytes`` per sample) one after another
  (``lax.map``, so that the passes over the state run in cache), or on the whole batch if it fits."""
  batch = jax.tree.leaves(inputs)[0].shape[0]
  chunk = max(d for d in range(1, batch + 1) if batch % d == 0 and (d == 1 or d * sample_bytes <= chunk_bytes))
  if chunk == batch:
    return run(inputs)
  outputs = jax.lax.map(run, jax.tree.map(lambda x: x.reshape((batch // chunk, chunk) + x.shape[1:]), inputs))
  return jax.tree.map(lambda x: x.reshape((batch,) + x.shape[2:]), outputs)


def qcnn_statevector(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks, *, max_block_qubits: int | None = None):
  """Batched QCNN forward on the statevector engine.

  Args:
    spec: circuit options.
    features: (B, F) encoding inputs (radians, or amplitudes).
    conv_blocks, pool_blocks: one ``block(wires)`` per layer. ``qml.QubitUnitary`` operations
      (the "fused" blocks) are applied with one matrix shared by all samples; any other
      operation is evaluated per sample, so gate-by-gate blocks also work, only slower.
    max_block_qubits: gate fusion (see ``program``; None: the default, 1: off).

  Returns:
    (B, R) readout values, equal to the PennyLane modes' ``qcnn_apply`` output.
  """
  tape = record(spec, jnp.zeros(spec.n_features, features.dtype), conv_blocks, pool_blocks)
  prog = program(tape, spec.n_qubits, max_block_qubits)
  shared = [op.matrix() for op, gate in zip(tape.operations[prog.n_prep:], prog.gates) if not gate.per_sample]
  dtype = jnp.result_type(features.dtype, jnp.complex64, *[m.dtype for m in shared])
  sample = functools.partial(_sample_inputs, spec, prog, dtype, conv_blocks, pool_blocks)
  state, sample_mats = jax.vmap(sample)(features)
  n_engine = len(prog.gates) - prog.n_suffix
  axes = lambda ws: tuple(prog.positions[w] for w in ws)  # wires -> the state axes holding them
  wires = tuple(axes(gate.wires) for gate in prog.gates)
  suffix_axes = axes(prog.suffix_wires)  # the last axes, ascending
  shared = [m.astype(dtype) for m in shared]
  suffix = block_matrix(shared[len(shared) - prog.n_suffix:], wires[n_engine:], suffix_axes, dtype) if prog.n_suffix else None
  # Each engine gate's matrix: shared, or for a per-sample gate its index into a chunk's sample_mats.
  sample_index, shared_iter = itertools.count(), iter(shared)
  gate_mats = [next(sample_index) if gate.per_sample else next(shared_iter) for gate in prog.gates[:n_engine]]
  blocks = [Block(b.gates, tuple(sorted(axes(b.wires)))) for b in prog.blocks]
  block_wires, block_mats = zip(*_fuse(blocks, wires, gate_mats, dtype)) if blocks else ((), ())

  def run(chunk_state, chunk_sample_mats):
    matrices = tuple(chunk_sample_mats[m] if isinstance(m, int) else m for m in block_mats)
    chunk_state = evolve(block_wires, chunk_state, matrices)
    return chunk_state if suffix is None else apply_dense(chunk_state, suffix, suffix_axes)

  state = chunked(lambda xs: run(*xs), (state, sample_mats), state[0].size * state.dtype.itemsize, CHUNK_BYTES)
  raw = measure(state, spec.n_qubits, [(kind, axes(ws)) for kind, ws in prog.measurements])
  return qcnn.postprocess(spec, raw[0] if prog.measurements[0][0] == "probs" else raw)
