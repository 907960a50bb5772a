"""How a QCNN circuit runs: gate by gate, with each two-qubit block fused into one unitary, or on
the pure-JAX statevector engine.

The two PennyLane modes run the same ``qcnn.qcnn_circuit`` on PennyLane's ``default.qubit``
(``default.mixed`` with noise) through the JAX interface with ``diff_method="backprop"``, so the
whole circuit traces into XLA inside a jitted step and is vmapped over the batch.

* ``"gates"``: each unit is applied gate by gate.
* ``"fused"``: each layer's shared unit (and pooling block) becomes one
  ``qml.QubitUnitary`` whose 4x4 matrix (``qml.matrix`` of the unit) is computed once per forward
  pass, outside the vmap over samples. Same outputs, much faster to compile and differentiate.
* ``"statevector"``: the "fused" circuit's tape, applied by ``interleaved.py`` to a batched real
  state (real and imaginary parts interleaved, one matmul per block of gates) without a PennyLane
  device, differentiated with the adjoint method (memory independent of depth). Same outputs
  again, several times faster; exact expectations only (no shots, no noise).
* ``"statevector_v1"``: the previous statevector engine (``statevector.py``, complex strided
  updates), kept for one release as the reference the interleaved engine is measured against.
* ``"density"``: the "fused" circuit's tape with its noise channels, applied by ``density.py`` to
  density matrices without a PennyLane device (equal to ``default.mixed``).
* ``"auto"`` (the models' default): ``statevector`` without noise, ``density`` with noise
  (``resolve``).

Finite shots sample each readout with a per-sample PRNG key. On the engines (``shot_readout``) the
readout wires' joint outcomes are drawn once per shot, like a device, and the estimate is
differentiable by the straight-through rule (value: the sampled frequencies; gradient: the exact
one); on the PennyLane modes the backprop gradient of a sampled estimate is not meaningful.
Noise applies a depolarizing, amplitude-damping or phase-damping channel with probability ``p`` on
both wires after every two-qubit block (``Noise``), or a device calibration's channels per pair and
wire with its readout confusion (``noise_model.CalibratedNoise``, density engine only). PennyLane's
``default.mixed`` holds 4**n_qubits entries per sample (keep it to about 10 qubits); the density engine
holds the density matrices of the wires that have interacted and traces out each wire after its
last use, so with angle encodings its largest factor is 6 qubits at n = 8, 8 at 12 and 10 at 16
(``memory_estimate``).
"""

import contextlib
import dataclasses
import functools
import os
import warnings
from typing import Callable

import jax
import jax.numpy as jnp
import pennylane as qml

from qcnn_jax.models.quantum import density, interleaved, qcnn, statevector
from qcnn_jax.models.quantum.pooling import POOL_UNIT
from qcnn_jax.models.quantum.units import CONV_UNITS

EXECUTIONS = ("auto", "fused", "gates", "statevector", "statevector_v1", "density")
ENGINES = ("statevector", "statevector_v1", "density")  # the project's own simulators (no PennyLane device)
# "auto" runs pure-state circuits on the statevector engine and noisy ones on the density-matrix
# engine, with or without shots.
# Measured side by side (2-core CPU, n=8, batch 128, experiments.benchmarks.qcnn): fwd+grad 17.7x
# plain PennyLane against fused's 5.9x, cold compile 10.7 s against 10.1 s (README "Performance").
NOISE_CHANNELS = {"depolarizing": qml.DepolarizingChannel, "amplitude_damping": qml.AmplitudeDamping,
                  "phase_damping": qml.PhaseDamping}


@dataclasses.dataclass(frozen=True)
class Noise:
  """Noise after each two-qubit block: ``channel`` in NOISE_CHANNELS, probability ``p`` per qubit."""

  channel: str
  p: float

  def __post_init__(self):
    if self.channel not in NOISE_CHANNELS:
      raise ValueError(f"noise channel {self.channel!r} not in {sorted(NOISE_CHANNELS)}")

  def __call__(self, wires) -> None:
    for wire in wires:
      NOISE_CHANNELS[self.channel](self.p, wires=wire)


def resolve(execution: str, shots: int | None = None, noise: "Noise | None" = None) -> str:
  """The engine that runs: `execution` itself, or for "auto" the project's engines: statevector for
  pure states, density with noise (both with or without shots)."""
  del shots  # both engines sample shots
  if execution not in EXECUTIONS:
    raise ValueError(f"execution {execution!r} not in {EXECUTIONS}")
  if execution != "auto":
    return execution
  return "statevector" if noise is None else "density"


class QubitMemoryError(ValueError):
  """A circuit whose simulation would not fit in memory."""


def memory_estimate(spec: qcnn.QCNNSpec, batch: int, execution: str = "fused", noise: Noise | None = None) -> int:
  """Bytes a batched forward + backward pass keeps alive (XLA's temporaries), from stored states.

  A state holds 2**n_qubits (pure) or 4**n_qubits (density matrix, with noise) complex entries of
  8 bytes (16 with jax_enable_x64). Stored states were fitted to XLA's memory analysis of the jitted
  gradient (CPU, su4 units):
  * "statevector": the final state of every sample plus a chunk's working states (the batch runs in
    chunks of ``interleaved.CHUNK_BYTES``): 2.7 per sample of the batch + 5.4 per sample of a chunk,
    from 4.0 / 2.8 batch states measured at n = 14 (batch 64) / 16 (128) and 5.7-7.7 at n = 8-12 when the
    batch is one chunk (estimate 8.1);
  * "statevector_v1": 10 per sample (8.6, 8.6, 6.7 measured at n = 8, 10, 12, batch 32);
  * "fused": 3n + 4 per sample (23, 31, 36 at n = 8, 10, 12), 5n + 4 with noise (19, 33 at n = 4, 6),
    four times that for "gates" (every gate's output is kept);
  * "density": ``density.stored_matrices`` (the factors its groups act on, in full-matrix units).
  """
  execution = resolve(execution, None, noise)
  entries = (4 if noise is not None or execution == "density" else 2) ** spec.n_qubits
  entry_bytes = 16 if jax.config.jax_enable_x64 else 8
  if execution == "density":
    return int(entries * entry_bytes * density.stored_matrices(spec, batch))
  if execution == "statevector":
    chunk = min(batch, max(1, interleaved.CHUNK_BYTES // (entries * entry_bytes)))
    return int(entries * entry_bytes * (2.7 * batch + 5.4 * chunk))
  if execution == "statevector_v1":
    states = 10
  else:
    states = (5 if noise is not None else 3) * spec.n_qubits + 4
    if execution == "gates":  # every gate's output is kept, not every block's
      states *= 4
  return batch * entries * entry_bytes * states


def memory_limit() -> int:
  """Bytes the first local device can hold: the accelerator's limit, or 90% of the host's RAM."""
  stats = jax.local_devices()[0].memory_stats() or {}
  if "bytes_limit" in stats:
    return int(stats["bytes_limit"])
  return int(0.9 * os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES"))


def check_memory(spec: qcnn.QCNNSpec, batch: int, execution: str = "fused", noise: Noise | None = None,
                 limit: int | None = None) -> None:
  """Refuses (QubitMemoryError, with the numbers) a circuit batch whose simulation would not fit."""
  need, limit = memory_estimate(spec, batch, execution, noise), memory_limit() if limit is None else limit
  if need > limit:
    kind = "density matrices (noise)" if noise is not None else "statevectors"
    raise QubitMemoryError(
        f"a {spec.n_qubits}-qubit QCNN on a batch of {batch} needs about {need / 2**30:.1f} GiB of {kind} "
        f"({execution!r} execution) but this device holds {limit / 2**30:.1f} GiB: use fewer qubits, a smaller "
        f"batch (batch_size, eval_batch_size){', or execution statevector' if execution != 'statevector' and noise is None else ''}"
        f"{', or fewer qubits for noise (about 10 at most)' if noise is not None else ''}.")


@contextlib.contextmanager
def quiet_complex128_truncation():
  """Silences JAX's warning when PennyLane's complex128 |0...0> becomes complex64 (x64 off),
  which is the intended single-precision simulation."""
  with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "Explicitly requested dtype complex128", UserWarning)
    yield


def unit_matrix(unit_fn: Callable, params):
  """(4, 4) complex matrix of a two-qubit unit ``unit_fn(params, wires)`` in wire order (a, b),
  multiplied out by PennyLane in full precision (no TF32 on GPUs)."""
  with jax.default_matmul_precision("highest"):
    return qml.matrix(unit_fn, wire_order=[0, 1])(params, wires=[0, 1])


def apply_unitary(matrix, wires) -> None:
  """Applies a precomputed (4, 4) ``matrix`` on ``wires``."""
  qml.QubitUnitary(matrix, wires=wires)


def layer_args(spec: qcnn.QCNNSpec, params: dict, execution: str):
  """What the circuit receives per layer: angles ("gates") or (layers, 4, 4) matrices ("fused",
  "statevector")."""
  if execution == "gates":
    return params["conv"], params["pool"]
  if execution in ("fused", "statevector", "statevector_v1"):
    conv_fn = CONV_UNITS[spec.conv_unit].fn
    # One traced unit per kind, mapped over the layers: half the compile time at n = 12.
    conv = jax.vmap(functools.partial(unit_matrix, conv_fn))(params["conv"])
    pool = jax.vmap(functools.partial(unit_matrix, POOL_UNIT.fn))(params["pool"])
    return conv, pool
  raise ValueError(f"execution {execution!r} not in {EXECUTIONS}")


def layer_blocks(spec: qcnn.QCNNSpec, execution: str, conv_args, pool_args):
  """Per-layer ``block(wires)`` callables for ``execution``, from ``layer_args``' outputs."""
  if execution == "gates":
    return qcnn.gate_blocks(spec, conv_args, pool_args)
  return ([functools.partial(apply_unitary, m) for m in conv_args],
          [functools.partial(apply_unitary, m) for m in pool_args])


def sample_fn(spec: qcnn.QCNNSpec, execution: str = "fused", shots: int | None = None,
              noise: Noise | None = None) -> Callable:
  """Per-sample forward ``fn(features (F,), conv_args, pool_args, key) -> (R,)``.

  ``conv_args, pool_args`` come from ``layer_args``; ``key`` seeds shot sampling (None if exact).
  """

  def forward(features, conv_args, pool_args, key):
    device = qml.device("default.mixed" if noise else "default.qubit", wires=spec.n_qubits, seed=key)

    @qml.qnode(device, interface="jax", diff_method="backprop" if shots is None else None)
    def circuit():
      conv, pool = layer_blocks(spec, execution, conv_args, pool_args)
      return qcnn.qcnn_circuit(spec, features, conv, pool, noise)

    run = circuit if shots is None else qml.set_shots(circuit, shots=shots)
    with jax.default_matmul_precision("highest"):  # PennyLane's simulation matmuls: no TF32 on GPUs
      return qcnn.postprocess(spec, run())

  return forward


def readout_confusion(noise, dtype):
  """(n_qubits, 2, 2) readout confusion of ``noise`` in ``dtype`` (its ``confusion``), or None."""
  confusion = getattr(noise, "confusion", None)
  return None if confusion is None else jnp.asarray(confusion, dtype)


def _engine(spec: qcnn.QCNNSpec, params: dict, features, noise, engine: str = "statevector"):
  """Exact (B, R) readouts on the project's engines: density matrices with noise (and its readout
  confusion, if any), else statevectors (``engine`` "statevector" or "statevector_v1")."""
  if noise is None:
    return statevector_apply(spec, params, features, v1=engine == "statevector_v1")
  blocks = layer_blocks(spec, "statevector", *layer_args(spec, params, "statevector"))
  return density.qcnn_density(spec, features, *blocks, noise, readout_confusion(noise, features.dtype))


def shot_readout(spec: qcnn.QCNNSpec, joint, shots: int, key):
  """``spec``'s readout estimated from ``shots`` samples per example of the readout wires.

  Args:
    spec: circuit options.
    joint: (B, 2**r) exact joint probabilities of the r readout wires (first wire most significant).
    shots: samples per example.
    key: PRNG key; each example gets its own samples.

  Returns:
    (B, R) readouts of the sampled frequencies (unbiased: their mean over keys is the exact readout
    for <Z> readouts, and the frequencies' for probabilities before renormalisation), differentiable
    by the straight-through rule: the gradient is the exact readout's, frequencies - probabilities
    held constant.
  """
  counts = jax.random.multinomial(key, shots, jax.lax.stop_gradient(joint))
  estimate = joint + jax.lax.stop_gradient(counts / shots - joint)
  if spec.readout == "probs":
    return qcnn.postprocess(spec, estimate)
  r = estimate.shape[-1].bit_length() - 1
  signs = 1.0 - 2.0 * ((jnp.arange(2**r)[:, None] >> jnp.arange(r - 1, -1, -1)[None, :]) & 1)  # (2**r, r): (-1)^bit
  return (estimate @ signs.astype(estimate.dtype))[:, : spec.output_size]


def statevector_apply(spec: qcnn.QCNNSpec, params: dict, features, *, max_block_qubits: int | None = None,
                      v1: bool = False):
  """``qcnn_apply``'s "statevector" execution (``v1``: "statevector_v1") (exact, noiseless; no memory
  check): (B, F) features -> (B, R) readout values. ``max_block_qubits``: its gate fusion
  (``statevector.program``; 1: off)."""
  blocks = layer_blocks(spec, "statevector", *layer_args(spec, params, "statevector"))
  engine = statevector if v1 else interleaved
  return engine.qcnn_statevector(spec, features, *blocks, max_block_qubits=max_block_qubits)


def qcnn_apply(spec: qcnn.QCNNSpec, params: dict, features, *, execution: str = "fused",
               shots: int | None = None, noise: Noise | None = None, key=None):
  """Batched QCNN forward.

  Args:
    spec: circuit options.
    params: {"conv": (layers, unit params), "pool": (layers, 2)} angles in radians.
    features: (B, F) encoding inputs.
    execution: one of ``EXECUTIONS`` ("auto": see ``resolve``).
    shots: None for exact expectations, else shots per sample (needs ``key``).
    noise: optional ``Noise`` or ``noise_model.CalibratedNoise`` (any ``noise(wires)`` recording
      channels; one with a ``confusion`` (n_qubits, 2, 2) also has readout error, "density" only).
    key: PRNG key for shot sampling.

  Returns:
    (B, R) readout values (see ``QCNNSpec.output_size``).

  Raises:
    QubitMemoryError: the batch's simulation would not fit in the device's memory (checked while
      tracing, before anything is allocated).
  """
  execution = resolve(execution, shots, noise)
  check_memory(spec, features.shape[0], execution, noise)
  if execution in ENGINES:
    if execution != "density" and noise is not None:
      raise ValueError(f"execution {execution!r} simulates pure states; use execution 'density' for noise")
    if shots is None:
      return _engine(spec, params, features, noise, execution)
    joint = _engine(dataclasses.replace(spec, readout="probs", n_outcomes=None), params, features, noise, execution)
    return shot_readout(spec, joint, shots, key)
  if getattr(noise, "confusion", None) is not None:
    raise ValueError(f"execution {execution!r} has no readout error; use execution 'auto' or 'density' for "
                     "calibrated noise")
  conv_args, pool_args = layer_args(spec, params, execution)
  forward = sample_fn(spec, execution, shots, noise)
  with quiet_complex128_truncation():
    if shots is None:
      return jax.vmap(forward, in_axes=(0, None, None, None))(features, conv_args, pool_args, None)
    keys = jax.random.split(key, features.shape[0])
    return jax.vmap(forward, in_axes=(0, None, None, 0))(features, conv_args, pool_args, keys)
