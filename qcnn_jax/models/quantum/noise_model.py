"""A device calibration as noise of the project's engine: per logical wire and per two-qubit block.

``CalibratedNoise`` is what ``execution.qcnn_apply`` runs a circuit under (``noise=``), like the
uniform ``execution.Noise``: after each two-qubit block on wires (a, b) it records

* a two-qubit depolarizing channel ρ -> (1 - λ) ρ + λ I/4 on (a, b) (16 Kraus operators, one
  ``qml.QubitChannel``): a gate of average infidelity e is this channel with λ = e·d/(d - 1), d = 4.
  With relaxation modelled separately, λ is the part of e that relaxation during the gate does not
  explain (qiskit-aer's ``NoiseModel.from_backend`` does the same): λ = d (F_r - F) / (d F_r - 1)
  with F = 1 - e and F_r the average gate fidelity of both qubits' relaxation over the gate time
  (``gate_depolarizing``). A block of k native two-qubit gates carries 1 - (1 - λ)^k: depolarizing
  on (a, b) commutes with any unitary on (a, b), so this is exact for the gates' depolarizing part;
* on each of a, b: amplitude damping γ = 1 - exp(-t/T1), and pure dephasing at the rate
  1/T_phi = 1/T2 - 1/(2 T1) (T2 capped at 2 T1) in its rotation-averaged form: on the device it
  acts during the block, between the block's one-qubit rotations, which turn it into every Pauli
  error alike; averaged over them (a Clifford twirl) dephasing with Z-flip probability
  (1 - exp(-t/T_phi))/2 is the one-qubit depolarizing channel of the same process fidelity,
  ``qml.DepolarizingChannel(p)`` with p = (1 - exp(-t/T_phi))/2. (Phase damping placed after the
  block would leave the readout's last layer untouched and, against qiskit-aer on the same
  scheduled circuits, gives about a third of the dephasing's effect on <Z>.) t is the wire's
  exposure on the device (its scheduled time from its first gate to its measurement, idle time
  included) spread evenly over the blocks acting on it.

and ``confusion`` (n_qubits, 2, 2) holds each wire's readout confusion (row: prepared bit, column:
bit read), which the density engine applies to the outcome probabilities.

A model is stored as a small JSON file (``save``, ``load``) that names its channels, so a training
config can use it without qiskit; ``parse`` turns a config string (that path, or
"<channel>:<p>" for the uniform ``execution.Noise``) into the engine's noise.
"""

import dataclasses
import itertools
import json
import math

import numpy as np
import pennylane as qml

from qcnn_jax.models.quantum import qcnn
from qcnn_jax.models.quantum.execution import NOISE_CHANNELS, Noise

FORMAT = "qcnn_jax.calibrated_noise.v1"
PAULIS = (np.eye(2), np.array([[0, 1], [1, 0]]), np.array([[0, -1j], [1j, 0]]), np.diag([1.0, -1.0]))


def two_qubit_depolarizing(lam: float) -> list[np.ndarray]:
  """16 Kraus operators (4, 4) of ρ -> (1 - λ) ρ + λ I/4, 0 <= λ <= 16/15 (wire order (a, b))."""
  weights = [1 - 15 * lam / 16] + [lam / 16] * 15
  return [math.sqrt(w) * np.kron(p, q) for w, (p, q) in zip(weights, itertools.product(PAULIS, repeat=2))]


@dataclasses.dataclass(frozen=True)
class CalibratedNoise:
  """Per-pair and per-wire channels of a device calibration (hashable: static under ``jit``).

  Attributes:
    pairs: the circuit's two-qubit block wire pairs (a < b).
    depolarizing: two-qubit depolarizing λ per pair, after each block on it.
    amplitude_damping: γ per wire, after each block on it.
    dephasing: ``qml.DepolarizingChannel`` p of the averaged pure dephasing per wire, after each
      block on it.
    readout: per wire ((P(0|0), P(1|0)), (P(0|1), P(1|1))): row = prepared bit, column = bit read.
  """

  pairs: tuple[tuple[int, int], ...]
  depolarizing: tuple[float, ...]
  amplitude_damping: tuple[float, ...]
  dephasing: tuple[float, ...]
  readout: tuple[tuple[tuple[float, float], tuple[float, float]], ...]

  def __post_init__(self):
    n = len(self.readout)
    if len(self.depolarizing) != len(self.pairs) or not len(self.amplitude_damping) == len(self.dephasing) == n:
      raise ValueError(f"calibrated noise needs one λ per pair and one value per wire ({n} wires)")
    if any(not 0 <= v <= 16 / 15 for v in self.depolarizing) or any(
        not 0 <= v <= 1 for v in self.amplitude_damping + self.dephasing):
      raise ValueError("calibrated noise parameters must lie in [0, 1] (two-qubit depolarizing: [0, 16/15])")
    if not np.allclose(np.sum(self.readout, axis=-1), 1, atol=1e-9) or np.min(self.readout) < 0:
      raise ValueError("each readout confusion row must be probabilities summing to 1")

  @property
  def n_qubits(self) -> int:
    return len(self.readout)

  @property
  def confusion(self) -> np.ndarray:
    """(n_qubits, 2, 2) readout confusion, float64."""
    return np.asarray(self.readout, np.float64)

  def __call__(self, wires) -> None:
    """Records the channels that follow a two-qubit block on ``wires``."""
    pair = tuple(sorted(wires))
    if pair not in self.pairs:
      raise ValueError(f"calibrated noise has no pair {pair} (its pairs: {self.pairs}): built for another circuit")
    lam = self.depolarizing[self.pairs.index(pair)]
    if lam:
      qml.QubitChannel(two_qubit_depolarizing(lam), wires=list(wires))
    for wire in wires:
      if self.amplitude_damping[wire]:
        qml.AmplitudeDamping(self.amplitude_damping[wire], wires=wire)
      if self.dephasing[wire]:
        qml.DepolarizingChannel(self.dephasing[wire], wires=wire)


def relaxation(t1: float, t2: float, t: float) -> tuple[float, float]:
  """(γ, p) over t (seconds, as T1, T2): amplitude damping γ = 1 - exp(-t/T1) and the depolarizing p
  = (1 - exp(-t/T_phi))/2 of pure dephasing averaged over rotations, 1/T_phi = 1/min(T2, 2 T1) - 1/(2 T1)."""
  return 1 - math.exp(-t / t1), (1 - math.exp(-t / min(t2, 2 * t1) + t / (2 * t1))) / 2


def relaxation_process_fidelity(t1: float, t2: float, t: float) -> float:
  """Process (entanglement) fidelity of one qubit's relaxation over t: (1 + 2 e^{-t/T2} + e^{-t/T1}) / 4."""
  return (1 + 2 * math.exp(-t / min(t2, 2 * t1)) + math.exp(-t / t1)) / 4


def gate_depolarizing(error: float, relaxation_fidelities: tuple[float, ...]) -> float:
  """Depolarizing λ of a gate on k qubits with average gate infidelity ``error``, the part that the
  qubits' relaxation (process fidelities, ``relaxation_process_fidelity``) does not explain:
  d (F_r - F) / (d F_r - 1), d = 2**k, F = 1 - error, F_r = (d Π f + 1) / (d + 1); 0 if relaxation
  explains all of it. Without relaxation (f = 1): λ = error · d / (d - 1)."""
  d = 2 ** len(relaxation_fidelities)
  f_r = (d * math.prod(relaxation_fidelities) + 1) / (d + 1)
  if error <= 1 - f_r:
    return 0.0
  return min(d * (f_r - (1 - error)) / (d * f_r - 1), d * d / (d * d - 1))


def block_pairs(spec: qcnn.QCNNSpec) -> list[tuple[int, int]]:
  """Wire pairs (a < b) of every two-qubit block of ``spec``'s circuit, in circuit order."""
  return [tuple(sorted(p)) for layer in qcnn.layout(spec) for p in layer.conv_pairs + layer.pool_pairs]


def from_calibration(spec: qcnn.QCNNSpec, calibration: dict) -> CalibratedNoise:
  """``spec``'s noise from calibration numbers per logical wire and pair (seconds; ``calibration``
  as ``device_eval.calibration`` writes it): "t1", "t2", "exposure", "readout" ((2, 2) per wire),
  "pairs", "pair_error" (average infidelity per native two-qubit gate), "pair_gate_time", and
  "gates_per_block" (native two-qubit gates per block)."""
  blocks = block_pairs(spec)
  pairs = tuple(sorted(set(blocks)))
  per_wire = [sum(w in p for p in blocks) for w in range(spec.n_qubits)]
  t1, t2 = calibration["t1"], calibration["t2"]
  damping = [relaxation(t1[w], t2[w], calibration["exposure"][w] / max(per_wire[w], 1)) for w in range(spec.n_qubits)]
  found = {tuple(p): i for i, p in enumerate(calibration["pairs"])}
  lams = []
  for a, b in pairs:
    i, gate_time = found[(a, b)], calibration["pair_gate_time"][found[(a, b)]]
    per_gate = gate_depolarizing(calibration["pair_error"][i], tuple(
        relaxation_process_fidelity(t1[w], t2[w], gate_time) for w in (a, b)))
    lams.append(1 - (1 - per_gate) ** calibration["gates_per_block"])
  return CalibratedNoise(pairs, tuple(lams), tuple(g for g, _ in damping), tuple(p for _, p in damping),
                         tuple(tuple(tuple(float(v) for v in row) for row in m) for m in calibration["readout"]))


def save(noise: CalibratedNoise, path: str, calibration: dict | None = None) -> str:
  """Writes ``noise`` (and the ``calibration`` numbers it came from, for the record) as JSON."""
  record = {"format": FORMAT, **{f.name: getattr(noise, f.name) for f in dataclasses.fields(noise)},
            "calibration": calibration or {}}
  with open(path, "w") as f:
    json.dump(record, f, indent=1)
  return path


def load(path: str) -> CalibratedNoise:
  """The ``CalibratedNoise`` a ``save``d JSON file holds (lists back to tuples)."""
  with open(path) as f:
    record = json.load(f)
  if record.get("format") != FORMAT:
    raise ValueError(f"{path} is not a calibrated noise file (format {record.get('format')!r}, expected {FORMAT!r})")

  def frozen(value):
    return tuple(frozen(v) for v in value) if isinstance(value, list) else value

  return CalibratedNoise(**{f.name: frozen(record[f.name]) for f in dataclasses.fields(CalibratedNoise)})


def parse(setting: str | None) -> "Noise | CalibratedNoise | None":
  """The engine's noise for a config string: None or "" -> None; "<channel>:<p>" (channel in
  ``execution.NOISE_CHANNELS``) -> uniform ``Noise``; a path ending in .json -> ``load``."""
  if not setting:
    return None
  hint = (f"noise {setting!r}: give '<channel>:<p>' with channel one of {', '.join(NOISE_CHANNELS)} and 0 <= p <= 1 "
          "(e.g. 'depolarizing:0.01'), or the path of a calibrated noise JSON file "
          "(python -m experiments.device_eval --noise_model_out=<file>.json)")
  if setting.endswith(".json"):
    try:
      return load(setting)
    except (OSError, ValueError, KeyError, TypeError) as e:
      raise ValueError(f"{hint}: {e}") from None
  channel, _, p = setting.partition(":")
  try:
    value = float(p)
  except ValueError:
    raise ValueError(hint) from None
  if channel not in NOISE_CHANNELS or not 0 <= value <= 1:
    raise ValueError(hint)
  return Noise(channel, value)
