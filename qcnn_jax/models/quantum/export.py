"""Trained QCNN circuits out of the simulator: OpenQASM 2.0 / 3 programs and native-gate resources.

A circuit is exported gate by gate ("gates" execution, never fused unitaries) for one input, with
its trained angles and that input's encoding angles bound, then decomposed into the basis every
toolchain parses: single-qubit rotations RX, RY, RZ and CNOT (amplitude encoding's state
preparation included). Its readout is computed on that same decomposed circuit in float64
(``default.qubit``), so a user can check a device or another simulator against it.

Wires are numbered as in the model (wire i is qubit q[i]); probabilities of the readout wires are
listed big-endian (the first readout wire is the most significant bit), as ``qml.probs`` does.
"""

import functools
import math

import flax.linen as nn
import jax
import numpy as np
import pennylane as qml

from qcnn_jax.models.quantum import layer, qcnn

NATIVE_GATES = {"RX": "rx", "RY": "ry", "RZ": "rz", "CNOT": "cx"}
FORMATS = ("qasm2", "qasm3")


def gate_tape(spec: qcnn.QCNNSpec, params: dict, features) -> qml.tape.QuantumScript:
  """The circuit for one input, gate by gate, with every angle bound (float64).

  Args:
    spec: circuit options.
    params: {"conv": (layers, P), "pool": (layers, 2)} trained angles (radians).
    features: (F,) encoding input of one example (angles, or amplitudes).
  """
  conv = np.asarray(params["conv"], np.float64)
  pool = np.asarray(params["pool"], np.float64)
  conv_blocks, pool_blocks = qcnn.gate_blocks(spec, conv, pool)
  with jax.enable_x64(True):  # amplitude encoding normalises with jax.numpy: keep float64
    return qml.tape.make_qscript(qcnn.qcnn_circuit)(spec, np.asarray(features, np.float64), conv_blocks, pool_blocks)


def native_tape(tape: qml.tape.QuantumScript) -> qml.tape.QuantumScript:
  """`tape` decomposed into RX, RY, RZ and CNOT (global phases dropped: they change no readout)."""
  with jax.enable_x64(True):
    (decomposed,), _ = qml.transforms.decompose(tape, gate_set=set(NATIVE_GATES) | {"GlobalPhase"})
  operations = [qml.ops.functions.bind_new_parameters(op, [float(p) for p in op.parameters])  # plain float64
                for op in decomposed.operations if op.name != "GlobalPhase"]
  return qml.tape.QuantumScript(operations, tape.measurements)


def readout(tape: qml.tape.QuantumScript, spec: qcnn.QCNNSpec) -> list[float]:
  """The circuit's raw readout in float64: <Z> per readout wire, or the readout wires' basis
  probabilities (big-endian, all 2**n_readout of them)."""
  (result,) = qml.execute([tape], qml.device("default.qubit", wires=spec.n_qubits))  # a tuple for several <Z>
  return [float(v) for v in np.atleast_1d(np.asarray(result, np.float64)).ravel()]


def _angle(value) -> str:
  return repr(float(value))


def to_qasm(tape: qml.tape.QuantumScript, n_qubits: int, measured: tuple[int, ...], version: str = "qasm2") -> str:
  """An OpenQASM program of a native tape (`native_tape`): the gates, then the measured wires.

  Args:
    tape: operations in RX, RY, RZ, CNOT only.
    n_qubits: register size (wire i is q[i]).
    measured: wires measured into c[0], c[1], ... in this order.
    version: "qasm2" (qelib1.inc) or "qasm3" (stdgates.inc).
  """
  if version not in FORMATS:
    raise ValueError(f"format {version!r} not in {FORMATS}")
  if version == "qasm2":
    lines = ["OPENQASM 2.0;", 'include "qelib1.inc";', f"qreg q[{n_qubits}];", f"creg c[{len(measured)}];"]
  else:
    lines = ["OPENQASM 3.0;", 'include "stdgates.inc";', f"qubit[{n_qubits}] q;", f"bit[{len(measured)}] c;"]
  for op in tape.operations:
    if op.name not in NATIVE_GATES:
      raise ValueError(f"{op.name} is not a native gate; decompose the tape with native_tape first")
    wires = ", ".join(f"q[{int(w)}]" for w in op.wires)
    angles = f"({', '.join(_angle(p) for p in op.parameters)})" if op.parameters else ""
    lines.append(f"{NATIVE_GATES[op.name]}{angles} {wires};")
  for bit, wire in enumerate(measured):
    lines.append(f"measure q[{wire}] -> c[{bit}];" if version == "qasm2" else f"c[{bit}] = measure q[{wire}];")
  return "\n".join(lines) + "\n"


def count(tape: qml.tape.QuantumScript) -> dict[str, int]:
  """Depth and one- and two-qubit gate counts of a tape's operations."""
  ops = tape.operations
  return {"depth": qcnn.circuit_depth(ops), "gates_1q": sum(len(op.wires) == 1 for op in ops),
          "gates_2q": sum(len(op.wires) == 2 for op in ops), "gates_other": sum(len(op.wires) > 2 for op in ops)}


def generic_inputs(spec: qcnn.QCNNSpec) -> tuple[dict, np.ndarray]:
  """(angles, features (F,)) drawn away from 0 and 2π (seeded), so that no gate of the circuit
  reduces to the identity: what resource counts are taken on."""
  rng = np.random.default_rng(0)
  params = {k: rng.uniform(0.1, 2 * math.pi - 0.1, shape) for k, shape in qcnn.param_shapes(spec).items()}
  return params, rng.uniform(0.1, 1.0, spec.n_features)


@functools.lru_cache(maxsize=64)
def resources(spec: qcnn.QCNNSpec) -> dict:
  """What a device needs for `spec`: qubits, trainable parameters, and depth and gate counts as
  built (the units' own gates) and in the RX, RY, RZ + CNOT basis (generic angles, so no gate
  vanishes)."""
  tape = gate_tape(spec, *generic_inputs(spec))
  return {"n_qubits": spec.n_qubits, "n_params": qcnn.n_params(spec), "readout_wires": list(qcnn.readout_wires(spec)),
          "as_built": count(tape), "native": count(native_tape(tape))}


def export(spec: qcnn.QCNNSpec, params: dict, features, version: str = "qasm2") -> tuple[str, dict]:
  """(OpenQASM program, description) of the trained circuit for one input.

  The description holds `readout_kind` ("expval", "expvals" or "probs"), `readout_wires`,
  `readout` (float64, computed on the exported circuit) and `resources` (qubits, parameters,
  depth and gate counts as built and as exported).
  """
  built = gate_tape(spec, params, features)
  native = native_tape(built)
  wires = qcnn.readout_wires(spec)
  description = {"readout_kind": spec.readout, "readout_wires": list(wires), "readout": readout(native, spec),
                 "resources": {"n_qubits": spec.n_qubits, "n_params": qcnn.n_params(spec),
                               "as_built": count(built), "native": count(native)}}
  return to_qasm(native, spec.n_qubits, wires, version), description


def capture_circuits(apply_fn, *args, **kwargs) -> list[tuple[qcnn.QCNNSpec, dict, np.ndarray]]:
  """Runs a Flax `apply_fn(*args, **kwargs)` and returns, for every QCNN module it calls in order,
  (circuit spec, trained angles {"conv", "pool"}, encoding inputs (B, F)): what `export` needs."""
  found = []

  def interceptor(next_fun, call_args, call_kwargs, context):
    out = next_fun(*call_args, **call_kwargs)
    if isinstance(context.module, layer.QCNN) and context.method_name == "__call__":
      params = context.module.variables["params"]
      found.append((context.module.circuit_spec, {"conv": np.asarray(params["quantum_conv"]),
                                                  "pool": np.asarray(params["quantum_pool"])},
                    np.asarray(call_args[0])))
    return out

  with nn.intercept_methods(interceptor):
    apply_fn(*args, **kwargs)
  return found
