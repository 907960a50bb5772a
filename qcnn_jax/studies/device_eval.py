"""A trained run's test metrics on simulated IBM devices.

Each example's circuit is exported as the model runs it (`models.quantum.export`: trained and
encoding angles bound, RX/RY/RZ + CNOT, readout wires measured), transpiled for a fake backend
(`qiskit_ibm_runtime.fake_provider`: a device's coupling map, basis gates, durations and calibration
snapshot, shipped inside the package) at optimisation level 3 with a seed per layout, scheduled as
late as possible so that idle qubits carry explicit delays (which the noise model relaxes; the
unscheduled circuit has none), and its exact outcome distribution computed by `qiskit-aer` under the
noise model built from that calibration, with every noise source together ("device") or one at a
time. Shots are drawn from that distribution per sampling seed (one device run each). The readouts
(<Z> per readout wire, or the readout wires' probabilities), raw and recalibrated (a line fitted on
validation readouts against the readouts the model was trained on: exact, or under its training
noise; no labels), replace the circuit's output in the run's own model
(`flax.linen.intercept_methods`), whose logits are scored by the run's own metrics, beside the same
examples through the model's own circuits (exact, or under its training noise).

`calibration` and `write_noise_model` turn the same calibration, layout and schedule into the
engine's own noise model (`models.quantum.noise_model`, imported as `engine_noise`), which a model
can be trained under.

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
from qcnn_jax.models.quantum import noise_model as engine_noise
from qcnn_jax.training import train

# Noise sources of a backend's calibration, each alone, and together ("device"); "ideal" samples
# the routed circuit without noise (shot noise and routing only). The single sources overlap: alone,
# a gate's whole error is depolarizing; in "device" relaxation takes part of it.
NOISE_SOURCES = {
    "device": "readout error, T1/T2 relaxation on gates and delays, and the rest of each gate's error as depolarizing",
    "ideal": "no noise: shot noise of the routed circuit only",
    "readout": "readout (measurement) error alone",
    "gates_2q": "the two-qubit (ECR/CZ) gates' whole calibrated error as depolarizing, alone",
    "gates_1q": "the one-qubit gates' whole calibrated error as depolarizing, alone",
    "relaxation": "T1/T2 thermal relaxation on gates and delays alone",
}
CSV_COLUMNS = ("backend", "layout_seed", "scheduled", "noise", "shots", "sampling_seed", "recalibrated", "n_examples",
               "test_auc", "test_acc", "exact_test_auc", "exact_test_acc", "auc_drop", "acc_drop", "readout_scale",
               "readout_offset", "depth_mean", "depth_max", "gates_2q_mean", "gates_2q_max", "duration_us", "idle_us",
               "sample_s", "key")
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


@functools.lru_cache(maxsize=16)
def noise_model(device, source: str):
  """qiskit-aer NoiseModel of `device`'s calibration restricted to `source` (NOISE_SOURCES); None
  for "ideal". Cached per backend object: building one takes seconds."""
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
  each exported circuit (N, R raw: <Z> per readout wire, or 2**n_readout probabilities), the
  model's own engine's output for the same circuits (N, R after `qcnn.postprocess`), and the readout
  the model was trained on (N, R after `qcnn.postprocess`): the exported circuits' exact readout, or
  for a model trained under noise (`model_options.noise`) the engine's output under that noise, the
  target of the label-free recalibration."""

  images: np.ndarray
  labels: np.ndarray
  index: np.ndarray
  programs: list[str]
  spec: qcnn.QCNNSpec
  exported_readout: np.ndarray
  engine_readout: np.ndarray
  trained_readout: np.ndarray


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
  exported_readout = np.array([d["readout"] for _, d in exported])
  noise = engine_noise.parse(trainer.config.model_options.get("noise"))
  trained = model_readout(exported_readout, spec) if noise is None else np.asarray(
      execution.qcnn_apply(spec, params, jnp.asarray(features), execution="auto", noise=noise), np.float64)
  return Examples(record["image"], record["label"], record["index"], [program for program, _ in exported], spec,
                  exported_readout, np.asarray(engine, np.float64), trained)


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
  """Counts of each routed circuit sampled `shots` times by qiskit-aer under `source` noise: Aer's
  own sampling, the reference `distribution` is tested against."""
  from qiskit_aer import AerSimulator
  simulator = AerSimulator(noise_model=noise_model(device, source), seed_simulator=seed)
  result = simulator.run(routed, shots=shots).result()
  return [result.get_counts(i) for i in range(len(routed))]


def schedule(routed: list, device) -> list:
  """`routed` circuits scheduled as late as possible with `device`'s gate durations: idle time as
  explicit delays, which the device noise model turns into T1/T2 relaxation. Qubits a circuit does
  not use keep no delays (they would only add idle wires to simulate)."""
  from qiskit.transpiler import PassManager
  from qiskit.transpiler.passes import ALAPScheduleAnalysis, PadDelay
  padded = PassManager([ALAPScheduleAnalysis(target=device.target), PadDelay(target=device.target)]).run(routed)
  return [_drop_unused_delays(c) for c in (padded if isinstance(padded, list) else [padded])]


def _drop_unused_delays(circuit):
  used = {q for inst in circuit.data if inst.operation.name not in ("delay", "barrier") for q in inst.qubits}
  out = circuit.copy_empty_like()
  for inst in circuit.data:
    if inst.operation.name != "delay" or inst.qubits[0] in used:
      out.append(inst)
  return out


def timing(scheduled: list, device) -> dict[str, float]:
  """Mean over scheduled circuits of their duration (µs, longest path with the device's gate
  durations) and of their idle time summed over the qubits they use (µs of delay)."""
  durations = [c.estimate_duration(device.target, unit="s") for c in scheduled]
  idle = [sum(inst.operation.duration for inst in c.data if inst.operation.name == "delay") * device.dt
          for c in scheduled]
  return {"duration_us": 1e6 * float(np.mean(durations)), "idle_us": 1e6 * float(np.mean(idle))}


def distribution(circuits: list, device, source: str) -> np.ndarray:
  """(N, 2**R) outcome probabilities of routed (or scheduled) circuits under `source` noise, exact:
  the density matrix of the used qubits (qiskit-aer, the noise model's gate and delay errors), then
  each measured qubit's readout confusion from the same model; big-endian over the measured wires
  like `outcome_probabilities`. Shots drawn from it (`draw`) are samples of the device model."""
  from qiskit_aer import AerSimulator
  model = noise_model(device, source)
  measured = [_measured_qubits(c) for c in circuits]
  prepared = []
  for c, qubits in zip(circuits, measured):
    c = c.remove_final_measurements(inplace=False)
    c.save_probabilities(qubits)
    prepared.append(c)
  simulator = AerSimulator(method="statevector" if model is None else "density_matrix", noise_model=model)
  result = simulator.run(prepared, shots=1).result()
  return np.array([_confused(np.asarray(result.data(i)["probabilities"]), qubits, model)
                   for i, qubits in enumerate(measured)])


def _measured_qubits(circuit) -> list[int]:
  """Physical qubit of each classical bit c[0], c[1], ..."""
  found = {circuit.find_bit(inst.clbits[0]).index: circuit.find_bit(inst.qubits[0]).index
           for inst in circuit.data if inst.operation.name == "measure"}
  return [found[i] for i in range(len(found))]


def _confused(little: np.ndarray, qubits: list[int], model) -> np.ndarray:
  """Aer's little-endian probabilities of `qubits` to big-endian (qubits[0] most significant),
  through each qubit's readout confusion matrix (rows: prepared, columns: read) where `model` has one."""
  r = len(qubits)
  probs = np.transpose(little.reshape((2,) * r), tuple(range(r))[::-1])
  errors = {} if model is None else model._local_readout_errors  # pylint: disable=protected-access
  for axis, qubit in enumerate(qubits):
    if (qubit,) in errors:
      confusion = np.asarray(errors[(qubit,)].probabilities)
      probs = np.moveaxis(np.tensordot(np.moveaxis(probs, axis, -1), confusion, axes=([-1], [0])), -1, axis)
  return probs.reshape(-1)


def draw(probs: np.ndarray, shots: int, seed: int) -> np.ndarray:
  """(N, M) outcome frequencies of `shots` shots per row drawn from outcome probabilities (N, M);
  shots = 0: the probabilities themselves (the infinite-shot limit)."""
  if shots == 0:
    return probs
  rng = np.random.default_rng(seed)
  return rng.multinomial(shots, np.clip(probs, 0, None) / np.clip(probs, 0, None).sum(1, keepdims=True)) / shots


def fit_recalibration(exact: np.ndarray, noisy: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """(scale (R,), offset (R,)) of the least-squares line noisy = scale * exact + offset per readout
  column, from readouts (N, R) of the same examples (no labels): validation images' device readouts
  against their exact (simulated) ones."""
  x, y = exact - exact.mean(0), noisy - noisy.mean(0)
  scale = (x * y).sum(0) / (x * x).sum(0)
  return scale, noisy.mean(0) - scale * exact.mean(0)


def recalibrate(noisy: np.ndarray, scale: np.ndarray, offset: np.ndarray) -> np.ndarray:
  """Readouts (N, R) mapped back through a fitted line: (noisy - offset) / scale. Per column a
  monotone map, so it leaves each readout's ranking (AUC of a one-readout head) unchanged."""
  return (noisy - offset) / scale


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


@dataclasses.dataclass(frozen=True)
class Plan:
  """What `evaluate` runs: fake backends, transpiler seeds (one layout each; the first
  `unscheduled_layouts` of them also unscheduled, without idle relaxation), noise sources, shot
  counts (0: the exact outcome distribution) and sampling seeds per finite shot count."""

  backends: tuple[str, ...] = ("fake_sherbrooke", "fake_torino")
  layout_seeds: tuple[int, ...] = (0, 1, 2)
  unscheduled_layouts: int = 1
  sources: tuple[str, ...] = ("device", "ideal")
  shots: tuple[int, ...] = (0, 1000, 4000)
  sampling_seeds: int = 10


def evaluate(trainer: train.Trainer, state: train.TrainState, test: Examples, val: Examples,
             plan: Plan) -> tuple[list[dict], dict[str, np.ndarray]]:
  """(CSV rows, arrays) of `test` examples on every setting of `plan`: one row per (backend,
  layout seed, scheduled, source, shots, sampling seed, recalibrated). The readout of each sampling
  run is also recalibrated (`fit_recalibration` on `val` examples' readouts of the same setting and
  sampling run against the readouts the model was trained on, no labels). Arrays: "logits_exact" (N, K) and each row's
  logits under its `key`."""
  target_val = val.trained_readout
  arrays = {"logits_exact": logits(trainer, state, test.images)}
  base = {"n_examples": len(test.labels), **{f"exact_test_{m}": v for m, v in
                                              _metrics(trainer, test.labels, arrays["logits_exact"]).items()}}
  rows = []
  for name in plan.backends:
    device = backend(name)
    for i, layout_seed in enumerate(plan.layout_seeds):
      routed, resources = transpile(test.programs + val.programs, device, layout_seed)
      variants = [(True, schedule(routed, device))] + ([(False, routed)] if i < plan.unscheduled_layouts else [])
      for scheduled, circuits in variants:
        setting = {**base, "backend": name, "layout_seed": layout_seed, "scheduled": scheduled, **resources,
                   **timing(circuits, device)}
        for source in plan.sources:
          start = time.time()
          probs = distribution(circuits, device, source)
          setting.update(noise=source, sample_s=time.time() - start)
          rows += _sampling_rows(trainer, state, test, probs, target_val, setting, plan, arrays)
  return rows, arrays


def _metrics(trainer, labels, logits_) -> dict[str, float]:
  report = score(trainer, labels, logits_)
  return {"auc": report["auc"], "acc": report["acc"]}


def _sampling_rows(trainer, state, test: Examples, probs: np.ndarray, target_val: np.ndarray, setting: dict,
                   plan: Plan, arrays: dict) -> list[dict]:
  """Rows of one setting's outcome distributions `probs` (test rows first, then validation): per
  shot count and sampling seed, the raw and the recalibrated readout scored; logits into `arrays`."""
  rows, n = [], len(test.labels)
  for shots in plan.shots:
    for seed in range(plan.sampling_seeds if shots else 1):
      readout = model_readout(raw_readout(draw(probs, shots, seed), test.spec), test.spec)
      scale, offset = fit_recalibration(target_val, readout[n:])
      for recalibrated in (False, True):
        part = recalibrate(readout[:n], scale, offset) if recalibrated else readout[:n]
        key = ":".join(str(v) for v in (setting["backend"], setting["layout_seed"], setting["scheduled"],
                                        setting["noise"], shots, seed, recalibrated))
        arrays[key] = logits(trainer, state, test.images, part)
        found = _metrics(trainer, test.labels, arrays[key])
        rows.append({**setting, "shots": shots, "sampling_seed": seed, "recalibrated": recalibrated,
                     "test_auc": found["auc"], "test_acc": found["acc"],
                     "auc_drop": setting["exact_test_auc"] - found["auc"],
                     "acc_drop": setting["exact_test_acc"] - found["acc"],
                     "readout_scale": float(scale.mean()), "readout_offset": float(offset.mean()), "key": key})
  return rows


def write_csv(rows: list[dict], path: str) -> str:
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  with open(path, "w", newline="") as f:
    writer = csv.DictWriter(f, CSV_COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  return path


def plot(rows: list[dict], path: str) -> str:
  """Test AUC and ACC of the "device" source at the most shots, mean over layouts and sampling
  runs, per backend and schedule, raw and recalibrated; the exact circuit's as dashed lines."""
  device = [r for r in rows if r["noise"] == "device" and r["shots"] == max(q["shots"] for q in rows)]
  groups = sorted({(r["backend"], r["scheduled"]) for r in device}, key=lambda g: (g[0], not g[1]))
  fig = mpl_figure.Figure(figsize=(8, 3.6), layout="constrained")
  for ax, metric in zip(fig.subplots(1, 2), ("auc", "acc")):
    for shift, recalibrated in ((-0.2, False), (0.2, True)):
      means = [np.mean([r[f"test_{metric}"] for r in device if (r["backend"], r["scheduled"]) == g
                        and r["recalibrated"] == recalibrated]) for g in groups]
      ax.bar(np.arange(len(groups)) + shift, means, width=0.4, label="recalibrated" if recalibrated else "raw")
    ax.axhline(rows[0][f"exact_test_{metric}"], color="black", linestyle="--", linewidth=1, label="exact circuit")
    ax.set_xticks(np.arange(len(groups)), [f"{b}\n{'ALAP' if s else 'unscheduled'}" for b, s in groups], fontsize=7)
    ax.set_ylim(0.4, 1.0)
    ax.set_ylabel(f"test {metric.upper()}")
    ax.legend(fontsize=7)
  fig.suptitle(f"device noise, {max(r['shots'] for r in rows)} shots, {rows[0]['n_examples']} examples", fontsize=9)
  return reports.save_figure(fig, path)


def two_qubit_gate(device) -> str:
  """Name of `device`'s native two-qubit gate (ecr, cz or cx)."""
  return next(name for name in ("ecr", "cz", "cx") if name in device.target.operation_names)


def exposure(circuit, device) -> dict[int, float]:
  """Seconds each used physical qubit of a scheduled circuit spends from the start of its first gate
  to the start of its measurement (unmeasured: the end of its last two-qubit gate, after which it
  changes no readout), idle delays included."""
  clock, first, last = {}, {}, {}
  for inst in circuit.data:
    qubits, name = tuple(circuit.find_bit(q).index for q in inst.qubits), inst.operation.name
    start = max(clock.get(q, 0.0) for q in qubits)
    if name == "delay":
      duration = inst.operation.duration * device.dt
    else:
      duration = 0.0 if name == "barrier" else device.target[name][qubits].duration or 0.0
    for q in qubits:
      clock[q] = start + duration
      if name not in ("delay", "barrier"):
        first.setdefault(q, start)
        if name == "measure" or len(qubits) == 2:
          last[q] = start if name == "measure" else start + duration
  return {q: last[q] - first[q] for q in first}


def _pair_gate(device, a: int, b: int) -> tuple[float, float]:
  """(average error, duration s) of the native two-qubit gate on physical qubits a, b: its
  calibration (mean over both directions), or for uncoupled qubits the mean over the edges of the
  shortest coupling path between them (the routing's SWAPs run there)."""
  gate = device.target[two_qubit_gate(device)]
  path = list(device.coupling_map.shortest_undirected_path(a, b))
  props = [gate[e] for p, q in zip(path, path[1:]) for e in ((p, q), (q, p)) if e in gate]
  return float(np.mean([g.error for g in props])), float(np.mean([g.duration for g in props]))


def calibration(device, spec: qcnn.QCNNSpec, layout_seed: int = 0) -> dict:
  """Calibration numbers of `device` per logical wire and pair of `spec`'s circuit (generic angles,
  `export.generic_inputs`) transpiled with `layout_seed` and scheduled ALAP: what
  `engine_noise.from_calibration` reads. Wire w sits on the physical qubit it ends on (the routed
  circuit's final layout, where readout wires are measured): its T1, T2 (s), exposure (s, first gate
  to measurement, idle included) and readout confusion (symmetric, the qubit's measurement error;
  identity for unmeasured wires). Each pair gets the two-qubit gate error and duration of its qubits
  (`_pair_gate`); every block counts the routed circuit's two-qubit gates over the blocks."""
  program, _ = export.export(spec, *export.generic_inputs(spec))
  routed, resources = transpile([program], device, layout_seed)
  (scheduled,) = schedule(routed, device)
  qubits = routed[0].layout.final_index_layout(filter_ancillas=True)[: spec.n_qubits]
  spans, props = exposure(scheduled, device), device.target.qubit_properties
  measured = set(_measured_qubits(scheduled))
  error = [device.target["measure"][(q,)].error if q in measured else 0.0 for q in qubits]
  pairs = sorted(set(engine_noise.block_pairs(spec)))
  gates = [_pair_gate(device, qubits[a], qubits[b]) for a, b in pairs]
  return {"backend": device.name, "layout_seed": layout_seed, "qubits": [int(q) for q in qubits],
          "t1": [props[q].t1 for q in qubits], "t2": [props[q].t2 for q in qubits],
          "exposure": [spans.get(q, 0.0) for q in qubits],
          "readout": [[[1 - e, e], [e, 1 - e]] for e in error], "pairs": [list(p) for p in pairs],
          "pair_error": [e for e, _ in gates], "pair_gate_time": [t for _, t in gates],
          "gates_per_block": resources["gates_2q_mean"] / len(engine_noise.block_pairs(spec)),
          "gate": two_qubit_gate(device), "calibrated": str(device.properties().last_update_date
                                                                 if device.properties() else None)}


def write_noise_model(path: str, name: str, spec: qcnn.QCNNSpec, layout_seed: int = 0) -> str:
  """Writes the engine's noise model of backend `name` for `spec` (`calibration`, then
  `engine_noise.from_calibration`) as JSON at `path`, with the calibration numbers it came from."""
  numbers = calibration(backend(name), spec, layout_seed)
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  return engine_noise.save(engine_noise.from_calibration(spec, numbers), path, numbers)
