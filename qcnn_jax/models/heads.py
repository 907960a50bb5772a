"""Classifier heads on frozen backbone features (B, D) -> logits (B, K), quantum and classical twins.

A head is the part of a dressed hybrid after the backbone (Mari et al. 2020):

  features (B, D) -> [LayerNorm] -> Dense(k·F) -> [LayerNorm] -> tanh · angle_scale -> k blocks on
                  chunks of F -> values (B, k·R) -> readout -> logits (B, K)   [+ residual linear path]

The block is the only part that differs between a quantum head and its classical twin:
  quantum    a QCNN circuit (angles F -> R readout values: <Z>s in [-1, 1] or probabilities);
  product    no entanglement: each qubit encoded by RY(x) then a trained RZ(λ), RY(θ), all qubits'
             <Z> = cos θ cos x − sin θ cos λ sin x read out (Bowles, Ahmed & Schuld 2024 ablation);
  unentangled  the same QCNN circuit with every multi-qubit gate removed (`unentangled_values`):
             same encoding, conv units' single-qubit rotations, readout qubits and readout, so it
             differs from "quantum" by entanglement alone. Its parameters are the circuit's conv
             angles; the pooling angles act only through controlled rotations and are dropped
             (51 -> 45 at 8 qubits with su4). A readout qubit then sees only its own encoded angle(s).
  classical  Dense(F -> h) -> tanh -> Dense(h -> R) -> tanh (softmax for probability readouts),
             h chosen so that its parameter count matches the quantum block's (`twin_width`); with
             ``twin_full_rank`` at least K units, so that a multi-class twin's logits are not rank-
             limited (at 8 qubits: 2 units and 33 parameters for 5 classes otherwise).
Everything else (normalisation, bottleneck, readout, residual path, initialisation) is shared,
so a quantum head and its twin have the same inputs, outputs and (to one hidden unit, unless
full rank needs more) size.

Readout of the values: one <Z> (binary): a·v + b; probabilities: s·log(p + 1e-7) + b; anything
else: Dense(K). With ``calibrate`` the bias b starts at the training prior's logits (log-odds for
binary, log class frequencies otherwise) and s is learnt; without it (the legacy head of
``ResNet50QCNN``), b starts at 0 and probabilities are used as log p. In a residual head the prior
sits in the linear path's bias only: the gated branch's b starts at 0, so g scales what the block
computes, never a constant.
"""

import math
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml

from qcnn_jax.models import quantum
from qcnn_jax.models.quantum import noise_model
from qcnn_jax.models.quantum import qcnn as qcnn_lib
from qcnn_jax.models.quantum.layer import PROBS_LOG_EPS, angle_initializer

KINDS = ("linear", "quantum", "classical", "product", "unentangled")
BLOCK_PREFIXES = ("qcnn_", "twin_", "product_", "unentangled_")
RESIDUAL_GATE = "residual_gate"  # the residual head's g (parameter name)
PRE_ANGLES = ("reduce", "bottleneck_norm")  # modules whose output goes into tanh, in call order
SATURATION = 0.99  # |tanh| above this counts as a saturated bottleneck unit
# Head options of the end-to-end hybrids (resnet50_qcnn, resnet50_mlp) when not given: the in-path
# design chosen by validation AUC on frozen features (results/frozen_heads_fair/): the circuit's
# readout is the only route to the logits. LayerNorm after the bottleneck keeps the angles' spread
# whatever the backbone features' scale; tanh·π spans the whole Bloch circle of the RY encoding.
HEAD_DEFAULTS = {"norm": False, "bottleneck_norm": True, "angle_scale": math.pi, "angle_init_std": None,
                 "calibrate": True, "residual": False}
# The residual design (resnet50_qcnn_residual, resnet50_mlp_residual): linear path + g · head, g from
# 0. End to end its gate stays near 0 (README), so its circuit barely changes a prediction.
RESIDUAL_HEAD = {"norm": True, "bottleneck_norm": False, "angle_scale": math.pi, "angle_init_std": None,
                 "calibrate": True, "residual": True}


def is_residual_gate(path) -> bool:
  """True for the pytree path (``jax.tree_util`` keys) of a residual head's gate g."""
  return getattr(path[-1], "key", None) == RESIDUAL_GATE


def gate_off(params):
  """``params`` (any model's) with every residual gate at 0: a residual head then gives its linear
  path's logits alone, what the circuit (or its twin block) adds taken away."""
  return jax.tree_util.tree_map_with_path(lambda path, x: jnp.zeros_like(x) if is_residual_gate(path) else x, params)


def prior_logits(labels: np.ndarray, task: str, num_outputs: int) -> tuple[float, ...]:
  """(K,) logits of the training prior: log-odds per output (binary, multi-label), else log frequency.

  Args:
    labels: (N, L) integer labels of the training split.
    task: MedMNIST task string.
    num_outputs: K.
  """
  labels = np.asarray(labels)
  if task in ("binary-class", "multi-label, binary-class"):
    p = np.clip(labels.reshape(len(labels), -1).mean(axis=0), 1e-4, 1 - 1e-4)
    return tuple(float(v) for v in np.log(p / (1 - p)))
  counts = np.bincount(labels[:, 0], minlength=num_outputs).astype(np.float64)
  return tuple(float(v) for v in np.log(np.maximum(counts / counts.sum(), 1e-4)))


def is_probed(name: str | None) -> bool:
  """Submodules whose outputs the diagnostics read: the bottleneck Dense and the blocks."""
  return bool(name) and (name in PRE_ANGLES or name.startswith(BLOCK_PREFIXES))


def capture_probed(module, method_name: str) -> bool:
  """``capture_intermediates`` filter of ``apply``: the outputs of the probed submodules."""
  return method_name == "__call__" and is_probed(module.name)


def apply_probed(module: nn.Module, variables, *args, **kwargs):
  """``module.apply(variables, *args, **kwargs)`` -> (output, ``probe_stats`` of its dressed head)."""
  out, captured = module.apply(variables, *args, mutable=["intermediates"], capture_intermediates=capture_probed,
                               **kwargs)
  return out, probe_stats(captured.get("intermediates", {}))


def probe_stats(intermediates) -> dict:
  """Per-example diagnostics from captured intermediates (any nesting, e.g. a hybrid's "head"):
  "saturated" (B,) share of bottleneck units with |tanh| > SATURATION, "readout_min" and
  "readout_max" (B,) range of the blocks' readout values. Empty for a model without such a head."""
  found = {"reduce": [], "blocks": []}

  def walk(tree):
    for name, value in tree.items():
      if name == "__call__":
        continue
      target = "reduce" if name in PRE_ANGLES else "blocks" if name.startswith(BLOCK_PREFIXES) else None
      if target and "__call__" in value:
        found[target].append(value["__call__"][0])
      elif hasattr(value, "items"):
        walk(value)

  walk(intermediates)
  stats = {}
  if found["reduce"]:
    stats["saturated"] = jnp.mean(jnp.abs(jnp.tanh(found["reduce"][-1])) > SATURATION, axis=-1)  # the tanh's input
  if found["blocks"]:
    values = jnp.concatenate(found["blocks"], axis=-1)
    stats["readout_min"], stats["readout_max"] = values.min(axis=-1), values.max(axis=-1)
  return stats


def twin_width(target_params: int, n_in: int, n_out: int, min_width: int = 1) -> int:
  """Hidden width h >= ``min_width`` of Dense(n_in -> h) -> Dense(h -> n_out) nearest to ``target_params``."""
  return max(min_width, round((target_params - n_out) / (n_in + 1 + n_out)))


def block_output_size(spec: qcnn_lib.QCNNSpec, kind: str) -> int:
  """R: readout values per block (a product block reads every qubit)."""
  return spec.n_qubits if kind == "product" else spec.output_size


class ProductBlock(nn.Module):
  """Unentangled circuit: qubit i in RY(x_i)|0>, then RZ(λ_i), RY(θ_i); (B, n) angles -> (B, n) <Z>s."""

  n_qubits: int
  angle_init_std: float | None = None

  @nn.compact
  def __call__(self, angles):
    init = angle_initializer(self.angle_init_std)
    theta = self.param("quantum_theta", init, (self.n_qubits,), jnp.float32)
    lam = self.param("quantum_lambda", init, (self.n_qubits,), jnp.float32)
    return jnp.cos(theta) * jnp.cos(angles) - jnp.sin(theta) * jnp.cos(lam) * jnp.sin(angles)


def unentangled_values(spec: qcnn_lib.QCNNSpec, conv_params, angles):
  """Readout (R,) of the circuit ``spec`` with every multi-qubit gate removed, for one example.

  The gate list is the circuit's own (`qcnn_lib.qcnn_circuit`: encoding, conv units, pooling,
  re-uploads); gates on two or more wires (CNOTs, controlled rotations) are dropped, so the state
  stays a product and each wire is simulated as a 2-vector. Probabilities of the readout wires
  are the products of theirs (first wire most significant); ⟨Z⟩ = 1 − 2·p(1).

  Args:
    spec: circuit options (an angle encoding: amplitude encoding is itself entangling).
    conv_params: (layers, unit params) conv angles, radians.
    angles: (F,) encoded angles, radians.
  """
  if spec.encoding == "amplitude":
    raise ValueError("amplitude encoding prepares an entangled state: no unentangled version")
  pool_params = jnp.zeros(qcnn_lib.param_shapes(spec)["pool"], conv_params.dtype)
  with qml.queuing.AnnotatedQueue() as queue:
    qcnn_lib.qcnn_circuit(spec, angles, *qcnn_lib.gate_blocks(spec, conv_params, pool_params))
  states = {w: jnp.array([1.0, 0.0], jnp.complex64) for w in range(spec.n_qubits)}
  for op in queue.queue:
    if isinstance(op, qml.operation.Operator) and len(op.wires) == 1:
      states[op.wires[0]] = qml.matrix(op) @ states[op.wires[0]]
  p_one = [jnp.abs(states[w][1]) ** 2 for w in qcnn_lib.readout_wires(spec)]
  if spec.readout != "probs":
    return qcnn_lib.postprocess(spec, [1.0 - 2.0 * p for p in p_one])
  probs = jnp.ones((1,))
  for p in p_one:
    probs = jnp.kron(probs, jnp.stack([1.0 - p, p]))
  return qcnn_lib.postprocess(spec, probs)


class UnentangledBlock(nn.Module):
  """The QCNN with its entangling gates removed (`unentangled_values`): (B, F) angles -> (B, R)."""

  spec: qcnn_lib.QCNNSpec
  angle_init_std: float | None = None

  @nn.compact
  def __call__(self, angles):
    conv = self.param("quantum_conv", angle_initializer(self.angle_init_std), qcnn_lib.param_shapes(self.spec)["conv"],
                      jnp.float32)
    return jax.vmap(lambda x: unentangled_values(self.spec, conv, x))(angles).astype(jnp.float32)


class ClassicalBlock(nn.Module):
  """Twin block: Dense(h) -> tanh -> Dense(R) -> tanh, or softmax when ``probabilities``."""

  hidden: int
  outputs: int
  probabilities: bool

  @nn.compact
  def __call__(self, angles):
    z = nn.Dense(self.outputs, name="out")(jnp.tanh(nn.Dense(self.hidden, name="hidden")(angles)))
    return nn.softmax(z) if self.probabilities else jnp.tanh(z)


class FeatureHead(nn.Module):
  """Head on backbone features (see the module docstring): ``__call__((B, D)) -> (B, num_outputs)``.

  Attributes:
    num_outputs: K logits.
    kind: "linear" (Dense(K) on the features, nothing else), "quantum", "classical", "product" or
      "unentangled".
    n_qubits, conv_unit, encoding, readout, reuploading, execution: the QCNN of each block
      (readout as ``quantum.head_readout``; a classical twin copies the quantum block's R).
    noise: the quantum blocks' noise (``noise_model.parse``): None, "<channel>:<p>" (uniform, e.g.
      "depolarizing:0.01") or the path of a calibrated noise JSON; execution "auto" then runs
      density matrices. Other kinds, which have no circuit, refuse it (ValueError).
    n_readout: qubits read out by an "expvals" readout (default ``quantum.head_readout``'s).
    n_blocks: k blocks, each on its own chunk of F angles.
    norm: LayerNorm on the features before the bottleneck Dense.
    bottleneck_norm: LayerNorm on the bottleneck Dense's output, before tanh (each example's
      pre-angles at zero mean and unit variance, whatever the features' scale).
    angle_scale: angles = tanh(Dense) * angle_scale (π/2 legacy; π covers the whole Bloch circle
      for RY encodings).
    angle_init_std: None: circuit angles uniform in [0, 2π); else ~ N(0, std²).
    calibrate: readout bias starts at ``prior``; probability readouts get a learnt scale.
    prior: (K,) prior logits (``prior_logits``); zeros when None.
    residual: logits = Dense(K)(features) + g · head logits, g starting at 0 (starts as linear).
    gate_init: g's starting value when not 0 (None: 0); 1 makes the circuit's logits count from
      the first step (the "forced" ablation of the residual head).
    logit_scale_init: initial a of the one-<Z> readout.
    twin_full_rank: a classical twin gets at least K hidden units (`twin_width`'s min_width).
  """

  num_outputs: int
  kind: str = "quantum"
  n_qubits: int = 8
  conv_unit: str = "su4"
  encoding: str = "angle_y"
  readout: str = "auto"
  n_readout: int | None = None
  reuploading: int = 1
  execution: str = "auto"
  noise: str | None = None
  n_blocks: int = 1
  norm: bool = False
  bottleneck_norm: bool = False
  angle_scale: float = math.pi / 2
  angle_init_std: float | None = None
  calibrate: bool = False
  prior: Sequence[float] | None = None
  residual: bool = False
  gate_init: float | None = None
  logit_scale_init: float = 3.0
  twin_full_rank: bool = False

  def circuit_spec(self) -> qcnn_lib.QCNNSpec:
    """The QCNN of one quantum block (also fixes R and the twin's size)."""
    readout, n_readout = quantum.head_readout(self.num_outputs, self.n_qubits, self.readout)
    if self.n_readout is not None:
      if readout != "expvals":
        raise ValueError(f"n_readout needs readout 'expvals', got {readout!r}")
      n_readout = self.n_readout
    return qcnn_lib.QCNNSpec(self.n_qubits, self.conv_unit, self.encoding, readout, n_readout,
                             self.num_outputs if readout == "probs" else None, self.reuploading)

  def block(self, index: int) -> nn.Module:
    """Block ``index``: the circuit, its unentangled ablations or its classical twin."""
    spec = self.circuit_spec()
    if self.kind == "quantum":
      return quantum.QCNN(spec.n_qubits, spec.conv_unit, spec.encoding, spec.readout, spec.n_readout,
                          spec.n_outcomes, spec.reuploading, self.execution, noise=noise_model.parse(self.noise),
                          angle_init_std=self.angle_init_std, name=f"qcnn_{index}")
    if self.noise:
      raise ValueError(f"noise {self.noise!r} applies to quantum heads only, not kind {self.kind!r}: leave it unset")
    if self.kind == "product":
      return ProductBlock(spec.n_qubits, self.angle_init_std, name=f"product_{index}")
    if self.kind == "unentangled":
      return UnentangledBlock(spec, self.angle_init_std, name=f"unentangled_{index}")
    outputs = block_output_size(spec, self.kind)
    hidden = twin_width(qcnn_lib.n_params(spec), spec.n_features, outputs,
                        self.num_outputs if self.twin_full_rank else 1)
    return ClassicalBlock(hidden, outputs, spec.readout == "probs", name=f"twin_{index}")

  def bias_init(self, at_prior: bool = True):
    """Initialiser of a (K,) logit bias: the prior's logits (``calibrate``, ``at_prior``) or 0."""
    use_prior = at_prior and self.calibrate and self.prior is not None
    prior = np.asarray(self.prior) if use_prior else np.zeros(self.num_outputs)
    return lambda key, shape, dtype=jnp.float32: jnp.asarray(prior, dtype).reshape(shape)

  def read(self, values):
    """(B, k·R) block values -> (B, K) logits (biased at the prior unless the head is residual)."""
    bias_init = self.bias_init(at_prior=not self.residual)
    spec = self.circuit_spec()
    one_block = self.n_blocks == 1 and self.kind != "product"
    if one_block and spec.readout == "expval":
      scale = self.param("logit_scale", nn.initializers.constant(self.logit_scale_init), (1,), jnp.float32)
      return scale * values + self.param("logit_bias", bias_init, (1,), jnp.float32)
    if one_block and spec.readout == "probs":
      log_p = jnp.log(values + PROBS_LOG_EPS)
      if not self.calibrate:
        return log_p
      scale = self.param("logit_scale", nn.initializers.ones, (1,), jnp.float32)
      return scale * log_p + self.param("logit_bias", bias_init, (self.num_outputs,), jnp.float32)
    return nn.Dense(self.num_outputs, bias_init=bias_init, name="readout")(values)

  @nn.compact
  def __call__(self, features):
    """(B, D) float features -> (B, num_outputs) float32 logits."""
    if self.kind not in KINDS:
      raise ValueError(f"head kind {self.kind!r} not in {KINDS}")
    features = features.astype(jnp.float32)
    if self.kind == "linear":
      return nn.Dense(self.num_outputs, bias_init=self.bias_init(), name="linear")(features)
    x = nn.LayerNorm(name="norm")(features) if self.norm else features
    width = self.circuit_spec().n_features
    z = nn.Dense(self.n_blocks * width, name="reduce")(x)
    z = nn.LayerNorm(name="bottleneck_norm")(z) if self.bottleneck_norm else z
    angles = jnp.tanh(z) * self.angle_scale
    values = jnp.concatenate([self.block(i)(angles[:, i * width:(i + 1) * width])
                              for i in range(self.n_blocks)], axis=-1)
    logits = self.read(values)
    if not self.residual:
      if self.gate_init is not None:
        raise ValueError("gate_init needs residual=True (it is the residual gate's starting value)")
      return logits
    gate = self.param(RESIDUAL_GATE, nn.initializers.constant(self.gate_init or 0.0), (1,), jnp.float32)
    return nn.Dense(self.num_outputs, bias_init=self.bias_init(), name="linear")(features) + gate * logits
