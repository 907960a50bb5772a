"""QCNN circuit definition: spec, layer layout, circuit, readouts and resource counts.

The circuit is defined once here, in PennyLane terms (encoding + conv units + pooling + readout).
How each two-qubit block is applied (gate by gate or as a fused 4x4 unitary) is chosen in
``execution.py``; this module only asks for one callable ``block(wires)`` per layer.

Layout (any n from 4 to 16, following Hur et al.'s 8-qubit circuit): with active wires
``w[0..m-1]`` a conv layer applies the layer's shared unit on the wrap-around pair (w[0], w[m-1])
when m >= 3 (for m = 2 it would repeat (w[0], w[1])), then on (w[0],w[1]), (w[2],w[3]), ...,
then on (w[1],w[2]), (w[3],w[4]), ...  — Hur et al.'s order. The pooling layer pools pairs
(control=w[2i+1], target=w[2i]) and discards the controls; with an odd m the last wire passes
unpooled, and only ``m - n_readout`` pairs are pooled when fewer suffice to reach the readout
qubits. Layers repeat until ``n_readout`` wires remain; those are measured. At 8 qubits this is
Hur et al.'s circuit, except the last pooling keeps wire 0 (they keep wire 4).
"""

import dataclasses
import functools
import math
from typing import Callable, NamedTuple, Sequence

import jax.numpy as jnp
import numpy as np
import pennylane as qml

from qcnn_jax.models.quantum import encodings
from qcnn_jax.models.quantum.pooling import POOL_UNIT
from qcnn_jax.models.quantum.units import CONV_UNITS

READOUTS = ("expval", "probs", "expvals")
Block = Callable[[Sequence[int]], None]


@dataclasses.dataclass(frozen=True)
class QCNNSpec:
  """Circuit options (hashable, usable as a static jit argument).

  Attributes:
    n_qubits: circuit width, 4..16 (any integer >= 2 works).
    conv_unit: key of ``CONV_UNITS``.
    encoding: key of ``encodings.ENCODINGS``.
    readout: "expval" (<Z> of 1 qubit), "probs" (basis probabilities of the readout qubits) or
      "expvals" (<Z> of each readout qubit).
    n_readout: qubits kept and measured at the end, 1 <= n_readout < n_qubits.
    n_outcomes: "probs" only: keep the first ``n_outcomes`` of the 2**n_readout outcomes and
      renormalise them (unused outcomes are dropped); None keeps all.
    reuploading: number of conv layers preceded by the encoding (1 = encode once at the start);
      re-uploads act on the wires still active. Amplitude encoding allows only 1.
  """

  n_qubits: int
  conv_unit: str = "su4"
  encoding: str = "angle_y"
  readout: str = "expval"
  n_readout: int = 1
  n_outcomes: int | None = None
  reuploading: int = 1

  def __post_init__(self):
    if self.conv_unit not in CONV_UNITS:
      raise ValueError(f"conv_unit {self.conv_unit!r} not in {sorted(CONV_UNITS)}")
    if self.encoding not in encodings.ENCODINGS:
      raise ValueError(f"encoding {self.encoding!r} not in {sorted(encodings.ENCODINGS)}")
    if self.readout not in READOUTS:
      raise ValueError(f"readout {self.readout!r} not in {READOUTS}")
    if not 1 <= self.n_readout < self.n_qubits:
      raise ValueError(f"need 1 <= n_readout < n_qubits, got {self.n_readout}, {self.n_qubits}")
    if self.readout == "expval" and self.n_readout != 1:
      raise ValueError("readout 'expval' measures one qubit; use 'expvals' for several")
    if self.n_outcomes is not None and (self.readout != "probs" or not 1 <= self.n_outcomes <= 2**self.n_readout):
      raise ValueError(f"n_outcomes={self.n_outcomes} needs readout 'probs' and <= 2**n_readout")
    if not 1 <= self.reuploading <= len(layout(self)):
      raise ValueError(f"reuploading must be in 1..{len(layout(self))}, got {self.reuploading}")
    if self.encoding == "amplitude" and self.reuploading != 1:
      raise ValueError("amplitude encoding is a state preparation and cannot be re-uploaded")

  @property
  def n_features(self) -> int:
    """Input features F per sample."""
    return encodings.n_features(self.encoding, self.n_qubits)

  @property
  def output_size(self) -> int:
    """Readout size R per sample."""
    if self.readout == "probs":
      return self.n_outcomes or 2**self.n_readout
    return self.n_readout


class Layer(NamedTuple):
  """One conv + pool layer: active wires, conv pairs (a, b), pool pairs (control, target)."""

  active: tuple[int, ...]
  conv_pairs: tuple[tuple[int, int], ...]
  pool_pairs: tuple[tuple[int, int], ...]


def conv_pairs(active: Sequence[int]) -> tuple[tuple[int, int], ...]:
  """Wrap-around pair (m >= 3), then even pairs, then odd pairs over ``active`` wires."""
  m = len(active)
  wrap = [(active[0], active[-1])] if m >= 3 else []
  even = [(active[i], active[i + 1]) for i in range(0, m - 1, 2)]
  odd = [(active[i], active[i + 1]) for i in range(1, m - 1, 2)]
  return tuple(wrap + even + odd)


def pool_pairs(active: Sequence[int], n_keep: int) -> tuple[tuple[int, int], ...]:
  """(control=w[2i+1], target=w[2i]) pairs, as many as halve ``active`` without going below n_keep."""
  n_pairs = min(len(active) // 2, len(active) - n_keep)
  return tuple((active[2 * i + 1], active[2 * i]) for i in range(n_pairs))


def layout(spec: QCNNSpec) -> tuple[Layer, ...]:
  """The conv + pool layers that take ``spec.n_qubits`` wires down to ``spec.n_readout``."""
  active, layers = tuple(range(spec.n_qubits)), []
  while len(active) > spec.n_readout:
    pools = pool_pairs(active, spec.n_readout)
    layers.append(Layer(active, conv_pairs(active), pools))
    discarded = {control for control, _ in pools}
    active = tuple(w for w in active if w not in discarded)
  return tuple(layers)


def readout_wires(spec: QCNNSpec) -> tuple[int, ...]:
  """Wires measured at the end (ascending; the first is the most significant bit for probs)."""
  last = layout(spec)[-1]
  discarded = {control for control, _ in last.pool_pairs}
  return tuple(w for w in last.active if w not in discarded)


def param_shapes(spec: QCNNSpec) -> dict[str, tuple[int, int]]:
  """Shapes of the trainable angles: conv (layers, unit params) and pool (layers, 2)."""
  n_layers = len(layout(spec))
  return {"conv": (n_layers, CONV_UNITS[spec.conv_unit].n_params), "pool": (n_layers, POOL_UNIT.n_params)}


def n_params(spec: QCNNSpec) -> int:
  """Total number of trainable circuit angles."""
  return sum(math.prod(shape) for shape in param_shapes(spec).values())


def gate_blocks(spec: QCNNSpec, conv_params, pool_params) -> tuple[list[Block], list[Block]]:
  """Per-layer blocks applying the units gate by gate; params (layers, P) and (layers, 2)."""
  conv_fn = CONV_UNITS[spec.conv_unit].fn
  conv = [functools.partial(conv_fn, p) for p in conv_params]
  pool = [functools.partial(POOL_UNIT.fn, p) for p in pool_params]
  return conv, pool


def qcnn_circuit(spec: QCNNSpec, features, conv_blocks: Sequence[Block], pool_blocks: Sequence[Block],
                 noise: Block | None = None):
  """Quantum function: encoding, conv + pool layers, readout measurement(s).

  Args:
    spec: circuit options.
    features: (F,) angles in radians (amplitudes for amplitude encoding).
    conv_blocks, pool_blocks: one callable ``block(wires)`` per layer.
    noise: optional channel ``noise(wires)`` applied after every two-qubit block.

  Returns:
    ``qml.probs`` of the readout wires, or a list of ``qml.expval(Z)``, one per readout wire.
  """
  for index, layer in enumerate(layout(spec)):
    if index < spec.reuploading:
      encodings.encode(spec.encoding, features, layer.active, spec.n_qubits)
    for pairs, block in ((layer.conv_pairs, conv_blocks[index]), (layer.pool_pairs, pool_blocks[index])):
      for wires in pairs:
        block(wires)
        if noise is not None:
          noise(wires)
  wires = readout_wires(spec)
  if spec.readout == "probs":
    return qml.probs(wires=wires)
  return [qml.expval(qml.PauliZ(w)) for w in wires]


def postprocess(spec: QCNNSpec, raw):
  """Circuit output -> (R,): stacked <Z> values, or the first n_outcomes probabilities renormalised
  (uniform where they hold no probability at all, e.g. none of a few shots landed on them)."""
  if spec.readout != "probs":
    return jnp.stack(raw, axis=-1)
  kept = raw[..., : spec.output_size]
  mass = jnp.sum(kept, axis=-1, keepdims=True)
  empty = mass <= jnp.finfo(kept.dtype).tiny
  return jnp.where(empty, 1.0 / spec.output_size, kept / jnp.where(empty, 1.0, mass))


def circuit_depth(operations) -> int:
  """Depth of a gate list: each gate starts after the last gate on any of its wires."""
  depth_at: dict = {}
  for op in operations:
    level = 1 + max((depth_at.get(w, 0) for w in op.wires), default=0)
    depth_at.update({w: level for w in op.wires})
  return max(depth_at.values(), default=0)


def resources(spec: QCNNSpec) -> dict[str, int]:
  """Resources of the gate-by-gate circuit, counted from its tape without simulating it.

  Returns:
    dict(n_qubits, depth, gate_count, n_params). Amplitude encoding counts as one StatePrep
    gate; pooling's discard and the final measurements are not gates.
  """
  shapes = param_shapes(spec)
  conv, pool = gate_blocks(spec, np.zeros(shapes["conv"]), np.zeros(shapes["pool"]))
  features = np.zeros(spec.n_features)
  tape = qml.tape.make_qscript(qcnn_circuit)(spec, features, conv, pool)
  return {
      "n_qubits": spec.n_qubits,
      "depth": circuit_depth(tape.operations),
      "gate_count": len(tape.operations),
      "n_params": n_params(spec),
  }
