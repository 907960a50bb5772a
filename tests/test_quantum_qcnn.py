"""QCNN execution modes, gradients, batching, readouts, heads, resources, shots and noise."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pennylane as qml
import pytest

from qcnn_jax.models.quantum import (CONV_UNITS, QCNN, Noise, QCNNHead, QCNNSpec, gradient_variance, head_readout,
                                     layer_args, layout, n_params, param_shapes, qcnn_apply, readout_wires, resources,
                                     sample_fn)
from qcnn_jax.models.quantum.execution import QubitMemoryError, check_memory, memory_estimate, resolve
from qcnn_jax.models.quantum.qcnn import circuit_depth, postprocess

# PennyLane builds its initial state as complex128; JAX truncates it to complex64 with a warning.
pytestmark = pytest.mark.filterwarnings("ignore:Explicitly requested dtype complex128:UserWarning")


def random_params(spec, key=0, dtype=jnp.float32):
  """Circuit angles uniform in [0, 2π) for ``spec``."""
  keys = jax.random.split(jax.random.PRNGKey(key), 2)
  return {name: jax.random.uniform(k, shape, dtype, 0, 2 * math.pi)
          for k, (name, shape) in zip(keys, sorted(param_shapes(spec).items()))}


def random_features(spec, batch, key=1, dtype=jnp.float32):
  """(batch, F) angles in [0, π)."""
  return jax.random.uniform(jax.random.PRNGKey(key), (batch, spec.n_features), dtype, 0, math.pi)


@pytest.mark.parametrize("spec", [QCNNSpec(8), QCNNSpec(6, conv_unit="u6", readout="probs", n_readout=2)],
                         ids=["8q-su4", "6q-u6-probs"])
def test_fused_equals_gates(spec):
  params, features = random_params(spec), random_features(spec, 4)
  run = jax.jit(qcnn_apply, static_argnums=0, static_argnames="execution")
  fused, gates = run(spec, params, features, execution="fused"), run(spec, params, features, execution="gates")
  assert fused.shape == (4, spec.output_size)
  np.testing.assert_allclose(np.asarray(fused), np.asarray(gates), atol=1e-5)


@pytest.mark.parametrize("execution", ["fused", "gates"])
def test_grad_matches_finite_differences(execution):
  spec = QCNNSpec(4, conv_unit="u15", readout="expvals", n_readout=2)
  with jax.enable_x64(True):
    params, features = random_params(spec, dtype=jnp.float64), random_features(spec, 3, dtype=jnp.float64)
    weights = jnp.arange(1.0, 1.0 + 2 * 3).reshape(3, 2)

    @jax.jit
    def loss(params):
      return jnp.sum(weights * qcnn_apply(spec, params, features, execution=execution))

    grads = jax.grad(loss)(params)
    eps = 1e-6
    for name, value in params.items():
      flat = np.asarray(value).reshape(-1)
      for i in range(flat.size):
        shifted = [dict(params, **{name: jnp.asarray(flat + s * eps * np.eye(flat.size)[i]).reshape(value.shape)})
                   for s in (1, -1)]
        fd = (loss(shifted[0]) - loss(shifted[1])) / (2 * eps)
        assert abs(float(grads[name].reshape(-1)[i]) - float(fd)) < 1e-7, (name, i)
    assert float(jnp.max(jnp.abs(grads["conv"]))) > 1e-3


def test_jit_vmap_equals_per_sample():
  spec = QCNNSpec(4, conv_unit="u13", encoding="dense_angle", readout="probs", n_readout=2, n_outcomes=3)
  params, features = random_params(spec), random_features(spec, 5)
  batched = jax.jit(lambda p, x: qcnn_apply(spec, p, x))(params, features)
  conv_args, pool_args = layer_args(spec, params, "fused")
  forward = sample_fn(spec)
  single = np.stack([np.asarray(forward(x, conv_args, pool_args, None)) for x in features])
  np.testing.assert_allclose(np.asarray(batched), single, atol=1e-6)
  assert float(jnp.std(batched[:, 0])) > 1e-4  # samples actually differ


@pytest.mark.parametrize("readout,n_readout,n_outcomes,size", [("expval", 1, None, 1), ("probs", 2, 3, 3),
                                                               ("probs", 2, None, 4), ("expvals", 3, None, 3)])
def test_readouts(readout, n_readout, n_outcomes, size):
  module = QCNN(5, conv_unit="ttn", readout=readout, n_readout=n_readout, n_outcomes=n_outcomes)
  features = jax.random.uniform(jax.random.PRNGKey(0), (4, 5), maxval=math.pi)
  variables = module.init(jax.random.PRNGKey(1), features)
  out = module.apply(variables, features)
  assert out.shape == (4, size) and out.dtype == jnp.float32
  if readout == "probs":
    np.testing.assert_allclose(np.asarray(out.sum(-1)), 1.0, atol=1e-6)
    assert bool(jnp.all(out >= 0))
  else:
    assert bool(jnp.all(jnp.abs(out) <= 1 + 1e-6))
  assert set(variables["params"]) == {"quantum_conv", "quantum_pool"}


def test_probs_readout_without_kept_mass_is_uniform_with_finite_gradient():
  """A few shots may put no count on the kept outcomes: uniform over them, not 0/0."""
  spec = QCNNSpec(5, conv_unit="ttn", readout="probs", n_readout=2, n_outcomes=3)
  raw = jnp.array([[0.0, 0.0, 0.0, 1.0], [0.2, 0.1, 0.1, 0.6]])
  out = postprocess(spec, raw)
  np.testing.assert_allclose(np.asarray(out), [[1 / 3] * 3, [0.5, 0.25, 0.25]], rtol=1e-6)
  grad = jax.grad(lambda r: postprocess(spec, r)[:, 0].sum())(raw)
  assert bool(jnp.all(jnp.isfinite(grad))) and float(jnp.abs(grad[0]).sum()) == 0.0


@pytest.mark.parametrize("num_outputs,readout,expected", [
    (1, "auto", ("expval", 1)), (2, "auto", ("probs", 1)), (5, "auto", ("probs", 3)), (6, "auto", ("probs", 3)),
    (14, "auto", ("probs", 4)), (14, "expvals", ("expvals", 3)), (40, "auto", ("expvals", 3)),
    (3, "expvals", ("expvals", 3))])
def test_head_readout_rule(num_outputs, readout, expected):
  assert head_readout(num_outputs, 6, readout) == expected


@pytest.mark.parametrize("num_outputs,readout", [(1, "auto"), (5, "auto"), (6, "auto"), (14, "expvals")])
def test_head_shapes(num_outputs, readout):
  head = QCNNHead(num_outputs, n_qubits=6, readout=readout)
  features = jax.random.uniform(jax.random.PRNGKey(0), (3, 6), maxval=math.pi)
  variables = head.init(jax.random.PRNGKey(1), features)
  logits = head.apply(variables, features)
  assert logits.shape == (3, num_outputs) and bool(jnp.all(jnp.isfinite(logits)))
  quantum = [k for k in jax.tree_util.tree_leaves_with_path(variables) if "quantum" in jax.tree_util.keystr(k[0])]
  assert len(quantum) == 2
  if num_outputs in (5, 6):  # log-probabilities of C renormalised outcomes
    np.testing.assert_allclose(np.asarray(jnp.exp(logits).sum(-1)), 1.0, atol=1e-5)
  if num_outputs == 1:
    expval = QCNN(6).apply({"params": variables["params"]["qcnn"]}, features)
    np.testing.assert_allclose(np.asarray(logits), np.asarray(3.0 * expval), atol=1e-6)


def test_resources_reference_config():
  spec = QCNNSpec(8, conv_unit="su4")
  assert n_params(spec) == 51 and resources(spec)["n_params"] == 51
  assert resources(spec)["n_qubits"] == 8
  # 4 qubits, TTN: 4 RY + 4 units x 3 gates + 2 pools x 3 + 1 unit x 3 + 1 pool x 3.
  small = resources(QCNNSpec(4, conv_unit="ttn"))
  assert small["gate_count"] == 28 and small["n_params"] == 2 * (2 + 2)
  # Depth by hand: encoding 1, units (0,3) 3, (0,1) and (2,3) 5, (1,2) 7, pools 10, unit 12, pool 15.
  assert small["depth"] == 15


def test_circuit_depth_counts_parallel_gates():
  ops = [qml.RX(0.1, 0), qml.RX(0.1, 1), qml.CNOT([0, 1]), qml.RX(0.1, 2), qml.CNOT([1, 2])]
  assert circuit_depth(ops) == 3


EXPECTED_LAYERS = {4: 2, 5: 3, 6: 3, 7: 3, 8: 3, **{n: 4 for n in range(9, 17)}}


@pytest.mark.parametrize("n", range(4, 17))
def test_builder_every_width(n):
  for unit in ("su4", "ttn"):
    spec = QCNNSpec(n, conv_unit=unit)
    layers = layout(spec)
    assert len(layers) == EXPECTED_LAYERS[n]
    assert readout_wires(spec) == (0,)
    assert n_params(spec) == EXPECTED_LAYERS[n] * (CONV_UNITS[unit].n_params + 2)
    res = resources(spec)
    assert res["n_qubits"] == n and 0 < res["depth"] <= res["gate_count"]
    # every wire is touched by the first conv layer, every discarded wire is never used again
    assert {w for pair in layers[0].conv_pairs for w in pair} == set(range(n))
    for index, layer in enumerate(layers[:-1]):
      discarded = {c for c, _ in layer.pool_pairs}
      assert not discarded & {w for pair in layers[index + 1].conv_pairs for w in pair}
  three = QCNNSpec(n, readout="expvals", n_readout=3)
  assert len(readout_wires(three)) == 3


def test_spec_validation():
  for bad in (dict(conv_unit="u99"), dict(n_readout=4), dict(readout="expval", n_readout=2),
              dict(encoding="amplitude", reuploading=2), dict(reuploading=3), dict(readout="probs", n_outcomes=3)):
    with pytest.raises(ValueError):
      QCNNSpec(4, **bad)
  assert QCNNSpec(4, encoding="dense_angle").n_features == 8 and QCNNSpec(4, encoding="amplitude").n_features == 16


def test_amplitude_zero_input_is_finite():
  module = QCNN(4, encoding="amplitude")
  features = jnp.zeros((2, 16)).at[1, 3].set(2.0)
  variables = module.init(jax.random.PRNGKey(0), features)
  grads = jax.grad(lambda x: module.apply(variables, x).sum())(features)
  assert bool(jnp.all(jnp.isfinite(grads)))
  out = module.apply(variables, features)
  assert bool(jnp.all(jnp.isfinite(out))) and abs(float(out[0, 0] - out[1, 0])) > 1e-6


def test_float64_when_x64_enabled():
  with jax.enable_x64(True):
    module = QCNN(4, conv_unit="u9")
    features = jnp.ones((2, 4))
    # jit: eager dispatch inside a temporary x64 context can reuse float32 cached executables.
    variables = jax.jit(module.init)(jax.random.PRNGKey(0), features)
    assert variables["params"]["quantum_conv"].dtype == jnp.float64
    assert jax.jit(module.apply)(variables, features).dtype == jnp.float64


def test_shots_estimate_close_to_exact():
  exact_module, shot_module = QCNN(4, conv_unit="so4"), QCNN(4, conv_unit="so4", shots=20000)
  features = jax.random.uniform(jax.random.PRNGKey(0), (3, 4), maxval=math.pi)
  variables = exact_module.init(jax.random.PRNGKey(1), features)
  exact = exact_module.apply(variables, features)
  run = jax.jit(lambda key: shot_module.apply(variables, features, rngs={"shots": key}))
  first, second = run(jax.random.PRNGKey(2)), run(jax.random.PRNGKey(3))
  # standard error of <Z> with 20000 shots is at most 1/sqrt(20000) = 0.007
  np.testing.assert_allclose(np.asarray(first), np.asarray(exact), atol=0.035)
  assert float(jnp.max(jnp.abs(first - second))) > 0  # fresh samples per key


def test_noise():
  module = QCNN(4, conv_unit="u14")
  features = jax.random.uniform(jax.random.PRNGKey(0), (3, 4), maxval=math.pi)
  variables = module.init(jax.random.PRNGKey(1), features)
  exact = module.apply(variables, features)
  for channel in ("depolarizing", "amplitude_damping"):
    silent = QCNN(4, conv_unit="u14", noise=Noise(channel, 0.0)).apply(variables, features)
    np.testing.assert_allclose(np.asarray(silent), np.asarray(exact), atol=1e-5)
  noisy = QCNN(4, conv_unit="u14", noise=Noise("depolarizing", 0.2)).apply(variables, features)
  assert float(jnp.max(jnp.abs(noisy - exact))) > 1e-3
  # A theorem, unlike "noise shrinks <Z>" mid-circuit: depolarizing at p = 3/4 after the last gate
  # leaves the readout qubit maximally mixed, so <Z> = 0 whatever came before.
  mixed = QCNN(4, conv_unit="u14", noise=Noise("depolarizing", 0.75)).apply(variables, features)
  np.testing.assert_allclose(np.asarray(mixed), 0.0, atol=1e-5)
  with pytest.raises(ValueError):
    Noise("bitflip", 0.1)


def test_gradient_variance_agrees_across_engines_and_is_not_barren_at_four_qubits():
  spec = QCNNSpec(4, "su4")
  fused = gradient_variance(spec, num_samples=32, seed=3, execution="fused")
  engine = gradient_variance(spec, num_samples=32, seed=3, execution="statevector")
  assert set(fused) == {"conv", "pool"} and fused["conv"].shape == param_shapes(spec)["conv"]
  for name in fused:
    np.testing.assert_allclose(fused[name], engine[name], rtol=1e-4, atol=1e-7)
  assert fused["conv"][0].mean() > 1e-3  # far from a plateau at 4 qubits


@pytest.mark.parametrize("execution,noise,n", [("fused", None, 10), ("statevector", None, 10),
                                               ("fused", Noise("depolarizing", 0.01), 5),
                                               ("density", Noise("depolarizing", 0.01), 6)])
def test_memory_estimate_is_within_2x_of_xla_memory_analysis(execution, noise, n):
  """The estimate that refuses oversized circuits tracks what XLA really allocates for fwd + grad."""
  spec, batch = QCNNSpec(n), 16
  loss = lambda params, x: qcnn_apply(spec, params, x, execution=execution, noise=noise).sum()
  compiled = jax.jit(jax.grad(loss)).lower(random_params(spec), random_features(spec, batch)).compile()
  measured = compiled.memory_analysis().temp_size_in_bytes
  assert 0.5 < memory_estimate(spec, batch, execution, noise) / measured < 2.0


def test_circuits_too_large_for_memory_are_refused_with_the_numbers_before_allocating():
  features = jax.ShapeDtypeStruct((64, 24), jnp.float32)
  with pytest.raises(QubitMemoryError, match=r"24-qubit QCNN on a batch of 64 needs about \d+\.\d GiB"):
    jax.eval_shape(lambda x: QCNN(24).init(jax.random.PRNGKey(0), x), features)
  spec = QCNNSpec(10)
  check_memory(spec, 64, "fused", None, limit=2**30)  # 10 qubits: pure states fit in 1 GiB
  with pytest.raises(QubitMemoryError, match="density matrices.*fewer qubits for noise"):
    check_memory(spec, 64, "fused", Noise("depolarizing", 0.01), limit=2**30)


def test_auto_execution_is_the_statevector_engine_for_exact_circuits():
  assert resolve("auto") == "statevector"
  assert resolve("auto", shots=100) == "statevector"  # the engines sample shots too
  assert resolve("auto", noise=Noise("depolarizing", 0.01)) == "density"  # the density-matrix engine
  assert resolve("auto", shots=100, noise=Noise("depolarizing", 0.01)) == "density"
  assert resolve("gates") == "gates"
  with pytest.raises(ValueError, match="not in"):
    resolve("fast")
  assert memory_estimate(QCNNSpec(12), 32, "auto") == memory_estimate(QCNNSpec(12), 32, "statevector")
  assert QCNNHead(1, 4).execution == "auto"
