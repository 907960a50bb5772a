"""Tests for the model registry and the hybrid models (tiny widths, 4 qubits, 28 x 28 inputs)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import traverse_util

from qcnn_jax.training import train
from qcnn_jax.models import MODELS, get_model, hybrid

NAMES = ["resnet18", "resnet50", "qcnn", "resnet50_qcnn", "resnet50_mlp", "resnet50_qcnn_residual",
         "resnet50_mlp_residual", "quanv_resnet50"]
TINY = {
    "resnet18": {"width": 8},
    "resnet50": {"width": 4},
    "qcnn": {"n_qubits": 4},
    "resnet50_qcnn": {"width": 4, "n_qubits": 4},
    "resnet50_mlp": {"width": 4, "n_qubits": 4},
    "resnet50_qcnn_residual": {"width": 4, "n_qubits": 4},
    "resnet50_mlp_residual": {"width": 4, "n_qubits": 4},
    "quanv_resnet50": {"width": 4, "quanv_trainable": True},
}
# (num_classes, multi_label): binary, 5-class, 6-class, 14-label multi-label.
HEADS = [(1, False), (5, False), (6, False), (14, True)]


def images(batch: int = 2, size: int = 28, channels: int = 3):
  """Deterministic pixels in [0, 1], NHWC."""
  return jax.random.uniform(jax.random.key(7), (batch, size, size, channels))


def count(tree) -> int:
  """Number of scalars in a pytree of arrays/ShapeDtypeStructs."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def abstract_variables(model, x):
  """Variable shapes of ``model`` on ``x`` (no computation)."""
  return jax.eval_shape(model.init, jax.random.key(0), x)


def test_registry_lists_every_model():
  assert sorted(MODELS) == sorted(NAMES)


@pytest.mark.parametrize("name,in_path", [("resnet50_qcnn", True), ("resnet50_mlp", True),
                                          ("resnet50_qcnn_residual", False), ("resnet50_mlp_residual", False)])
def test_the_default_hybrid_predicts_through_its_circuit(name, in_path):
  """The default hybrid's only route to the logits is its circuit (twin: its block): other block
  parameters give other logits from the first step; a residual head with g = 0 ignores its block."""
  model = get_model(name, 1, **TINY[name])
  x = images(batch=4)
  variables = model.init(jax.random.key(0), x)
  head = variables["params"]["head"]
  block = next(k for k in head if k.startswith(("qcnn_", "twin_")))
  assert ("linear" not in head and "residual_gate" not in head) is in_path
  moved = {**variables, "params": {**variables["params"], "head": {
      **head, block: jax.tree.map(lambda p: p + 0.5, head[block])}}}
  change = float(jnp.abs(model.apply(moved, x) - model.apply(variables, x)).max())
  assert (change > 1e-3) if in_path else (change == 0.0)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("num_classes, multi_label", HEADS)
def test_output_shapes(name, num_classes, multi_label):
  model = get_model(name, num_classes, multi_label=multi_label, **TINY[name])
  x = images()
  variables = abstract_variables(model, x)
  logits = jax.eval_shape(lambda v: model.apply(v, x, train=False), variables)
  assert logits.shape == (2, num_classes) and logits.dtype == jnp.float32


@pytest.mark.parametrize("name", NAMES)
def test_any_channel_count(name):
  model = get_model(name, 3, **TINY[name])
  x = images(channels=1, size=32)
  logits = jax.eval_shape(lambda v: model.apply(v, x), abstract_variables(model, x))
  assert logits.shape == (2, 3)


@pytest.mark.parametrize("name", NAMES)
def test_jitted_train_step(name):
  """init, two real `train.train_step`s (Adam, batch_stats, NaN guard) that move every parameter
  (non-zero gradients, quantum ones included: a residual head's gated path starts moving once its
  gate has left 0 in step 1), pure apply; one jitted function, one compilation.
  """
  model = get_model(name, 5, **TINY[name])
  x, labels = images(), jnp.array([[0], [3]])

  @jax.jit
  def run(key):
    variables = model.init(key, x, train=False)
    state = train.TrainState.create(apply_fn=model.apply, params=variables["params"], tx=optax.adam(1e-2),
                                    batch_stats=variables.get("batch_stats", {}))
    batch = {"image": x, "label": labels}
    new_state, metrics = train.train_step(state, batch, model=model, task="multi-class")
    new_state, metrics = train.train_step(new_state, batch, model=model, task="multi-class")
    logits = model.apply({"params": state.params, "batch_stats": state.batch_stats}, x, train=False)
    new_variables = {"params": new_state.params, "batch_stats": new_state.batch_stats}
    return variables, new_variables, metrics, logits

  variables, new_variables, metrics, logits = run(jax.random.key(0))
  assert bool(metrics["finite"]) and np.isfinite(metrics["loss"]) and logits.shape == (2, 5)
  assert np.isfinite(metrics["grad_norm"]) and metrics["grad_norm"] > 0
  # Adam moves a parameter iff its gradient was non-zero: every parameter, quantum ones included.
  old_params = traverse_util.flatten_dict(variables["params"], sep="/")
  new_params = traverse_util.flatten_dict(new_variables["params"], sep="/")
  assert [path for path in old_params if np.allclose(old_params[path], new_params[path])] == []
  quantum = [path for path in new_params if "quantum" in path]
  assert bool(quantum) == (name not in ("resnet18", "resnet50", "resnet50_mlp", "resnet50_mlp_residual"))
  if name != "qcnn":  # BatchNorm statistics move in the train step
    old, new = jax.tree.leaves(variables["batch_stats"]), jax.tree.leaves(new_variables["batch_stats"])
    assert len(old) == len(new) and not any(np.allclose(a, b) for a, b in zip(old, new))
  again = run(jax.random.key(0))
  np.testing.assert_array_equal(again[-1], logits)  # pure: same inputs, same outputs


@pytest.mark.parametrize("name, expected", [("resnet50", 25_557_032), ("resnet18", 11_689_512)])
def test_torchvision_parameter_counts(name, expected):
  model = get_model(name, 1000, stem="imagenet")
  assert count(abstract_variables(model, jnp.zeros((1, 224, 224, 3)))["params"]) == expected


@pytest.mark.parametrize("num_classes, multi_label", HEADS)
def test_mlp_control_matches_quantum_head(num_classes, multi_label):
  """Default 8 qubits: the twin block has the circuit's size within one hidden unit; the rest of
  the head (bottleneck, readout) is the same module with the same shapes."""
  x = images()
  quantum = abstract_variables(get_model("resnet50_qcnn", num_classes, width=4, multi_label=multi_label), x)
  classical = abstract_variables(get_model("resnet50_mlp", num_classes, width=4, multi_label=multi_label), x)
  q_head, c_head = quantum["params"]["head"], classical["params"]["head"]
  circuit, twin = count(q_head["qcnn_0"]), count(c_head["twin_0"])
  hidden = c_head["twin_0"]["hidden"]["kernel"].shape[1]
  assert abs(twin - circuit) <= (8 + 1 + c_head["twin_0"]["out"]["kernel"].shape[1]) / 2, (twin, circuit, hidden)
  rest = lambda head: jax.tree.map(jnp.shape, {k: v for k, v in head.items() if k not in ("qcnn_0", "twin_0")})
  assert rest(q_head) == rest(c_head)
  assert q_head["reduce"]["kernel"].shape == (128, 8)  # (8 * width * 4, n_qubits)


def test_multi_label_uses_expvals_readout():
  x = images()
  multi = abstract_variables(get_model("resnet50_qcnn", 5, width=4, n_qubits=4, multi_label=True), x)
  multi_class = abstract_variables(get_model("resnet50_qcnn", 5, width=4, n_qubits=4), x)
  assert "readout" in multi["params"]["head"]  # expvals -> Dense(5)
  assert "readout" not in multi_class["params"]["head"]  # auto -> probs


@pytest.mark.parametrize("options, encoding", [
    ({}, "amplitude"), ({"qcnn_input": "pooled"}, "angle_y"),
    ({"qcnn_input": "pooled", "encoding": "dense_angle"}, "dense_angle")])
def test_qcnn_inputs(options, encoding):
  model = get_model("qcnn", 2, n_qubits=6, **options)
  assert model.circuit_encoding() == encoding
  x = images(size=30, channels=2)
  logits = jax.eval_shape(lambda v: model.apply(v, x), abstract_variables(model, x))
  assert logits.shape == (2, 2)


def test_grid_shape():
  assert hybrid.grid_shape(8) == (2, 4) and hybrid.grid_shape(6) == (2, 3) and hybrid.grid_shape(5) == (1, 5)


def test_area_pool_is_average_pooling():
  x = jax.random.uniform(jax.random.key(3), (2, 28, 28))
  np.testing.assert_allclose(hybrid.area_pool(x, (2, 4)), x.reshape(2, 2, 14, 4, 7).mean(axis=(2, 4)), rtol=1e-5)
  odd = jax.random.uniform(jax.random.key(4), (1, 30, 30))  # 30 / 4 = 7.5 px per cell
  pooled = hybrid.area_pool(odd, (2, 4))
  upsampled = jnp.repeat(jnp.repeat(odd, 2, axis=1), 2, axis=2)  # 60 / 4 = 15 whole px per cell
  np.testing.assert_allclose(pooled, upsampled.reshape(1, 2, 30, 4, 15).mean(axis=(2, 4)), rtol=1e-5)


@pytest.mark.parametrize("options, message", [
    ({"qcnn_input": "amplitude", "encoding": "angle_y"}, "needs encoding 'amplitude'"),
    ({"qcnn_input": "pooled", "encoding": "amplitude"}, "needs an angle encoding"),
    ({"qcnn_input": "pixels"}, "not in"),
])
def test_qcnn_rejects_inconsistent_inputs(options, message):
  with pytest.raises(ValueError, match=message):
    get_model("qcnn", 2, **options).circuit_encoding()


def test_unknown_name_or_option_lists_valid_ones():
  with pytest.raises(ValueError, match="valid models: resnet18, resnet50, qcnn"):
    get_model("vgg16", 2)
  with pytest.raises(ValueError, match=r"unknown options \['n_qubits'\].*valid options: width, stem, dtype"):
    get_model("resnet50", 2, n_qubits=8)
  with pytest.raises(ValueError, match="positive int"):
    get_model("resnet18", 0)


def test_dtype_string_gives_bfloat16_compute_float32_params():
  model = get_model("resnet50_qcnn", 2, width=4, n_qubits=4, dtype="bfloat16")
  assert model.dtype == jnp.bfloat16
  x = images()
  variables = abstract_variables(model, x)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  assert jax.eval_shape(lambda v: model.apply(v, x), variables).dtype == jnp.float32
