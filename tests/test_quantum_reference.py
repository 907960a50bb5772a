"""Quantum circuits against an independent numpy statevector simulator (no PennyLane here).

Gate matrices are written from their textbook definitions; unit gate sequences are transcribed
from Hur, Kim & Park (2022) / takh04/QCNN unitary.py; QCNN layouts are written out by hand.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.models.quantum import CONV_UNITS, QCNNSpec, Quanvolution, cr_pool, layer_args, qcnn_apply
from qcnn_jax.models.quantum import quanv
from qcnn_jax.models.quantum.execution import unit_matrix

# PennyLane builds its initial state as complex128; JAX truncates it to complex64 with a warning.
pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype complex128:UserWarning")

# ---------------------------------------------------------------- numpy statevector simulator
I2 = np.eye(2, dtype=complex)
X = np.array([[0, 1], [1, 0]], dtype=complex)
Z = np.array([[1, 0], [0, -1]], dtype=complex)
H = np.array([[1, 1], [1, -1]], dtype=complex) / math.sqrt(2)


def rx(t):
  """RX(t) = exp(-i t X / 2)."""
  return np.array([[math.cos(t / 2), -1j * math.sin(t / 2)], [-1j * math.sin(t / 2), math.cos(t / 2)]])


def ry(t):
  """RY(t) = exp(-i t Y / 2)."""
  return np.array([[math.cos(t / 2), -math.sin(t / 2)], [math.sin(t / 2), math.cos(t / 2)]], dtype=complex)


def rz(t):
  """RZ(t) = exp(-i t Z / 2)."""
  return np.diag([np.exp(-0.5j * t), np.exp(0.5j * t)])


def u3(theta, phi, delta):
  """U3(θ, φ, δ) as in Nielsen & Chuang / PennyLane's documented matrix."""
  c, s = math.cos(theta / 2), math.sin(theta / 2)
  return np.array([[c, -np.exp(1j * delta) * s], [np.exp(1j * phi) * s, np.exp(1j * (phi + delta)) * c]])


def controlled(u):
  """4x4 matrix in (control, target) order."""
  out = np.eye(4, dtype=complex)
  out[2:, 2:] = u
  return out


CNOT, CZ = controlled(X), controlled(Z)


def crz(t):
  """Controlled RZ, (control, target) order."""
  return controlled(rz(t))


def crx(t):
  """Controlled RX, (control, target) order."""
  return controlled(rx(t))


def apply(state, matrix, wires):
  """Applies a 2^k x 2^k matrix on ``wires`` of a (2,)*n state tensor."""
  k = len(wires)
  out = np.tensordot(matrix.reshape((2,) * 2 * k), state, axes=(list(range(k, 2 * k)), list(wires)))
  return np.moveaxis(out, list(range(k)), list(wires))


def zero_state(n):
  """|0...0> as a (2,)*n tensor."""
  state = np.zeros((2,) * n, dtype=complex)
  state[(0,) * n] = 1.0
  return state


def expval_z(state, wire):
  """<Z> of ``wire``."""
  probs = np.abs(state) ** 2
  return float(np.sum(np.take(probs, 0, axis=wire)) - np.sum(np.take(probs, 1, axis=wire)))


def marginal_probs(state, wires):
  """Probabilities of ``wires`` (first wire most significant), shape (2**len(wires),)."""
  probs = np.abs(state) ** 2
  others = tuple(w for w in range(state.ndim) if w not in wires)
  return np.transpose(np.sum(probs, axis=others), np.argsort(np.argsort(wires))).reshape(-1)


# Gate lists (matrix, local wires) of each unit, from Hur et al.'s unitary.py.
def _ref_u5_u6(p, crot, rot=rx):
  return [(rot(p[0]), [0]), (rot(p[1]), [1]), (rz(p[2]), [0]), (rz(p[3]), [1]), (crot(p[4]), [1, 0]),
          (crot(p[5]), [0, 1]), (rot(p[6]), [0]), (rot(p[7]), [1]), (rz(p[8]), [0]), (rz(p[9]), [1])]


def _ref_u13_u14(p, crot):
  return [(ry(p[0]), [0]), (ry(p[1]), [1]), (crot(p[2]), [1, 0]), (ry(p[3]), [0]), (ry(p[4]), [1]),
          (crot(p[5]), [0, 1])]


REF_UNITS = {
    "ttn": lambda p: [(ry(p[0]), [0]), (ry(p[1]), [1]), (CNOT, [0, 1])],
    "u5": lambda p: _ref_u5_u6(p, crz),
    "u6": lambda p: _ref_u5_u6(p, crx),
    "u9": lambda p: [(H, [0]), (H, [1]), (CZ, [0, 1]), (rx(p[0]), [0]), (rx(p[1]), [1])],
    "u13": lambda p: _ref_u13_u14(p, crz),
    "u14": lambda p: _ref_u13_u14(p, crx),
    "u15": lambda p: [(ry(p[0]), [0]), (ry(p[1]), [1]), (CNOT, [1, 0]), (ry(p[2]), [0]), (ry(p[3]), [1]),
                      (CNOT, [0, 1])],
    "so4": lambda p: [(ry(p[0]), [0]), (ry(p[1]), [1]), (CNOT, [0, 1]), (ry(p[2]), [0]), (ry(p[3]), [1]),
                      (CNOT, [0, 1]), (ry(p[4]), [0]), (ry(p[5]), [1])],
    "su4": lambda p: [(u3(*p[0:3]), [0]), (u3(*p[3:6]), [1]), (CNOT, [0, 1]), (ry(p[6]), [0]), (rz(p[7]), [1]),
                      (CNOT, [1, 0]), (ry(p[8]), [0]), (CNOT, [0, 1]), (u3(*p[9:12]), [0]),
                      (u3(*p[12:15]), [1])],
}


def ref_pool(p):
  """Pooling_ansatz1 gate list on (control, target)."""
  return [(crz(p[0]), [0, 1]), (X, [0]), (crx(p[1]), [0, 1])]


def gates_to_matrix(gates, n):
  """Matrix of a gate list on n qubits (wire 0 most significant)."""
  columns = []
  for basis in np.eye(2**n, dtype=complex):
    state = basis.reshape((2,) * n)
    for matrix, wires in gates:
      state = apply(state, matrix, wires)
    columns.append(state.reshape(-1))
  return np.stack(columns, axis=1)


# Hand-written layouts: per layer (conv pairs, pool (control, target) pairs); readout wires.
LAYOUTS = {
    (8, 1): ([([(0, 7), (0, 1), (2, 3), (4, 5), (6, 7), (1, 2), (3, 4), (5, 6)], [(1, 0), (3, 2), (5, 4), (7, 6)]),
              ([(0, 6), (0, 2), (4, 6), (2, 4)], [(2, 0), (6, 4)]),
              ([(0, 4)], [(4, 0)])], [0]),
    (5, 1): ([([(0, 4), (0, 1), (2, 3), (1, 2), (3, 4)], [(1, 0), (3, 2)]),
              ([(0, 4), (0, 2), (2, 4)], [(2, 0)]),
              ([(0, 4)], [(4, 0)])], [0]),
    (5, 2): ([([(0, 4), (0, 1), (2, 3), (1, 2), (3, 4)], [(1, 0), (3, 2)]),
              ([(0, 4), (0, 2), (2, 4)], [(2, 0)])], [0, 4]),
    (12, 1): ([([(0, 11), (0, 1), (2, 3), (4, 5), (6, 7), (8, 9), (10, 11), (1, 2), (3, 4), (5, 6), (7, 8), (9, 10)],
                [(1, 0), (3, 2), (5, 4), (7, 6), (9, 8), (11, 10)]),
               ([(0, 10), (0, 2), (4, 6), (8, 10), (2, 4), (6, 8)], [(2, 0), (6, 4), (10, 8)]),
               ([(0, 8), (0, 4), (4, 8)], [(4, 0)]),
               ([(0, 8)], [(8, 0)])], [0]),
}


def ref_encode(state, spec, x, wires):
  """Encodes sample ``x`` on ``wires`` (amplitude: replaces the state)."""
  if spec.encoding == "amplitude":
    padded = np.zeros(2**spec.n_qubits)
    padded[: len(x)] = x
    return (padded / np.linalg.norm(padded)).astype(complex).reshape(state.shape)
  per_qubit = x.reshape(spec.n_qubits, -1)
  for w in wires:
    if spec.encoding == "dense_angle":
      state = apply(apply(state, ry(per_qubit[w, 0]), [w]), rz(per_qubit[w, 1]), [w])
    else:
      state = apply(state, {"angle_x": rx, "angle_y": ry, "angle_z": rz}[spec.encoding](per_qubit[w, 0]), [w])
  return state


def ref_qcnn(spec, conv_params, pool_params, x):
  """Numpy QCNN output (R,) for one sample."""
  layers, readout = LAYOUTS[(spec.n_qubits, spec.n_readout)]
  state, active = zero_state(spec.n_qubits), list(range(spec.n_qubits))
  for index, (convs, pools) in enumerate(layers):
    if index < spec.reuploading:
      state = ref_encode(state, spec, x, active)
    conv_matrix = gates_to_matrix(REF_UNITS[spec.conv_unit](conv_params[index]), 2)
    for wires in convs:
      state = apply(state, conv_matrix, wires)
    for wires in pools:
      state = apply(state, gates_to_matrix(ref_pool(pool_params[index]), 2), wires)
      active.remove(wires[0])
  assert active == readout
  if spec.readout == "probs":
    kept = marginal_probs(state, readout)[: spec.output_size]
    return kept / kept.sum()
  return np.array([expval_z(state, w) for w in readout])


# ---------------------------------------------------------------- tests
def test_simulator_sanity():
  bell = apply(apply(zero_state(2), H, [0]), CNOT, [0, 1])
  np.testing.assert_allclose(marginal_probs(bell, [0, 1]), [0.5, 0, 0, 0.5], atol=1e-12)
  flipped = apply(zero_state(3), X, [2])
  assert expval_z(flipped, 2) == -1.0 and expval_z(flipped, 0) == 1.0
  np.testing.assert_allclose(marginal_probs(flipped, [2, 0]), [0, 0, 1, 0], atol=1e-12)


@pytest.mark.parametrize("name", sorted(CONV_UNITS))
def test_unit_matrix_and_action(name):
  rng = np.random.default_rng(len(name))
  params = rng.uniform(0, 2 * math.pi, CONV_UNITS[name].n_params)
  expected = gates_to_matrix(REF_UNITS[name](params), 2)
  with jax.enable_x64(True):  # jit: eager dispatch in a temporary x64 context is fragile
    got = np.asarray(jax.jit(functools.partial(unit_matrix, CONV_UNITS[name].fn))(jnp.asarray(params)))
  np.testing.assert_allclose(got, expected, atol=1e-10)
  got32 = np.asarray(unit_matrix(CONV_UNITS[name].fn, jnp.asarray(params, jnp.float32)))
  np.testing.assert_allclose(got32, expected, atol=1e-5)
  # Action on a random 3-qubit state with the unit on wires (2, 0): checks wire order too.
  psi = rng.normal(size=(2,) * 3) + 1j * rng.normal(size=(2,) * 3)
  psi /= np.linalg.norm(psi)
  embedded = gates_to_matrix([(expected, [2, 0])], 3)
  np.testing.assert_allclose(embedded @ psi.reshape(-1), apply(psi, got, [2, 0]).reshape(-1), atol=1e-10)
  assert np.linalg.norm(gates_to_matrix([(got, [0, 1])], 2) - expected) < 1e-9


def test_pool_matrix():
  params = np.array([0.7, -1.3])
  with jax.enable_x64(True):
    got = np.asarray(jax.jit(functools.partial(unit_matrix, cr_pool))(jnp.asarray(params)))
  np.testing.assert_allclose(got, gates_to_matrix(ref_pool(params), 2), atol=1e-10)


CASES = [
    QCNNSpec(8),  # Hur et al.'s 8-qubit SU4 circuit
    QCNNSpec(5, conv_unit="u5", encoding="angle_x"),
    QCNNSpec(5, conv_unit="so4", encoding="dense_angle", readout="expvals", n_readout=2, reuploading=2),
    QCNNSpec(5, conv_unit="u13", encoding="amplitude", readout="probs", n_readout=2, n_outcomes=3),
]


def _random_inputs(spec, dtype):
  """Random (params, features (3, F)) in ``dtype`` and the numpy outputs (3, R)."""
  rng = np.random.default_rng(spec.n_qubits)
  params = {k: rng.uniform(0, 2 * math.pi, s) for k, s in
            {"conv": (len(LAYOUTS[(spec.n_qubits, spec.n_readout)][0]), CONV_UNITS[spec.conv_unit].n_params),
             "pool": (len(LAYOUTS[(spec.n_qubits, spec.n_readout)][0]), 2)}.items()}
  features = rng.uniform(0, math.pi, (3, spec.n_features))
  expected = np.stack([ref_qcnn(spec, params["conv"], params["pool"], x) for x in features])
  return jax.tree.map(lambda a: jnp.asarray(a, dtype), (params, features)), expected


# 8-qubit gate-by-gate is slow to compile; test_quantum_qcnn checks it equals fused. The default
# engine ("auto" -> statevector) also runs 12 qubits, where it fuses gates into 3-qubit blocks.
TWELVE = QCNNSpec(12, conv_unit="so4")
FLOAT32_CASES = ([(spec, "fused") for spec in CASES] + [(spec, "gates") for spec in CASES[1:]]
                 + [(spec, "auto") for spec in CASES + [TWELVE]])


@pytest.mark.parametrize("spec,execution", FLOAT32_CASES,
                         ids=lambda v: v if isinstance(v, str) else f"{v.n_qubits}q-{v.conv_unit}-{v.encoding}-{v.readout}")
def test_qcnn_matches_reference_float32(spec, execution):
  (params, features), expected = _random_inputs(spec, jnp.float32)
  got = jax.jit(lambda p, x: qcnn_apply(spec, p, x, execution=execution))(params, features)
  assert got.dtype == jnp.float32 and got.shape == expected.shape
  np.testing.assert_allclose(np.asarray(got), expected, atol=1e-5)


@pytest.mark.parametrize("spec,execution", [(spec, execution) for spec in CASES[:2] for execution in ("fused", "auto")]
                         + [(TWELVE, "auto")], ids=["8q-fused", "8q-auto", "5q-fused", "5q-auto", "12q-auto"])
def test_qcnn_matches_reference_float64(spec, execution):
  with jax.enable_x64(True):
    (params, features), expected = _random_inputs(spec, jnp.float64)
    got = jax.jit(lambda p, x: qcnn_apply(spec, p, x, execution=execution))(params, features)
    assert got.dtype == jnp.float64
    np.testing.assert_allclose(np.asarray(got), expected, atol=1e-10)


def test_layer_args_are_unitaries():
  spec = CASES[0]
  (params, _), _ = _random_inputs(spec, jnp.float32)
  conv, pool = layer_args(spec, params, "fused")
  assert conv.shape == (3, 4, 4) and pool.shape == (3, 4, 4)
  eye = np.broadcast_to(np.eye(4), (3, 4, 4))
  np.testing.assert_allclose(np.asarray(conv @ jnp.conj(jnp.swapaxes(conv, 1, 2))), eye, atol=1e-5)


REF_GATES = {"RX": rx, "RY": ry, "RZ": rz}


def ref_quanv_patch(pixels, weights, gates):
  """<Z> of 4 qubits for one 2x2 patch (4,) in [0, 1]."""
  state = zero_state(4)
  for w in range(4):
    state = apply(state, ry(math.pi * pixels[w]), [w])
  for gate in gates:
    matrix = CNOT if gate.name == "CNOT" else REF_GATES[gate.name](weights[gate.weight])
    state = apply(state, matrix, list(gate.wires))
  return np.array([expval_z(state, w) for w in range(4)])


@pytest.mark.parametrize("trainable", [False, True])
def test_quanvolution_matches_reference(trainable):
  module = Quanvolution(n_layers=2, seed=3, trainable=trainable)
  images = jax.random.uniform(jax.random.PRNGKey(1), (2, 4, 6, 3))
  variables = module.init(jax.random.PRNGKey(2), images)
  out = module.apply(variables, images)
  assert out.shape == (2, 2, 3, 4)
  weights = variables["params"]["quantum_weights"] if trainable else quanv.fixed_weights(2, 3)
  assert bool(variables) == trainable
  gates = quanv.random_layer_ops(2, 3)
  gray = np.asarray(images).mean(-1)
  patch = gray[1, 2:4, 4:6].reshape(-1)  # batch 1, patch row 1, column 2
  np.testing.assert_allclose(np.asarray(out[1, 1, 2]), ref_quanv_patch(patch, np.asarray(weights), gates), atol=1e-5)
