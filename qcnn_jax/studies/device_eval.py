"""A trained run's test metrics on a simulated IBM device.

Each example's circuit is exported as the model runs it (`models.quantum.export`: trained and
encoding angles bound, RX/RY/RZ + CNOT, readout wires measured), transpiled for a fake backend
(`qiskit_ibm_runtime.fake_provider`: a device's coupling map, basis gates and calibration snapshot,
shipped inside the package) at optimisation level 3 with a fixed seed, and sampled by `qiskit-aer`
under the noise model built from that calibration, with every noise source together ("device") or
one at a time. The sampled readouts (<Z> per readout wire, or the readout wires' probabilities)
replace the circuit's output in the run's own model (`flax.linen.intercept_methods`), whose logits
are scored by the run's own metrics, beside the same examples with exact circuits.

Optional: needs `pip install -e ".[hardware]"` (qiskit-aer, qiskit-ibm-runtime). No library module
imports this one.
"""

import csv
import dataclasses
import functools
import importlib.util
import os
import time
import warnings
from importlib import metadata

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from matplotlib import figure as mpl_figure

from qcnn_jax.data import pipeline
from qcnn_jax.evaluation import metrics, reports
from qcnn_jax.models import heads
from qcnn_jax.models.quantum import execution, export, layer, qcnn
from qcnn_jax.training import train

# Noise sources of a backend's calibration, each alone, and together ("device"); "ideal" samples
# the routed circuit without noise (shot noise and routing only).
NOISE_SOURCES = {
    "device": "readout error, gate errors (depolarizing) and thermal relaxation during gates",
    "ideal": "no noise: shot noise of the routed circuit only",
    "readout": "readout (measurement) error alone",
    "gates_2q": "depolarizing error of the two-qubit (ECR/CZ) gates alone",
    "gates_1q": "depolarizing error of the one-qubit gates alone",
    "relaxation": "T1/T2 thermal relaxation during gates alone",
}
CSV_COLUMNS = ("backend", "noise", "shots", "n_examples", "test_auc", "test_acc", "exact_test_auc", "exact_test_acc",
               "auc_drop", "acc_drop", "depth_mean", "depth_max", "gates_2q_mean", "gates_2q_max", "sample_s")
HARDWARE_HINT = 'pip install -e ".[hardware]"'


class HardwareExtraMissing(RuntimeError):
  """qiskit-aer or qiskit-ibm-runtime is not installed."""


def require_hardware_extra() -> None:
  """Raises HardwareExtraMissing naming the install command when a package of the extra is missing."""
  for name in ("qiskit_aer", "qiskit_ibm_runtime"):
    if importlib.util.find_spec(name) is None:
      raise HardwareExtraMissing(f"device evaluation needs the optional hardware extra ({name} is missing): "
                                 f"{HARDWARE_HINT}")


def hardware_versions() -> dict[str, str]:
  """Installed versions of the hardware extra's packages."""
  return {name: metadata.version(name) for name in ("qiskit", "qiskit-aer", "qiskit-ibm-runtime")}


def backend(name: str):
  """The fake backend `name` (e.g. "fake_sherbrooke"): a device's calibration snapshot."""
  from qiskit_ibm_runtime.fake_provider import FakeProviderForBackendV2
  provider = FakeProviderForBackendV2()
  try:
    return provider.backend(name)
  except Exception:  # qiskit raises its own QiskitBackendNotFoundError
    with warnings.catch_warnings():  # some snapshots warn that their numbers are not typical
      warnings.simplefilter("ignore", UserWarning)
      names = sorted(b.name for b in provider.backends())
    raise train.ConfigError(f"no fake backend {name!r}; choose one of {', '.join(names)}") from None


def noise_model(device, source: str):
  """qiskit-aer NoiseModel of `device`'s calibration restricted to `source` (NOISE_SOURCES); None
  for "ideal"."""
  from qiskit_aer.noise import NoiseModel
  from qiskit_aer.noise.device import basic_device_gate_errors
  if source not in NOISE_SOURCES:
    raise train.ConfigError(f"noise source {source!r} not in {', '.join(NOISE_SOURCES)}")
  if source == "ideal":
    return None
  if source in ("device", "readout", "relaxation"):
    return NoiseModel.from_backend(device, gate_error=source == "device", readout_error=source != "relaxation",
                                   thermal_relaxation=source != "readout")
  model = NoiseModel(basis_gates=list(device.operation_names))
  for name, qubits, error in basic_device_gate_errors(target=device.target, gate_error=True,
                                                      thermal_relaxation=False):
    if (len(qubits) == 2) == (source == "gates_2q"):
      model.add_quantum_error(error, name, qubits)
  return model


@dataclasses.dataclass(frozen=True)
class Examples:
  """The first N examples of a split: stored images (N, H, W, C) uint8, labels (N, L), official
  index (N,), their circuits as OpenQASM 2 programs, the circuit spec, the float64 readout of
  each exported circuit (N, R raw: <Z> per readout wire, or 2**n_readout probabilities) and the
  model's own engine's output for the same circuits (N, R after `qcnn.postprocess`)."""

  images: np.ndarray
  labels: np.ndarray
  index: np.ndarray
  programs: list[str]
  spec: qcnn.QCNNSpec
  exported_readout: np.ndarray
  engine_readout: np.ndarray


def examples(trainer: train.Trainer, state: train.TrainState, split: str = "test", limit: int = 0) -> Examples:
  """The first `limit` examples of `split` (0: all) and their exported circuits."""
  source = trainer.split(split)
  record = pipeline.gather(source, np.arange(min(limit, len(source)) if limit > 0 else len(source)))
  circuits = trainer.circuits(jax.device_get({"params": state.params, "batch_stats": state.batch_stats}),
                              record["image"])
  if len(circuits) != 1:
    raise train.ConfigError(f"model {trainer.config.model!r} runs {len(circuits)} circuits per example; device "
                            "evaluation scores models with exactly one (e.g. resnet50_qcnn)")
  spec, params, features = circuits[0]
  exported = [export.export(spec, params, f) for f in features]
  engine = execution.qcnn_apply(spec, params, jnp.asarray(features), execution="auto")
  return Examples(record["image"], record["label"], record["index"], [program for program, _ in exported], spec,
                  np.array([d["readout"] for _, d in exported]), np.asarray(engine, np.float64))


def transpile(programs: list[str], device, seed: int = 0) -> tuple[list, dict[str, float]]:
  """(routed circuits, resources) of OpenQASM 2 `programs` transpiled for `device` at optimisation
  level 3 (seeded): depth (measurements excluded) and two-qubit gate count, mean and max."""
  from qiskit import qasm2
  from qiskit.transpiler import generate_preset_pass_manager
  manager = generate_preset_pass_manager(optimization_level=3, backend=device, seed_transpiler=seed)
  routed = manager.run([qasm2.loads(p) for p in programs])
  routed = routed if isinstance(routed, list) else [routed]
  depth = [c.depth(lambda inst: inst.operation.name not in ("measure", "barrier")) for c in routed]
  two = [c.num_nonlocal_gates() for c in routed]
  return routed, {"depth_mean": float(np.mean(depth)), "depth_max": int(max(depth)),
                  "gates_2q_mean": float(np.mean(two)), "gates_2q_max": int(max(two))}


def outcome_probabilities(counts: list[dict[str, int]], n_measured: int) -> np.ndarray:
  """(N, 2**n_measured) frequencies from qiskit counts (bit string c[n-1]...c[0]), indexed
  big-endian over the measured wires (c[0], the first readout wire, most significant)."""
  probs = np.zeros((len(counts), 2**n_measured))
  for row, example in enumerate(counts):
    for key, count in example.items():
      probs[row, int(key.replace(" ", "")[::-1], 2)] += count
  return probs / probs.sum(axis=1, keepdims=True)


def raw_readout(probs: np.ndarray, spec: qcnn.QCNNSpec) -> np.ndarray:
  """Raw circuit readout (N, R) from big-endian outcome probabilities: <Z> of each readout wire,
  or the probabilities themselves (what `export.readout` gives for an exact circuit)."""
  if spec.readout == "probs":
    return probs
  r = spec.n_readout
  bits = (np.arange(2**r)[:, None] >> (r - 1 - np.arange(r))[None, :]) & 1
  return probs @ (1.0 - 2.0 * bits)


def model_readout(raw: np.ndarray, spec: qcnn.QCNNSpec) -> np.ndarray:
  """What the model's QCNN layer outputs for a raw readout (`qcnn.postprocess`)."""
  return np.asarray(qcnn.postprocess(spec, jnp.asarray(raw) if spec.readout == "probs" else list(jnp.asarray(raw).T)))


def sample(routed: list, device, source: str, shots: int, seed: int = 0) -> list[dict[str, int]]:
  """Counts of each routed circuit sampled `shots` times by qiskit-aer under `source` noise."""
  from qiskit_aer import AerSimulator
  simulator = AerSimulator(noise_model=noise_model(device, source), seed_simulator=seed)
  result = simulator.run(routed, shots=shots).result()
  return [result.get_counts(i) for i in range(len(routed))]


@functools.partial(jax.jit, static_argnames="model")
def _logits(model, variables, inputs, readouts):
  def interceptor(next_fun, args, kwargs, context):
    out = next_fun(*args, **kwargs)
    if readouts is None or not (isinstance(context.module, layer.QCNN) and context.method_name == "__call__"):
      return out
    return jnp.asarray(readouts, out.dtype).reshape(out.shape)

  with nn.intercept_methods(interceptor):
    logits, _ = heads.apply_probed(model, variables, inputs, train=False)
  return logits.astype(jnp.float32)


def logits(trainer: train.Trainer, state: train.TrainState, images: np.ndarray, readouts=None) -> np.ndarray:
  """The run's logits (N, K) for stored `images`, its circuit's output replaced by `readouts` (N, R)
  (None: the model's own exact circuit), in batches of the run's eval batch size."""
  variables = {"params": state.params, "batch_stats": state.batch_stats}
  size, out = trainer.config.eval_batch_size, []
  for start in range(0, len(images), size):
    inputs = jnp.asarray(pipeline.preprocess(images[start:start + size], trainer.prep))
    part = None if readouts is None else readouts[start:start + size]
    out.append(np.asarray(_logits(trainer.model, variables, inputs, part)))
  return np.concatenate(out)


def score(trainer: train.Trainer, labels: np.ndarray, logits_: np.ndarray) -> dict:
  """The run's own classification report (MedMNIST `auc`, `acc`, ...) of `logits_`."""
  return metrics.classification_report(labels, logits_, trainer.dataset.task, trainer.class_names())


def evaluate(trainer: train.Trainer, state: train.TrainState, device, found: Examples, sources, shots: int,
             seed: int = 0) -> tuple[list[dict], dict[str, np.ndarray]]:
  """(one CSV row per noise source, arrays) of `found` examples on `device`; the exact row is the
  model's own circuit on the same examples. Arrays: the model's readout (N, R) and logits (N, K) of
  the exact circuit ("exact", "logits_exact") and of each source (source, "logits_" + source)."""
  out = {"exact": model_readout(found.exported_readout, found.spec), "logits_exact": logits(trainer, state, found.images)}
  exact = score(trainer, found.labels, out["logits_exact"])
  routed, resources = transpile(found.programs, device, seed)
  rows = []
  for source in sources:
    start = time.time()
    probs = outcome_probabilities(sample(routed, device, source, shots, seed), len(qcnn.readout_wires(found.spec)))
    out[source] = model_readout(raw_readout(probs, found.spec), found.spec)
    out[f"logits_{source}"] = logits(trainer, state, found.images, out[source])
    report = score(trainer, found.labels, out[f"logits_{source}"])
    rows.append({"backend": device.name, "noise": source, "shots": shots, "n_examples": len(found.labels),
                 "test_auc": report["auc"], "test_acc": report["acc"], "exact_test_auc": exact["auc"],
                 "exact_test_acc": exact["acc"], "auc_drop": exact["auc"] - report["auc"],
                 "acc_drop": exact["acc"] - report["acc"], **resources, "sample_s": time.time() - start})
  return rows, out


def write_csv(rows: list[dict], path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  return path


def plot(rows: list[dict], path: str) -> str:
  """Test AUC and ACC per noise source, the exact circuit's as dashed lines."""
  fig = mpl_figure.Figure(figsize=(8, 3.6), layout="constrained")
  for ax, metric in zip(fig.subplots(1, 2), ("auc", "acc")):
    ax.bar([r["noise"] for r in rows], [r[f"test_{metric}"] for r in rows], color="tab:blue")
    ax.axhline(rows[0][f"exact_test_{metric}"], color="black", linestyle="--", linewidth=1, label="exact circuit")
    low = min(min(r[f"test_{metric}"] for r in rows), rows[0][f"exact_test_{metric}"])
    ax.set_ylim(max(0.0, low - 0.05), 1.0)
    ax.set_ylabel(f"test {metric.upper()}")
    ax.tick_params(axis="x", rotation=30, labelsize=8)
    ax.legend(fontsize=8)
  fig.suptitle(f"{rows[0]['backend']}, {rows[0]['shots']} shots, {rows[0]['n_examples']} examples", fontsize=9)
  return reports.save_figure(fig, path)
