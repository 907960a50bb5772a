"""Pure-JAX density-matrix execution of a noisy ``qcnn.qcnn_circuit`` (no PennyLane device).

The circuit is not re-defined: ``qcnn.qcnn_circuit`` with its noise channels is recorded on a
PennyLane tape and every recorded operation acts through its own ``op.matrix()`` or
``op.kraus_matrices()``. A gate and the operations on its wires that follow it (its noise
channels) form a group, applied as one superoperator Σ_k E_k ⊗ conj(E_k) on the row and column
axes of its wires (ρ -> Σ_k E_k ρ E_k†). The state differs from one dense ρ:

* Factors: ρ is held as a product of factors, one density matrix per set of wires that have
  interacted (each wire starts as its own |0><0|; a leading ``StatePrep`` is one factor of all
  wires). A group acting across factors joins them (outer product) first.
* Partial traces: a wire that no later operation touches and no measurement reads is traced out
  in the output of its last group (the superoperator's output rows are summed over the wire's
  diagonal), so after a QCNN's pooling layer the factor shrinks by half its qubits.
* Order: groups on disjoint wires commute, so ``schedule`` picks the order of the tape's groups
  (keeping the order on each wire) that minimises the summed sizes 4**k of the factors they act
  on, by exact search over the sets of applied groups. At 8 qubits the largest factor is 6 qubits
  instead of 8.
* Layout: each factor is real (B, 2, ..., 2, 2), float32 (float64 under x64), one axis per row or
  column of a wire then the real and imaginary parts, samples on the batch axis. Which axis holds
  what is tracked while tracing (``_plan``): a group's axes are brought last by at most one
  transpose (none when already there) and one real matmul applies the real embedding of its
  superoperator (``interleaved.real_embedding``), permuted to the axes' order (one matrix per
  sample for feature-dependent gates). Chunks of samples of at most ``CHUNK_BYTES`` of the largest
  factor run one after another (``lax.map``).
* Gradient: JAX's autodiff; it stores each group's input, which sums to less than one 2n-qubit
  density matrix per sample at 8 qubits (``stored_matrices``).

Readouts come from the diagonal of the factor of the measured wires (``statevector.measure_probs``)
after the optional readout confusion; the result equals PennyLane's ``default.mixed`` on the same
tape (tested to 1e-5), under ``jit``, ``vmap`` and ``grad``.
"""

import functools
from typing import NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml

from qcnn_jax.models.quantum import interleaved, qcnn, statevector

# Chunks of samples hold at most this many bytes of their largest factor (at least one sample). The
# gradient of batch 32 (2-core CPU, medians of 15 alternated rounds) took 5.9, 6.0, 7.7 ms at n = 8
# with 2 MiB, 1 MiB, 512 KiB and 61.8, 55.6, 46.8 ms at n = 10 (72.3, 55.4, 45.8 in another run).
CHUNK_BYTES = 2**20
# Most sets of applied groups ``schedule`` searches; beyond, the tape's order is kept.
MAX_SCHEDULE_STATES = 200_000


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


def confuse(probs, confusion):
  """Outcome probabilities (..., 2**n) of n wires (wire 0 the most significant bit) read through
  per-wire readout confusion (n, 2, 2): row = prepared bit, column = bit read, rows summing to 1."""
  n, lead = confusion.shape[0], probs.ndim - 1
  p = probs.reshape(probs.shape[:-1] + (2,) * n)
  for wire in range(n):
    p = jnp.moveaxis(jnp.tensordot(jnp.moveaxis(p, lead + wire, -1), confusion[wire], axes=1), -1, lead + wire)
  return p.reshape(probs.shape)


class _Search(NamedTuple):
  """Static facts ``schedule`` searches with (bit g of a mask: group g applied)."""

  wires: tuple[tuple[int, ...], ...]  # each group's wires
  before: tuple[int, ...]  # mask of the groups that must precede each group (earlier on its wires)
  on_wire: dict  # wire -> mask of the groups acting on it
  kept: frozenset  # measured wires, never traced out


def _apply_group(search: _Search, parts: frozenset, mask: int, g: int) -> tuple[int, frozenset, bool]:
  """(qubits of the factor group ``g`` acts on, factors after it, whether that factor is only its
  own wires) from the factors ``parts`` (frozensets of wires) with the groups of ``mask`` applied."""
  wires = set(search.wires[g])
  touched = [p for p in parts if p & wires]
  joined = frozenset().union(wires, *touched)
  done = mask | (1 << g)
  traced = {w for w in wires if w not in search.kept and search.on_wire[w] & ~done == 0}
  rest = parts.difference(touched)
  out = joined - traced
  return len(joined), (rest | {out}) if out else rest, joined == wires


def _search_order(search: _Search, mask: int, parts: frozenset, memo: dict) -> tuple[int, tuple[int, ...]]:
  """(cost, order) of the cheapest completion from ``mask``: the summed 4**k of the factors the
  remaining groups act on. A ready group whose factor is exactly its own wires is applied at once
  (no later time is cheaper); otherwise every ready group is tried."""
  if mask in memo:
    return memo[mask]
  if len(memo) > MAX_SCHEDULE_STATES:
    raise OverflowError("schedule search too large")
  ready = [g for g in range(len(search.wires)) if not mask >> g & 1 and search.before[g] & ~mask == 0]
  if not ready:
    return 0, ()
  options = []
  for g in ready:
    size, after, own = _apply_group(search, parts, mask, g)
    options.append((own, size, g, after))
    if own:
      options = [options[-1]]
      break
  best = None
  for _, size, g, after in options:
    cost, order = _search_order(search, mask | (1 << g), after, memo)
    if best is None or cost + 4**size < best[0]:
      best = (cost + 4**size, (g,) + order)
  memo[mask] = best
  return best


@functools.lru_cache(maxsize=64)
def schedule(group_wires: tuple[tuple[int, ...], ...], n_qubits: int, kept: frozenset, full_start: bool):
  """Order of the groups (acting on ``group_wires``; the tape's order kept on each wire) minimising
  the summed sizes 4**k of the factors they act on, k counting a factor's qubits after any join and
  before the wires traced out in its output (those with no later group, not in ``kept``). Factors
  start as one per wire (one of all wires if ``full_start``). The tape's order beyond
  ``MAX_SCHEDULE_STATES`` searched states."""
  last, before, on_wire = {}, [], {w: 0 for w in range(n_qubits)}
  for g, wires in enumerate(group_wires):
    before.append(sum(1 << last[w] for w in set(wires) if w in last))
    last.update({w: g for w in wires})
    for w in wires:
      on_wire[w] |= 1 << g
  search = _Search(group_wires, tuple(before), on_wire, kept)
  parts = frozenset([frozenset(range(n_qubits))] if full_start else [frozenset([w]) for w in range(n_qubits)])
  try:
    return _search_order(search, 0, parts, {})[1]
  except OverflowError:
    return tuple(range(len(group_wires)))


class Step(NamedTuple):
  """How the engine applies one group (axis labels: 2w the rows of wire w, 2w + 1 its columns)."""

  group: int  # index into the tape's groups
  parts: tuple[int, ...]  # factors (ids) joined in this order; the result keeps the first id
  perm: tuple[int, ...] | None  # transpose of the joined (B, 2, ..., 2, 2) factor first; None: none
  labels: tuple[int, ...]  # the group's axes, last after ``perm``, in this order
  traced: tuple[int, ...]  # wires traced out of the output (their labels dropped)
  size: int  # qubits of the factor it acts on (after the join)


def _initial_labels(n_qubits: int, touched: set, kept: frozenset, full_start: bool) -> dict:
  """Factor id -> axis labels at the start: rows then columns of all wires for a StatePrep (id 0),
  else (row, column) of each wire that is touched or measured (id: the wire)."""
  if full_start:
    return {0: tuple(2 * w for w in range(n_qubits)) + tuple(2 * w + 1 for w in range(n_qubits))}
  return {w: (2 * w, 2 * w + 1) for w in range(n_qubits) if w in touched or w in kept}


def _plan(group_wires, order: Sequence[int], n_qubits: int, kept: frozenset, full_start: bool):
  """(steps in ``order``, factor id -> axis labels at the start, the same at the end): which
  factors each group joins, the transpose that brings its axes last (none when they are last
  already, in any order) and the wires it traces out (no later group, not measured)."""
  initial = _initial_labels(n_qubits, {w for ws in group_wires for w in ws}, kept, full_start)
  factors = dict(initial)
  last = {w: i for i, g in enumerate(order) for w in group_wires[g]}
  steps = []
  for i, g in enumerate(order):
    wires = group_wires[g]
    parts = tuple(dict.fromkeys(fid for w in wires for fid, labels in factors.items() if 2 * w in labels))
    labels = sum((factors.pop(p) for p in parts), ())
    axes = {2 * w + c for w in wires for c in (0, 1)}
    tail = labels[len(labels) - len(axes):]
    perm = None
    if set(tail) != axes:
      rest, tail = tuple(l for l in labels if l not in axes), tuple(l for l in labels if l in axes)
      perm = (0,) + tuple(1 + labels.index(l) for l in rest + tail) + (len(labels) + 1,)
      labels = rest + tail
    traced = tuple(w for w in wires if w not in kept and last[w] == i)
    factors[parts[0]] = tuple(l for l in labels if l // 2 not in traced)
    steps.append(Step(g, parts, perm, tail, traced, len(labels) // 2))
  return tuple(steps), initial, factors


def _step_matrix(ops, wires: tuple[int, ...], step: Step, dtype):
  """(2 * 4**k_out, 2 * 4**k) real embedding of the group's superoperator on ``step.labels`` in
  their order, the output rows of ``step.traced`` wires summed over their diagonal (partial trace)."""
  k = len(wires)
  own = [2 * w for w in wires] + [2 * w + 1 for w in wires]
  perm = [own.index(label) for label in step.labels]
  matrix = jnp.transpose(superoperator(ops, wires, dtype).reshape((2,) * (4 * k)), perm + [2 * k + p for p in perm])
  real = interleaved.real_embedding(matrix.reshape(4**k, 4**k))
  real, out = real.reshape((2,) * (2 * k + 1) + (2 * 4**k,)), list(step.labels)
  for w in step.traced:
    real = jnp.trace(real, axis1=out.index(2 * w), axis2=out.index(2 * w + 1))
    out = [label for label in out if label // 2 != w]
  return real.reshape(-1, 2 * 4**k)


def _product(a, b):
  """Outer product of interleaved complex factors (B, *sa, 2) and (B, *sb, 2): (B, *sa, *sb, 2)."""
  batch = a.shape[0]
  x, y = a.reshape(batch, -1, 1, 2), b.reshape(batch, 1, -1, 2)
  re = x[..., 0] * y[..., 0] - x[..., 1] * y[..., 1]
  im = x[..., 0] * y[..., 1] + x[..., 1] * y[..., 0]
  return jnp.stack([re, im], -1).reshape((batch,) + a.shape[1:-1] + b.shape[1:-1] + (2,))


def _evolve(steps: Sequence[Step], factors: dict, matrices) -> dict:
  """Factor id -> (B, 2, ..., 2, 2) tensor after each step's join, transpose and matmul with its
  real ``matrices[i]``, shared (2d', 2d) or per sample (B, 2d', 2d)."""
  factors = dict(factors)
  for step, matrix in zip(steps, matrices):
    tensor = functools.reduce(_product, [factors.pop(p) for p in step.parts])
    view = interleaved.Step(step.perm, step.labels, matrix.ndim == 3)
    rows = interleaved._times(interleaved._rows(tensor, view), matrix)  # pylint: disable=protected-access
    factors[step.parts[0]] = rows.reshape(rows.shape[:1] + (2,) * ((rows.size // rows.shape[0]).bit_length() - 1))
  return factors


def _probabilities(factors: dict, labels: dict):
  """((B, 2**m) outcome probabilities, their m wires ascending) from the diagonal of the final
  factors (joined), which hold the measured wires."""
  ids = sorted(factors)
  tensor, order = functools.reduce(_product, [factors[i] for i in ids]), sum((labels[i] for i in ids), ())
  wires = sorted({label // 2 for label in order})
  perm = [1 + order.index(2 * w) for w in wires] + [1 + order.index(2 * w + 1) for w in wires]
  dim = 2 ** len(wires)
  real = jnp.transpose(tensor[..., 0], [0] + perm).reshape(-1, dim, dim)
  return jnp.diagonal(real, axis1=1, axis2=2), wires


def _initial(psi, labels: dict, dtype, batch: int) -> dict:
  """Factor id -> (B, 2, ..., 2, 2) initial factor: each wire's |0><0| (``psi`` None), or |ψ><ψ|
  of a leading ``StatePrep``'s (B, 2**n) vectors ``psi`` (rows then columns of all wires)."""
  real = jnp.finfo(dtype).dtype
  if psi is None:
    zero = jnp.zeros((batch, 2, 2, 2), real).at[:, 0, 0, 0].set(1)
    return {fid: zero for fid in labels}
  rho = psi[:, :, None] * jnp.conj(psi[:, None, :])
  n = psi.shape[-1].bit_length() - 1
  return {0: jnp.stack([rho.real, rho.imag], -1).reshape((batch,) + (2,) * (2 * n) + (2,)).astype(real)}


class Program(NamedTuple):
  """Static structure of a recorded noisy circuit on the density-matrix engine."""

  full_start: bool  # a leading StatePrep: the initial state is one factor of all wires
  per_sample: tuple[bool, ...]  # each group holds a gate other than a QubitUnitary, taken as feature-
                                # dependent (one matrix per sample); channels are taken as shared
  steps: tuple[Step, ...]  # the groups in ``schedule``'s order
  initial: dict  # factor id -> axis labels at the start
  final: dict  # factor id -> axis labels after the last step
  measurements: tuple[tuple[str, tuple[int, ...]], ...]  # ("expval" | "probs", wires)


def program(tape: qml.tape.QuantumScript, n_qubits: int) -> Program:
  """Static structure of a recorded ``n_qubits`` circuit (``statevector.record`` with any features)."""
  ops = tape.operations
  full_start = bool(ops) and isinstance(ops[0], qml.StatePrep)
  grouped = groups(ops[full_start:])
  for wires, group in grouped:
    if len(wires) > 2 or any(isinstance(op, qml.StatePrep) for op in group):
      raise NotImplementedError(f"density execution applies one- and two-qubit operations, not {group[0]}")
  per_sample = tuple(any(not isinstance(op, (qml.QubitUnitary, qml.operation.Channel)) for op in group)
                     for _, group in grouped)
  measurements = tuple(statevector.measurement(mp) for mp in tape.measurements)
  kept = frozenset(w for _, wires in measurements for w in wires)
  group_wires = tuple(wires for wires, _ in grouped)
  plan = _plan(group_wires, schedule(group_wires, n_qubits, kept, full_start), n_qubits, kept, full_start)
  return Program(full_start, per_sample, *plan, measurements)


def _matrices(prog: Program, tape, dtype, per_sample: bool) -> dict:
  """Step index -> real matrix (``_step_matrix``) of the steps whose group is (not) ``per_sample``."""
  grouped = groups(tape.operations[prog.full_start:])
  return {i: _step_matrix(grouped[s.group][1], grouped[s.group][0], s, dtype)
          for i, s in enumerate(prog.steps) if prog.per_sample[s.group] == per_sample}


def _sample_inputs(spec: qcnn.QCNNSpec, prog: Program, dtype, blocks, noise, features):
  """One sample's StatePrep vector (2**n,) (None without one) and its per-sample step matrices."""
  tape = statevector.record(spec, features, *blocks, noise)
  psi = tape.operations[0].state_vector(wire_order=range(spec.n_qubits)).reshape(-1).astype(dtype) \
      if prog.full_start else None
  return psi, _matrices(prog, tape, dtype, True)


def qcnn_density(spec: qcnn.QCNNSpec, features, conv_blocks, pool_blocks, noise, confusion=None):
  """Batched noisy QCNN forward on density matrices.

  Args:
    spec: circuit options.
    features: (B, F) encoding inputs (radians, or amplitudes).
    conv_blocks, pool_blocks: one ``block(wires)`` per layer (``execution.layer_blocks``).
    noise: ``noise(wires)`` adding one-qubit channels after each two-qubit block (``execution.Noise``),
      or None (then the result equals the statevector engine's).
    confusion: optional (n_qubits, 2, 2) readout confusion per wire (row: prepared bit, column: bit
      read, rows summing to 1), applied to the outcome probabilities before the readout (a device's
      readout error).

  Returns:
    (B, R) readout values, equal to ``default.mixed``'s on the same circuit.
  """
  dtype = jnp.result_type(features.dtype, jnp.complex64)
  tape = statevector.record(spec, jnp.zeros(spec.n_features, features.dtype), conv_blocks, pool_blocks, noise)
  prog = program(tape, spec.n_qubits)
  shared = _matrices(prog, tape, dtype, False)
  sample = functools.partial(_sample_inputs, spec, prog, dtype, (conv_blocks, pool_blocks), noise)

  def run(chunk):  # (C, F) features -> readouts
    psi, sample_mats = jax.vmap(sample)(chunk)
    factors = _initial(psi, prog.initial, dtype, chunk.shape[0])
    factors = _evolve(prog.steps, factors, [shared[i] if i in shared else sample_mats[i] for i in range(len(prog.steps))])
    probs, wires = _probabilities(factors, prog.final)
    if confusion is not None:
      probs = confuse(probs, confusion[jnp.asarray(wires)])
    return statevector.measure_probs(probs, len(wires), [(kind, tuple(wires.index(w) for w in ws))
                                                         for kind, ws in prog.measurements])

  largest = max((step.size for step in prog.steps), default=1)
  raw = statevector.chunked(run, features, 2 * 4**largest * jnp.finfo(dtype).bits // 8, CHUNK_BYTES)
  return qcnn.postprocess(spec, raw[0] if prog.measurements[0][0] == "probs" else raw)


def stored_matrices(spec: qcnn.QCNNSpec, batch: int) -> float:
  """Density matrices of all ``spec.n_qubits`` qubits (4**n complex entries each) that the gradient
  of a (batch, F) forward keeps alive: two copies of the factor each step acts on (the matmul's
  input and the factor before its transpose or join), summed over the steps, times the batch.
  XLA's memory analysis of the gradient's temporaries (CPU, su4, depolarizing noise, batch 16 and
  32) measured per sample 7.2, 6.3, 2.6, 1.8, 0.71 and 0.16-0.21 matrices at n = 4, 5, 6, 7, 8, 10,
  0.8-1.25x this count (7.4, 5.8, 2.8, 1.7, 0.77, 0.20)."""
  blocks = [lambda wires: qml.QubitUnitary(np.eye(4), wires=wires)] * len(qcnn.layout(spec))
  prog = program(statevector.record(spec, jnp.zeros(spec.n_features), blocks, blocks), spec.n_qubits)
  return 2.0 * batch * sum(4.0**step.size for step in prog.steps) / 4**spec.n_qubits
