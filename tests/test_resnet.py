"""Tests for qcnn_jax.models.resnet (parameter counts and shapes through jax.eval_shape)."""

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.models import resnet


def count(tree) -> int:
  """Number of scalars in a pytree of arrays/ShapeDtypeStructs."""
  return sum(math.prod(leaf.shape) for leaf in jax.tree.leaves(tree))


def abstract(model, shape, **apply_kwargs):
  """(variables, output) shapes of ``model`` on zeros of ``shape`` without computing anything."""
  images = jnp.zeros(shape)
  variables = jax.eval_shape(model.init, jax.random.key(0), images)
  return variables, jax.eval_shape(lambda v: model.apply(v, images, **apply_kwargs), variables)


@pytest.mark.parametrize("make, stem, expected", [
    (resnet.ResNet50, "imagenet", 25_557_032),
    (resnet.ResNet18, "imagenet", 11_689_512),
    (resnet.ResNet50, "cifar", 25_557_032 - 64 * 3 * (49 - 9)),
    (resnet.ResNet18, "cifar", 11_689_512 - 64 * 3 * (49 - 9)),
])
def test_torchvision_parameter_counts(make, stem, expected):
  variables, logits = abstract(make(num_classes=1000, stem=stem), (1, 224, 224, 3))
  assert count(variables["params"]) == expected
  assert logits.shape == (1, 1000) and logits.dtype == jnp.float32


def test_module_names_follow_torchvision():
  variables, _ = abstract(resnet.ResNet50(num_classes=10, width=8), (1, 64, 64, 3))
  params = variables["params"]
  assert sorted(params) == sorted(["conv1", "bn1", "fc"] + [f"layer{s + 1}_{i}" for s, n in
                                                             enumerate((3, 4, 6, 3)) for i in range(n)])
  assert sorted(params["layer1_0"]) == ["bn1", "bn2", "bn3", "conv1", "conv2", "conv3", "downsample_bn",
                                        "downsample_conv"]
  assert "downsample_conv" not in params["layer1_1"]
  assert params["layer2_0"]["conv2"]["kernel"].shape == (3, 3, 16, 16)  # v1.5: stride on the 3x3
  assert sorted(variables["batch_stats"]["bn1"]) == ["mean", "var"]
  resnet18 = abstract(resnet.ResNet18(num_classes=10, width=8), (1, 64, 64, 3))[0]["params"]
  assert "downsample_conv" not in resnet18["layer1_0"] and "downsample_conv" in resnet18["layer2_0"]


@pytest.mark.parametrize("size, expected", [(28, "cifar"), (32, "cifar"), (33, "imagenet"), (224, "imagenet")])
def test_auto_stem_rule(size, expected):
  assert resnet.resolve_stem("auto", size, size) == expected
  assert resnet.resolve_stem("imagenet", size, size) == "imagenet"


def test_unknown_stem_is_rejected():
  with pytest.raises(ValueError, match="valid stems: auto, cifar, imagenet"):
    resnet.resolve_stem("deep", 64, 64)


@pytest.mark.parametrize("stem, size, layer1, layer4", [
    ("cifar", 28, 28, 4), ("imagenet", 28, 7, 1), ("imagenet", 64, 16, 2), ("auto", 64, 16, 2)])
def test_stem_resolutions(stem, size, layer1, layer4):
  model = resnet.ResNet18(num_classes=3, width=4, stem=stem)
  _, (_, state) = abstract(model, (2, size, size, 3), capture_intermediates=True)
  assert state["intermediates"]["layer1_1"]["__call__"][0].shape == (2, layer1, layer1, 4)
  assert state["intermediates"]["layer4_1"]["__call__"][0].shape == (2, layer4, layer4, 32)


@pytest.mark.parametrize("make, channels, size", [
    (resnet.ResNet18, 1, 28), (resnet.ResNet50, 3, 28), (resnet.ResNet50, 5, 64), (resnet.ResNet18, 2, 45)])
def test_any_channel_count_and_size(make, channels, size):
  variables, logits = abstract(make(num_classes=7, width=8), (2, size, size, channels))
  assert variables["params"]["conv1"]["kernel"].shape[2] == channels
  assert logits.shape == (2, 7)


@pytest.mark.parametrize("make, dim", [(resnet.ResNet18, 8 * 8), (resnet.ResNet50, 8 * 8 * 4)])
def test_backbone_returns_pooled_features(make, dim):
  variables, features = abstract(make(num_classes=None, width=8), (2, 28, 28, 3))
  assert features.shape == (2, dim) and features.dtype == jnp.float32
  assert "fc" not in variables["params"]


def test_bfloat16_compute_float32_params():
  model = resnet.ResNet50(num_classes=4, width=8, dtype=jnp.bfloat16)
  variables, (logits, state) = abstract(model, (2, 28, 28, 3), capture_intermediates=True)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  assert state["intermediates"]["layer3_0"]["__call__"][0].dtype == jnp.bfloat16
  assert logits.dtype == jnp.float32


@pytest.mark.parametrize("block, last_bn", [(resnet.BasicBlock, "bn2"), (resnet.Bottleneck, "bn3")])
@pytest.mark.parametrize("zero_init_residual", [False, True])
def test_zero_init_residual(block, last_bn, zero_init_residual):
  module = block(planes=4, strides=2, zero_init_residual=zero_init_residual)
  params = module.init(jax.random.key(0), jnp.zeros((1, 8, 8, 4)))["params"]
  np.testing.assert_array_equal(params[last_bn]["scale"], 0.0 if zero_init_residual else 1.0)
  np.testing.assert_array_equal(params["bn1"]["scale"], 1.0)
  np.testing.assert_array_equal(params["downsample_bn"]["scale"], 1.0)


def test_resnet_passes_zero_init_residual_to_every_block():
  seen = []

  def record(next_fun, args, kwargs, context):
    if isinstance(context.module, (resnet.BasicBlock, resnet.Bottleneck)):
      seen.append(context.module.zero_init_residual)
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(record):
    abstract(resnet.ResNet50(num_classes=2, width=4, zero_init_residual=True), (1, 28, 28, 3))
  assert seen.count(True) >= 16 and False not in seen


@pytest.mark.parametrize("kernel, strides, size", [
    (1, 1, 7), (1, 2, 7),            # channel matmul
    (3, 1, 2), (3, 2, 4), (3, 2, 3),  # output of <= 4 pixels: patch matmul
    (3, 1, 7), (3, 2, 7), (7, 2, 9),  # lax convolution
])
def test_conv_equals_flax_conv(kernel, strides, size):
  """Every formulation of resnet.Conv gives nn.Conv's values and gradients with the same parameter."""
  x = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 6))
  conv = resnet.Conv(5, kernel, strides)
  params = conv.init(jax.random.PRNGKey(1), x)
  pad = kernel // 2
  reference = nn.Conv(5, (kernel, kernel), strides=(strides, strides), padding=((pad, pad), (pad, pad)), use_bias=False)
  assert params["params"]["kernel"].shape == (kernel, kernel, 6, 5)
  np.testing.assert_allclose(conv.apply(params, x), reference.apply(params, x), rtol=1e-5, atol=1e-5)
  grad = lambda module: jax.grad(lambda p, x: (module.apply(p, x) ** 2).sum(), argnums=(0, 1))(params, x)
  for ours, theirs in zip(jax.tree.leaves(grad(conv)), jax.tree.leaves(grad(reference))):
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)


# either operand transposed in the kernel gradient (g always when the input is strided)
@pytest.mark.parametrize("channels, features, strided_input", [(3, 8, False), (8, 3, False), (3, 8, True)])
def test_channel_matmul_gradient_equals_autodiff(channels, features, strided_input):
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(keys[0], (2, 5, 5, channels))
  kernel = jax.random.normal(keys[1], (channels, features))
  g = jax.random.normal(keys[2], (2, 5, 5, features))
  ours = jax.vjp(lambda x, k: resnet.channel_matmul(x, k, strided_input), x, kernel)[1](g)
  theirs = jax.vjp(lambda x, k: jnp.einsum("bhwc,cf->bhwf", x, k), x, kernel)[1](g)
  for a, b in zip(ours, theirs):
    assert a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-5)


# Every stride-1 3x3 convolution of ResNet-50 (H, C -> F): 28 px (cifar stem) and 64 px (imagenet stem).
RESNET50_SAME_CONVS = [(28, 1, 64), (28, 64, 64), (14, 128, 128), (7, 256, 256), (4, 512, 512),
                       (16, 64, 64), (8, 128, 128), (4, 256, 256)]


@pytest.mark.parametrize("dtype, tol", [(jnp.float32, 1e-5), (jnp.float64, 1e-12)])
@pytest.mark.parametrize("size, channels, features", RESNET50_SAME_CONVS)
def test_conv_same_gradient_equals_autodiff(size, channels, features, dtype, tol):
  """conv_same's written-out input gradient (output gradient reversed in H, W) is lax.conv's."""
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  reference = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), ((1, 1), (1, 1)),
                                                        dimension_numbers=("NHWC", "HWIO", "NHWC"))

  @jax.jit  # eager dispatch in a temporary x64 context is fragile
  def gradients(x, kernel, g):
    return jax.vjp(resnet.conv_same, x, kernel)[1](g), jax.vjp(reference, x, kernel)[1](g)

  with jax.enable_x64(dtype == jnp.float64):
    x = jax.random.normal(keys[0], (1, size, size, channels), dtype)
    kernel = jax.random.normal(keys[1], (3, 3, channels, features), dtype) / math.sqrt(9 * channels)
    g = jax.random.normal(keys[2], (1, size, size, features), dtype)
    ours, theirs = gradients(x, kernel, g)
  for a, b in zip(ours, theirs):
    assert a.dtype == dtype and a.shape == b.shape
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol * float(jnp.abs(b).max()))

