r"""QCNN circuit throughput: the project's statevector engines vs PennyLane paths, and a roofline.

  python -m experiments.benchmarks.qcnn --n_qubits=8 --out=qcnn.json
  python -m experiments.benchmarks.qcnn --n_qubits=16 --impls=project,roofline --repeats=1
  python -m experiments.benchmarks.qcnn --n_qubits=8 --batch=32 --impls=project_density,pennylane_mixed

Circuit: Hur et al.'s QCNN (``QCNNSpec(n_qubits, conv_unit)``, angle_y encoding, <Z> readout),
float32/complex64, features (batch, n_qubits) in [0, π). Rows (``--impls``):

  project            ``qcnn_apply(execution="statevector")``: pure-JAX statevector engine on an
                     interleaved real state (``interleaved.py``), adjoint gradient.
  project_v1         ``execution="statevector_v1"``: the previous engine (``statevector.py``, complex
                     strided updates), the reference row kept for one release.
  project_unfused    the "statevector" engine with gate fusion off (``max_block_qubits=1``: every
                     gate its own transpose and matmul).
  pennylane_fused    ``execution="fused"``: default.qubit, backprop, jit(vmap), fused 4x4 blocks.
  pennylane_plain    ``execution="gates"``: default.qubit, backprop, jit(vmap), gate by gate.
  tensorcircuit      the same circuit in TensorCircuit-NG on its JAX backend (complex64): RY
                     encoding, each conv / pool unit as its 4x4 matrix (the project's own,
                     ``layer_args``) on the same wire pairs, <Z> by ``expectation_ps``, jit(vmap);
                     skipped with a message when ``import tensorcircuit`` fails (optional
                     environment below).
  torchlayer         the same circuit as ``qml.qnn.TorchLayer`` (default.qubit, torch backprop),
                     one sample at a time as ``encode`` takes one feature vector (how PyTorch
                     hybrids run it); skipped with a message when ``import torch`` fails.
  lightning_adjoint  ``lightning.qubit``, ``diff_method="adjoint"``, not jitted, per-sample loop.
  project_density    ``qcnn_apply(execution="density", noise=--noise)``: the pure-JAX density-matrix
                     engine (each block and its noise as one superoperator), checkpointed samples.
  pennylane_mixed    ``execution="fused"`` with the same noise: default.mixed, backprop, jit(vmap).
                     Noisy rows are compared (``*_vs_mixed``, ``max_abs_diff``) with each other only.
  roofline           this machine's memory bandwidth (a jnp axpy on an array of the size the engine
                     works on: the state, or one chunk of it when it exceeds
                     ``interleaved.CHUNK_BYTES``) and the time the project's engine must take
                     at that bandwidth (as bytes, always the whole state): each of its
                     ``state_passes`` (a fused block of gates, or the dense suffix block) reads
                     and writes the whole (batch, 2**n) complex64 state once forward; the
                     adjoint gradient adds 3 more reads and writes per pass (uncompute,
                     cotangent, matrix cotangent). ``unfused_*``: the same with one pass per gate
                     (``unfused_state_passes``), the engine's work before gate fusion.

Each row: impl, n_qubits, batch, fwd_samples_per_s, grad_samples_per_s (value and gradient of the
summed outputs w.r.t. the circuit angles), compile_s (trace + compile of forward and gradient with
an empty persistent cache), compile_s_warm (same after ``jax.clear_caches()``, served by the
persistent cache), grad_peak_bytes (XLA's argument + output + temporary bytes of the gradient
executable), max_rss_mb (process peak so far: run one impl per process for a clean number),
max_abs_diff (forward output vs the first jitted row). Per-sample loops (torchlayer,
lightning_adjoint) time ``--loop_samples`` samples and report samples/s.

Optional environment for the tensorcircuit row (never a project dependency):

  python3.11 -m venv /tmp/tcvenv
  /tmp/tcvenv/bin/pip install -r requirements.txt tensorcircuit-ng==1.10.0
  /tmp/tcvenv/bin/pip install --no-deps medmnist==3.0.2 -e .
  /tmp/tcvenv/bin/python -m experiments.benchmarks.qcnn --impls=project,tensorcircuit,pennylane_plain --n_qubits=8

Optional environment for the torchlayer row (torch must never go into the project's .venv):

  python3.11 -m venv /tmp/bench_torch_venv
  /tmp/bench_torch_venv/bin/pip install torch==2.13.0 -r requirements.txt   # CPU torch; never in .venv
  /tmp/bench_torch_venv/bin/pip install --no-deps medmnist==3.0.2 -e .
  /tmp/bench_torch_venv/bin/python -m experiments.benchmarks.qcnn --impls=torchlayer --n_qubits=8

The jitted rows are timed side by side: after compiling them all, each of ``--repeats`` rounds
times every row's forward and gradient once, and a row's throughput is its median over rounds;
with ``pennylane_plain`` among the rows, ``fwd_speedup_vs_plain`` / ``grad_speedup_vs_plain`` are
the median per-round ratios (on a shared machine the load drifts between rounds, and a ratio taken
within a round cancels most of it). The per-sample loops are timed as medians of ``--repeats``.
"""

import math
import resource
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
from absl import app, flags

from experiments import benchmarks

from qcnn_jax import runtime
from qcnn_jax.models.quantum import QCNNSpec, execution, interleaved, param_shapes, qcnn, qcnn_apply, statevector

IMPLS = ("project", "project_v1", "project_unfused", "pennylane_fused", "pennylane_plain", "tensorcircuit", "torchlayer",
         "lightning_adjoint", "roofline", "project_density", "pennylane_mixed")
JITTED = {"project": "statevector", "project_v1": "statevector_v1", "project_unfused": "statevector", "pennylane_fused": "fused",
          "pennylane_plain": "gates", "tensorcircuit": None, "project_density": "density", "pennylane_mixed": "fused"}
NOISY = ("project_density", "pennylane_mixed")  # rows run with --noise

flags.DEFINE_enum("n_qubits", "8", ["8", "10", "12", "16"], "Circuit width.")
flags.DEFINE_string("conv_unit", "su4", "Convolution unit (key of CONV_UNITS).")
flags.DEFINE_integer("batch", 128, "Samples per batch.")
flags.DEFINE_list("impls", list(IMPLS), f"Rows to measure, from {IMPLS}.")
flags.DEFINE_integer("repeats", 3, "Timed calls per measurement (median).")
flags.DEFINE_integer("loop_samples", 8, "Samples timed by the per-sample loops.")
flags.DEFINE_string("out", None, "JSON-lines file for the rows.")
flags.DEFINE_string("tag", None, "Label written into every row (e.g. which process of an alternated series).")
flags.DEFINE_string("noise", "depolarizing:0.01", "CHANNEL:P after every two-qubit block, for the noisy rows "
                    f"{NOISY} (the density-matrix engine and PennyLane's default.mixed).")
FLAGS = flags.FLAGS


def inputs(spec: QCNNSpec, batch: int):
  """Circuit angles in [0, 2π) and (batch, F) features in [0, π), float32."""
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  params = {name: jax.random.uniform(k, shape, jnp.float32, 0, 2 * math.pi)
            for k, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}
  return params, jax.random.uniform(keys[2], (batch, spec.n_features), jnp.float32, 0, math.pi)


def median_seconds(fn, repeats: int) -> float:
  """Median wall time of ``fn()`` over ``repeats`` calls after one warm-up call."""
  fn()
  times = []
  for _ in range(repeats):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return float(np.median(times))


def max_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def tensorcircuit_forward(spec: QCNNSpec):
  """``forward(params, features (B, F)) -> (B, R)``: the circuit in TensorCircuit-NG (JAX backend)."""
  import tensorcircuit as tc  # pylint: disable=import-outside-toplevel
  if (spec.encoding, spec.readout, spec.reuploading) != ("angle_y", "expval", 1):
    raise app.UsageError("the tensorcircuit row builds angle_y encoding, one <Z> readout, no re-uploading")
  tc.set_backend("jax")
  tc.set_dtype("complex64")
  layers, readout = qcnn.layout(spec), qcnn.readout_wires(spec)

  def one(x, conv, pool):
    circuit = tc.Circuit(spec.n_qubits)
    for w in range(spec.n_qubits):
      circuit.ry(w, theta=x[w])
    for index, layer in enumerate(layers):
      for pairs, matrices in ((layer.conv_pairs, conv), (layer.pool_pairs, pool)):
        for a, b in pairs:
          circuit.unitary(a, b, unitary=matrices[index])
    return jnp.stack([jnp.real(circuit.expectation_ps(z=[w])) for w in readout])

  def forward(params, features):
    conv, pool = execution.layer_args(spec, params, "fused")
    return jax.vmap(one, in_axes=(0, None, None))(features, conv, pool)

  return forward


def jitted_forward(spec: QCNNSpec, impl: str, noise: execution.Noise | None = None):
  """``forward(params, features (B, F)) -> (B, R)`` of a jitted row (``JITTED``); ``noise`` for the
  ``NOISY`` rows."""
  if impl == "tensorcircuit":
    return tensorcircuit_forward(spec)
  if impl == "project_unfused":
    return lambda params, features: execution.statevector_apply(spec, params, features, max_block_qubits=1)
  if impl in NOISY:
    return lambda params, features: qcnn_apply(spec, params, features, execution=JITTED[impl], noise=noise)
  return lambda params, features: qcnn_apply(spec, params, features, execution=JITTED[impl])


def compile_jitted(spec: QCNNSpec, impl: str, params, features, noise=None) -> tuple[dict, tuple]:
  """Cold/warm compile time and XLA memory of ``qcnn_apply``'s forward and gradient, and both
  compiled functions as zero-argument calls that block until done."""
  forward = jitted_forward(spec, impl, noise)
  value_and_grad = jax.value_and_grad(lambda p, x: jnp.sum(forward(p, x)))

  def compile_all():
    start = time.perf_counter()
    compiled = [jax.jit(f).lower(params, features).compile() for f in (forward, value_and_grad)]
    return time.perf_counter() - start, compiled

  runtime.enable_compilation_cache(tempfile.mkdtemp(prefix="qcnn_bench_cache_"))
  jax.clear_caches()
  compile_s, (fwd, grad) = compile_all()
  jax.clear_caches()
  compile_s_warm, _ = compile_all()
  memory = grad.memory_analysis()
  row = {
      "compile_s": compile_s,
      "compile_s_warm": compile_s_warm,
      "grad_peak_bytes": memory.argument_size_in_bytes + memory.output_size_in_bytes + memory.temp_size_in_bytes,
  }
  calls = (lambda: fwd(params, features).block_until_ready(),  # returns the outputs
           lambda: jax.block_until_ready(grad(params, features)))
  return row, calls


def interleaved_seconds(calls: dict, repeats: int) -> dict:
  """Wall times of each zero-argument call in ``calls``, timed round-robin: every round times each
  call once, so that a change in the machine's load hits all of them alike, and every other round
  runs them in reverse order (the call after a heavy one starts with a cold cache: on a quiet CPU
  two identical programs measured 1.3x apart in fixed order). Returns {name: (repeats,) seconds}
  after one warm-up call each."""
  for call in calls.values():
    call()
  times = {name: [] for name in calls}
  for r in range(repeats):
    for name, call in (list(calls.items())[::-1] if r % 2 else calls.items()):
      start = time.perf_counter()
      call()
      times[name].append(time.perf_counter() - start)
  return {name: np.asarray(t) for name, t in times.items()}


def jitted_rows(spec: QCNNSpec, impls: list[str], params, features, repeats: int,
                noise: execution.Noise | None = None) -> tuple[dict, dict]:
  """Rows of the jitted impls, their forward and gradient timed side by side (interleaved rounds),
  and each impl's forward outputs (B, R). With ``pennylane_plain`` (``tensorcircuit``) among them,
  each row gets ``fwd_speedup_vs_plain`` and ``grad_speedup_vs_plain`` (``..._vs_tensorcircuit``):
  the median over rounds of that path's time / the row's time."""
  rows, calls = {}, {}
  for impl in impls:
    rows[impl], (calls[(impl, "fwd")], calls[(impl, "grad")]) = compile_jitted(spec, impl, params, features, noise)
  times = interleaved_seconds(calls, repeats)
  batch = features.shape[0]
  for impl, row in rows.items():
    row["fwd_samples_per_s"] = batch / float(np.median(times[(impl, "fwd")]))
    row["grad_samples_per_s"] = batch / float(np.median(times[(impl, "grad")]))
    for reference, name in (("pennylane_plain", "plain"), ("tensorcircuit", "tensorcircuit"),
                            ("pennylane_mixed", "mixed")):
      if reference in rows and (impl in NOISY) == (reference in NOISY):
        for kind in ("fwd", "grad"):
          row[f"{kind}_speedup_vs_{name}"] = float(np.median(times[(reference, kind)] / times[(impl, kind)]))
  return rows, {impl: np.asarray(calls[(impl, "fwd")]()) for impl in rows}


def loop_row(forward, value_and_grad, params, features, repeats: int) -> tuple[dict, np.ndarray]:
  """Per-sample loops: ``forward(x) -> (R,)`` and ``value_and_grad(x)`` on each sample."""
  samples = list(features)
  fwd_s = median_seconds(lambda: [forward(x) for x in samples], repeats)
  grad_s = median_seconds(lambda: [value_and_grad(x) for x in samples], repeats)
  outputs = np.stack([np.asarray(forward(x), np.float32).reshape(-1) for x in samples])
  return {"fwd_samples_per_s": len(samples) / fwd_s, "grad_samples_per_s": len(samples) / grad_s}, outputs


def lightning_row(spec: QCNNSpec, params, features, repeats: int):
  """lightning.qubit with the adjoint method, gate by gate, not jitted, one sample per call."""
  device = qml.device("lightning.qubit", wires=spec.n_qubits)

  @qml.qnode(device, interface="jax", diff_method="adjoint")
  def circuit(x, conv, pool):
    return qcnn.qcnn_circuit(spec, x, *qcnn.gate_blocks(spec, conv, pool))

  forward = lambda x, p=params: qcnn.postprocess(spec, circuit(x, p["conv"], p["pool"]))
  value_and_grad = jax.value_and_grad(lambda p, x: jnp.sum(forward(x, p)))
  return loop_row(forward, lambda x: jax.block_until_ready(value_and_grad(params, x)), params, features,
                  repeats)


def torchlayer_row(spec: QCNNSpec, params, features, repeats: int):
  """``qml.qnn.TorchLayer`` (default.qubit, torch backprop), one sample per call."""
  import torch  # pylint: disable=import-outside-toplevel

  @qml.qnode(qml.device("default.qubit", wires=spec.n_qubits), interface="torch", diff_method="backprop")
  def circuit(inputs, conv, pool):
    # ``encode`` indexes features with a jax array, which torch tensors reject: the features enter
    # as numpy constants (only the circuit angles are differentiated here, as in the other rows).
    return qcnn.qcnn_circuit(spec, inputs.detach().numpy(), *qcnn.gate_blocks(spec, conv, pool))

  layer = qml.qnn.TorchLayer(circuit, {name: shape for name, shape in param_shapes(spec).items()})
  with torch.no_grad():
    for name, value in params.items():
      getattr(layer, name).copy_(torch.from_numpy(np.asarray(value)))
  # Circuit output: a tuple of <Z> tensors (expval readouts) or one probability tensor.
  stack = lambda out: torch.stack(list(out)) if isinstance(out, (tuple, list)) else out
  forward = lambda x: stack(layer(torch.from_numpy(np.asarray(x)))).detach().numpy()

  def value_and_grad(x):
    layer.zero_grad()
    loss = stack(layer(torch.from_numpy(np.asarray(x)))).sum()
    loss.backward()
    return loss.item()

  return loop_row(forward, value_and_grad, params, features, repeats)


def n_state_passes(spec: QCNNSpec, fused: bool = True) -> int:
  """Passes the project's engine makes over the full state: one per block of fused gates (per gate
  if not ``fused``) it applies there (the preparation works on small factors) and one for the
  dense suffix block, if any."""
  params, features = inputs(spec, 1)
  conv, pool = execution.layer_blocks(spec, "fused", *execution.layer_args(spec, params, "fused"))
  prog = statevector.program(statevector.record(spec, features[0], conv, pool), spec.n_qubits,
                             interleaved.MAX_BLOCK_QUBITS)
  return (len(prog.blocks) if fused else len(prog.gates) - prog.n_suffix) + (1 if prog.n_suffix else 0)


def roofline_row(spec: QCNNSpec, batch: int, project: dict | None, repeats: int) -> dict:
  """Bandwidth of an axpy on the engine's working size and the implied minimum time of its gates."""
  state_bytes = batch * 2**spec.n_qubits * 8
  x = jnp.ones(min(state_bytes, interleaved.CHUNK_BYTES) // 4, jnp.float32)
  axpy = jax.jit(lambda y, x: 1.0001 * x + y)
  seconds = median_seconds(lambda: axpy(x, x).block_until_ready(), max(repeats, 10))
  bandwidth = 3 * x.nbytes / seconds  # read x, read y, write the result
  row = {"bandwidth_gb_s": bandwidth / 1e9}
  for prefix, passes in (("", n_state_passes(spec)), ("unfused_", n_state_passes(spec, fused=False))):
    fwd_bytes, grad_bytes = 2 * passes * state_bytes, 8 * passes * state_bytes
    row.update({
        f"{prefix}state_passes": passes,
        f"{prefix}fwd_bytes": fwd_bytes,
        f"{prefix}grad_bytes": grad_bytes,
        f"{prefix}fwd_samples_per_s": batch * bandwidth / fwd_bytes,
        f"{prefix}grad_samples_per_s": batch * bandwidth / grad_bytes,
    })
    if project:  # the project row's throughput as a fraction of this roofline
      of = "_of_unfused" if prefix else ""
      row[f"project_fwd_fraction{of}"] = project["fwd_samples_per_s"] / row[f"{prefix}fwd_samples_per_s"]
      row[f"project_grad_fraction{of}"] = project["grad_samples_per_s"] / row[f"{prefix}grad_samples_per_s"]
  return row


def main(argv):
  del argv
  spec = QCNNSpec(int(FLAGS.n_qubits), FLAGS.conv_unit)
  params, features = inputs(spec, FLAGS.batch)
  loop_features = features[: FLAGS.loop_samples]
  unknown = [impl for impl in FLAGS.impls if impl not in IMPLS]
  if unknown:
    raise app.UsageError(f"impls {unknown} not in {IMPLS}")
  impls = [i for i in FLAGS.impls if i != "tensorcircuit" or benchmarks.importable("tensorcircuit")]
  channel, p = FLAGS.noise.split(":")
  jitted, jitted_outputs = jitted_rows(spec, [i for i in impls if i in JITTED], params, features, FLAGS.repeats,
                                       execution.Noise(channel, float(p)))
  rows, reference = [], {}
  for impl in impls:
    if impl in JITTED:
      row, outputs = jitted[impl], jitted_outputs[impl]
    elif impl == "lightning_adjoint":
      row, outputs = lightning_row(spec, params, loop_features, FLAGS.repeats)
    elif impl == "torchlayer":
      if not benchmarks.importable("torch"):
        continue
      row, outputs = torchlayer_row(spec, params, loop_features, FLAGS.repeats)
    else:
      row, outputs = roofline_row(spec, FLAGS.batch, next((r for r in rows if r["impl"] == "project"), None),
                                  FLAGS.repeats), None
    if outputs is not None:
      kind = impl in NOISY  # noisy rows are compared with the first noisy row
      if reference.get(kind) is None:
        reference[kind] = outputs
      else:
        row["max_abs_diff"] = float(np.max(np.abs(outputs - reference[kind][: len(outputs)])))
    row.update(impl=impl, n_qubits=spec.n_qubits, batch=FLAGS.batch, conv_unit=spec.conv_unit,
               max_rss_mb=max_rss_mb(), **({"tag": FLAGS.tag} if FLAGS.tag else {}))
    rows.append(row)
    speedup = "".join(f"  vs {name} x{row[f'fwd_speedup_vs_{name}']:5.2f} / x{row[f'grad_speedup_vs_{name}']:5.2f}"
                      for name in ("plain", "tensorcircuit", "mixed") if f"grad_speedup_vs_{name}" in row)
    print(f"{impl:>18}: fwd {row['fwd_samples_per_s']:10.1f}/s  fwd+grad {row['grad_samples_per_s']:10.1f}/s  "
          f"compile {row.get('compile_s', float('nan')):6.1f}s (warm {row.get('compile_s_warm', float('nan')):5.1f}s)"
          f"  grad peak {row.get('grad_peak_bytes', 0) / 2**20:8.1f} MiB  rss {row['max_rss_mb']:7.0f} MiB{speedup}",
          flush=True)
    benchmarks.write_rows(FLAGS.out, [row])


if __name__ == "__main__":
  app.run(main)
