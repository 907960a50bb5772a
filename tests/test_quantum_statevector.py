"""The pure-JAX statevector execution equals the PennyLane "gates" and "fused" executions."""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest

from qcnn_jax.models.quantum import Noise, QCNNSpec, execution, interleaved, param_shapes, qcnn_apply, statevector
from qcnn_jax.models.quantum.statevector import apply_matrix

# PennyLane builds its initial state as complex128; JAX truncates it to complex64 with a warning.
pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype complex128:UserWarning")


def random_inputs(spec, batch, dtype=jnp.float32):
  """Circuit angles uniform in [0, 2π) and (batch, F) features in [0, π)."""
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  params = {name: jax.random.uniform(k, shape, dtype, 0, 2 * math.pi)
            for k, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}
  return params, jax.random.uniform(keys[2], (batch, spec.n_features), dtype, 0, math.pi)


@functools.partial(jax.jit, static_argnums=(0, 3))
def run(spec, params, features, execution):
  return qcnn_apply(spec, params, features, execution=execution)


# Every conv unit, encoding and readout, odd and even widths, re-uploading, and Hur et al.'s 8 qubits.
SPECS = [
    QCNNSpec(5, "ttn", "angle_x"),
    QCNNSpec(6, "u5", "angle_z", "probs", 2),
    QCNNSpec(6, "u6", "dense_angle", "probs", 2, n_outcomes=3, reuploading=2),
    QCNNSpec(5, "u9", "amplitude", "expvals", 2),
    QCNNSpec(6, "u13", "angle_y", "expvals", 3),
    QCNNSpec(5, "u14", "dense_angle", reuploading=3),
    QCNNSpec(6, "u15", "amplitude"),
    QCNNSpec(5, "so4", "angle_y", "probs", 3),
    QCNNSpec(8, "su4"),
]


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: f"{s.n_qubits}q-{s.conv_unit}-{s.encoding}-{s.readout}")
def test_equals_pennylane(spec):
  params, features = random_inputs(spec, 3)
  got = run(spec, params, features, "statevector")
  assert got.shape == (3, spec.output_size) and got.dtype == jnp.float32
  for mode in ("gates", "fused"):
    np.testing.assert_allclose(np.asarray(got), np.asarray(run(spec, params, features, mode)), atol=1e-5)


def _grads(spec, params, features, mode, max_block_qubits=None):
  """Gradients of a weighted loss through ``qcnn_apply`` with execution ``mode``, or with
  ``max_block_qubits`` through the statevector engine with that gate fusion."""
  weights = jnp.linspace(0.5, 1.5, features.shape[0] * spec.output_size).reshape(features.shape[0], -1)
  forward = (functools.partial(qcnn_apply, spec, execution=mode) if max_block_qubits is None
             else functools.partial(execution.statevector_apply, spec, max_block_qubits=max_block_qubits))
  loss = lambda p, x: jnp.sum(weights * jnp.sin(forward(p, x)))
  return jax.jit(jax.grad(loss, argnums=(0, 1)))(params, features)


# Re-uploaded encodings: per-sample gates between the shared blocks.
REUPLOADING = QCNNSpec(4, "u14", "dense_angle", reuploading=2)


# Six qubits: the state preparation joins qubit pairs through the first conv gates, and the gates
# after the first pooling layer run as one dense 3-qubit block.
JOINED = QCNNSpec(6, "u15", "dense_angle")


def test_joined_program_has_two_qubit_prep_and_suffix():
  params, features = random_inputs(JOINED, 1)
  conv, pool = execution.layer_blocks(JOINED, "fused", *execution.layer_args(JOINED, params, "fused"))
  tape = statevector.record(JOINED, features[0], conv, pool)
  prog = statevector.program(tape, JOINED.n_qubits)
  assert any(len(op.wires) == 2 for op in tape.operations[: prog.n_prep])
  assert prog.n_suffix > 0 and prog.suffix_wires == (0, 2, 4)
  assert prog.positions == (3, 0, 4, 1, 5, 2)  # the suffix's wires on the last axes, in order


@pytest.mark.parametrize("spec", [REUPLOADING, JOINED], ids=["reuploading", "joined"])
def test_gradient_equals_fused(spec):
  params, features = random_inputs(spec, 3)
  got, want = _grads(spec, params, features, "statevector"), _grads(spec, params, features, "fused")
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=2e-5)
  assert float(jnp.max(jnp.abs(got[1]))) > 1e-3  # features get a gradient (hybrid models need it)


@pytest.mark.parametrize("spec", [REUPLOADING, JOINED], ids=["reuploading", "joined"])
def test_fused_gate_blocks_equal_fused_execution(spec):
  """Gate fusion (on by default from FUSE_MIN_QUBITS qubits) forced on at these widths: values and
  gradients still equal the PennyLane fused execution."""
  params, features = random_inputs(spec, 3)
  conv, pool = execution.layer_blocks(spec, "fused", *execution.layer_args(spec, params, "fused"))
  prog = statevector.program(statevector.record(spec, features[0], conv, pool), spec.n_qubits,
                             statevector.MAX_BLOCK_QUBITS)
  assert max(len(b.gates) for b in prog.blocks) > 1
  forward = jax.jit(functools.partial(execution.statevector_apply, spec, max_block_qubits=statevector.MAX_BLOCK_QUBITS))
  np.testing.assert_allclose(np.asarray(forward(params, features)),
                             np.asarray(run(spec, params, features, "fused")), atol=1e-5)
  got = _grads(spec, params, features, "statevector", statevector.MAX_BLOCK_QUBITS)
  want = _grads(spec, params, features, "fused")
  for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=2e-5)


@pytest.mark.parametrize("engine,module", [("statevector", interleaved), ("statevector_v1", statevector)],
                         ids=["interleaved", "v1"])
def test_chunked_batch_equals_whole_batch(monkeypatch, engine, module):
  spec = REUPLOADING  # per-sample gates are chunked along with the state
  params, features = random_inputs(spec, 4)
  # A new function per call, so that jit traces again after CHUNK_BYTES changes.
  forward = lambda: jax.jit(lambda p, x: qcnn_apply(spec, p, x, execution=engine))(params, features)
  whole, whole_grads = forward(), _grads(spec, params, features, engine)
  monkeypatch.setattr(module, "CHUNK_BYTES", 2 * 2**spec.n_qubits * 8)  # 2 samples per chunk
  chunked, chunked_grads = forward(), _grads(spec, params, features, engine)
  np.testing.assert_allclose(np.asarray(chunked), np.asarray(whole), atol=1e-6)
  for g, w in zip(jax.tree.leaves(chunked_grads), jax.tree.leaves(whole_grads)):
    np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-5)


def test_float64_equals_pennylane():
  spec = QCNNSpec(4, "su4", "dense_angle", reuploading=2)
  with jax.enable_x64(True):
    params, features = random_inputs(spec, 3, jnp.float64)
    got = run(spec, params, features, "statevector")
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), np.asarray(run(spec, params, features, "gates")), atol=1e-10)
    got, want = _grads(spec, params, features, "statevector"), _grads(spec, params, features, "fused")
    for g, w in zip(jax.tree.leaves(got), jax.tree.leaves(want)):
      np.testing.assert_allclose(np.asarray(g), np.asarray(w), atol=1e-10)


@pytest.mark.parametrize("wires", [(1,), (3, 0), (1, 2), (3, 0, 2)])
@pytest.mark.parametrize("per_sample", [False, True])
def test_apply_matrix_equals_dense(wires, per_sample):
  n, batch, k = 4, 3, len(wires)
  rng = np.random.default_rng(0)
  state = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
  shape = (batch, 2**k, 2**k) if per_sample else (2**k, 2**k)
  matrix = rng.normal(size=shape) + 1j * rng.normal(size=shape)
  got = apply_matrix(jnp.asarray(state, jnp.complex64), jnp.asarray(matrix, jnp.complex64), wires)
  per_matrix = matrix if per_sample else [matrix] * batch
  dense = [qml.matrix(qml.QubitUnitary(m, wires=wires, unitary_check=False), wire_order=range(n))
           for m in per_matrix]
  want = np.einsum("bij,bj->bi", np.stack(dense), state)
  np.testing.assert_allclose(np.asarray(got), want, atol=1e-4)


def test_apply_dense_and_block_matrix_equal_dense():
  n, batch, wires = 4, 3, (0, 2, 3)
  rng = np.random.default_rng(1)
  state = rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n))
  gates = [((3, 0), rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4))),
           ((2,), rng.normal(size=(2, 2)) + 1j * rng.normal(size=(2, 2)))]
  block = statevector.block_matrix([jnp.asarray(m, jnp.complex64) for _, m in gates], [w for w, _ in gates],
                                   wires, jnp.complex64)
  got = statevector.apply_dense(jnp.asarray(state, jnp.complex64), block, wires)
  dense = np.eye(2**n)
  for gate_wires, m in gates:
    dense = qml.matrix(qml.QubitUnitary(m, wires=gate_wires, unitary_check=False), wire_order=range(n)) @ dense
  np.testing.assert_allclose(np.asarray(got), state @ dense.T, atol=1e-4)


def test_fused_blocks_equal_the_gates_in_order():
  """Random circuits of 1- and 2-qubit gates on 6 qubits, some per sample: grouped into blocks of at
  most MAX_BLOCK_QUBITS qubits (fewer than the gates) and applied block by block, they give the
  state of the gates applied one by one, in recorded order."""
  n, batch = 6, 2
  rng = np.random.default_rng(2)
  for _ in range(5):
    gates = [statevector.Gate(tuple(rng.choice(n, rng.integers(1, 3), replace=False).tolist()), rng.random() < 0.2)
             for _ in range(30)]
    mats = [jnp.asarray(rng.normal(size=(batch,) * g.per_sample + (2 ** len(g.wires),) * 2)
                        + 1j * rng.normal(size=(batch,) * g.per_sample + (2 ** len(g.wires),) * 2), jnp.complex64)
            for g in gates]
    state = jnp.asarray(rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n)), jnp.complex64)
    want = state
    for g, m in zip(gates, mats):
      want = apply_matrix(want, m, g.wires)
    blocks = statevector._blocks(gates, statevector.MAX_BLOCK_QUBITS)
    assert sorted(i for b in blocks for i in b.gates) == list(range(len(gates))) and len(blocks) < len(gates)
    assert all(b.wires == tuple(sorted({w for i in b.gates for w in gates[i].wires})) for b in blocks)
    got = state
    for wires, m in statevector._fuse(blocks, [g.wires for g in gates], mats, jnp.complex64):
      assert len(wires) <= statevector.MAX_BLOCK_QUBITS
      got = apply_matrix(got, m, wires)
    scale = float(jnp.max(jnp.abs(want)))
    np.testing.assert_allclose(np.asarray(got) / scale, np.asarray(want) / scale, atol=1e-4)


def test_gradient_memory_does_not_grow_with_depth():
  n, batch = 7, 16
  rng = np.random.default_rng(0)
  state = jnp.asarray(rng.normal(size=(batch, 2**n)) + 1j * rng.normal(size=(batch, 2**n)), jnp.complex64)

  def temp_bytes(n_gates):
    wires = tuple((g % n, (g + 3) % n) for g in range(n_gates))
    mats = tuple(jnp.asarray(rng.normal(size=(4, 4)) + 1j * rng.normal(size=(4, 4)), jnp.complex64)
                 for _ in range(n_gates))
    loss = lambda s, m: jnp.sum(jnp.abs(statevector.evolve(wires, s, m)) ** 2)
    return jax.jit(jax.grad(loss, argnums=(0, 1))).lower(state, mats).compile().memory_analysis().temp_size_in_bytes

  # The adjoint backward pass keeps a few states alive whatever the depth; backprop would keep one
  # per gate (40 states here).
  state_bytes = batch * 2**n * 8
  shallow, deep = temp_bytes(4), temp_bytes(40)
  assert deep < 8 * state_bytes
  assert deep <= shallow + state_bytes


def test_noise_is_rejected_by_the_pure_state_engine():
  """Pure states cannot hold noise (the density engine does); shots are sampled (tests/test_quantum_density.py)."""
  spec = QCNNSpec(4)
  params, features = random_inputs(spec, 2)
  with pytest.raises(ValueError, match="use execution 'density' for noise"):
    qcnn_apply(spec, params, features, execution="statevector", noise=Noise("depolarizing", 0.01))


@pytest.mark.parametrize("engine", ["statevector", "fused"])
def test_every_dot_of_forward_and_gradient_is_full_precision(engine):
  """On GPUs a DEFAULT-precision dot may round to TF32 (moved outputs by 3e-4 on an H100): every
  dot_general of the circuit, forward and adjoint/backprop gradient, asks for HIGHEST."""
  spec = QCNNSpec(10, "so4")  # 10 qubits: the statevector engine fuses gates and has a dense suffix
  params, features = random_inputs(spec, 4)
  loss = lambda p, x: jnp.sum(qcnn_apply(spec, p, x, execution=engine) ** 2)
  text = jax.jit(jax.value_and_grad(loss)).lower(params, features).as_text()
  dots = [line for line in text.splitlines() if "dot_general" in line]
  assert len(dots) >= 4
  assert all("precision = [HIGHEST, HIGHEST]" in line for line in dots), [l for l in dots if "HIGHEST" not in l][:3]
