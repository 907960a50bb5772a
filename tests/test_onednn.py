"""Tests for qcnn_jax.models.onednn: oneDNN's convolutions against float64 lax.conv, in the ResNet.

The kernels are compiled on first use (a few seconds); without the onednn extra the comparisons skip
and only the missing-extra message is tested.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from qcnn_jax.models import onednn, resnet

needs_onednn = pytest.mark.skipif(not onednn.available(), reason='needs pip install -e ".[onednn]" and g++')


def _lax_conv(x, kernel, stride):
  pad = kernel.shape[0] // 2
  return jax.lax.conv_general_dilated(x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
                                      dimension_numbers=("NHWC", "HWIO", "NHWC"))


def _float64_reference(x, kernel, g, stride):
  """(y, x gradient, kernel gradient) of lax.conv in float64 for these float32 arrays."""
  with jax.enable_x64(True):
    x64, k64, g64 = (jnp.asarray(np.asarray(a), jnp.float64) for a in (x, kernel, g))
    y, vjp = jax.vjp(lambda x, k: _lax_conv(x, k, stride), x64, k64)
    return tuple(np.asarray(a) for a in (y, *vjp(g64)))


# Every k x k (k > 1) convolution shape of ResNet-50 (H, C -> F, k, stride): 28 px (cifar stem) and
# 64 px (imagenet stem), 1x1 ones (stride 1 and the strided shortcuts), and odd sizes where a
# stride-2 window overhangs.
RESNET50_CONVS = [(28, 1, 64, 3, 1), (28, 64, 64, 3, 1), (28, 128, 128, 3, 2), (14, 128, 128, 3, 1),
                  (14, 256, 256, 3, 2), (7, 256, 256, 3, 1), (7, 512, 512, 3, 2), (4, 512, 512, 3, 1),
                  (64, 3, 64, 7, 2), (16, 64, 64, 3, 1), (8, 128, 128, 3, 1), (2, 512, 512, 3, 1),
                  (28, 64, 256, 1, 1), (28, 256, 512, 1, 2), (7, 1024, 2048, 1, 2), (4, 2048, 512, 1, 1),
                  (9, 5, 4, 3, 2), (9, 5, 4, 5, 1), (7, 6, 3, 7, 2), (7, 6, 3, 1, 2)]


@needs_onednn
@pytest.mark.parametrize("size, channels, features, k, stride", RESNET50_CONVS)
def test_conv_and_gradients_equal_float64_lax(size, channels, features, k, stride):
  keys = jax.random.split(jax.random.PRNGKey(0), 3)
  x = jax.random.normal(keys[0], (2, size, size, channels))
  kernel = jax.random.normal(keys[1], (k, k, channels, features)) / math.sqrt(k * k * channels)
  y, vjp = jax.jit(lambda x, kernel: jax.vjp(lambda x, k: onednn.conv(x, k, stride), x, kernel))(x, kernel)
  g = jax.random.normal(keys[2], y.shape)
  ours = (y, *jax.jit(vjp)(g))
  for a, b in zip(ours, _float64_reference(x, kernel, g, stride)):
    assert a.shape == b.shape and a.dtype == jnp.float32
    np.testing.assert_allclose(a, b, rtol=0, atol=2e-5 * np.abs(b).max())


@needs_onednn
@pytest.mark.parametrize("size", [28, 64])
def test_resnet_with_onednn_is_as_close_to_float64_as_xla(size):
  """Same parameters as conv_impl "xla"; the logits' gradient is as close to a float64 reference as
  XLA's float32 gradient is. BatchNorm uses its running statistics: with batch statistics over the
  2 x 2 maps of the last stage (64 px, batch 2) it amplifies float32 rounding to ~1% in places for
  either implementation, depending on XLA's optimisation level, which would test nothing."""
  images = jax.random.normal(jax.random.PRNGKey(0), (2, size, size, 1))
  models = {impl: resnet.ResNet50(num_classes=3, width=8, conv_impl=impl) for impl in resnet.CONV_IMPLS}
  variables = models["xla"].init(jax.random.PRNGKey(1), images)
  assert jax.tree.structure(models["onednn"].init(jax.random.PRNGKey(1), images)) == jax.tree.structure(variables)

  def gradient(model, variables, images):
    def loss(params):
      return jnp.sum(jnp.sin(model.apply({**variables, "params": params}, images)))
    return np.concatenate([np.ravel(a) for a in jax.tree.leaves(jax.jit(jax.grad(loss))(variables["params"]))])

  with jax.enable_x64(True):
    up = lambda tree: jax.tree.map(lambda a: jnp.asarray(np.asarray(a), jnp.float64), tree)
    reference = gradient(models["xla"].clone(dtype=jnp.float64), up(variables), up(images))
  error = {impl: np.linalg.norm(gradient(model, variables, images) - reference) / np.linalg.norm(reference)
           for impl, model in models.items()}
  assert error["onednn"] <= max(2 * error["xla"], 1e-5), error


def test_missing_onednn_names_the_extra(tmp_path, monkeypatch):
  monkeypatch.setenv("ONEDNN_ROOT", str(tmp_path / "no_onednn"))
  monkeypatch.setenv("QCNN_JAX_CACHE", str(tmp_path / "cache"))
  with pytest.raises(onednn.OnednnUnavailable, match=r'pip install -e "\.\[onednn\]"'):
    onednn.build()
  assert not (tmp_path / "cache").exists() or not list((tmp_path / "cache").iterdir())


def test_unknown_conv_impl_is_rejected():
  with pytest.raises(ValueError, match="valid: xla, onednn"):
    resnet.ResNet18(num_classes=2, width=4, conv_impl="cudnn").init(jax.random.PRNGKey(0), jnp.zeros((1, 28, 28, 1)))


def test_runs_recorded_before_conv_impl_existed_stay_valid():
  """conv_impl "xla" resolves to None (a missing key), so records made before the option pass for
  the default; a run with oneDNN's convolutions does not."""
  from qcnn_jax import models  # pylint: disable=import-outside-toplevel
  from qcnn_jax.training import checkpointing  # pylint: disable=import-outside-toplevel
  resolved = models.resolved_options("resnet50", width=4)
  assert resolved["conv_impl"] is None and resolved == models.resolved_options("resnet50", width=4, conv_impl="xla")
  old = {"model_resolved": {k: v for k, v in resolved.items() if k != "conv_impl"}}
  assert not checkpointing.config_differences(old, {"model_resolved": resolved})
  onednn_run = models.resolved_options("resnet50", width=4, conv_impl="onednn")
  assert checkpointing.config_differences(old, {"model_resolved": onednn_run}) == {
      "model_resolved.conv_impl": (None, "onednn")}
