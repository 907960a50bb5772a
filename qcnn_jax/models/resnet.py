"""Flax ResNet-18/50 with torchvision's architecture (ResNet v1.5) and a choice of stem.

Submodules carry torchvision's names (``conv1``, ``bn1``, ``layer1_0/conv1``,
``layer1_0/downsample_conv``, ``fc``) so that ``pretrained.py`` maps weights by name.
Inputs are NHWC float arrays of any size >= 28 px and any channel count (the first
convolution adapts to the channel count at ``init``).
"""

import functools
from collections.abc import Sequence
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp

from qcnn_jax.models import onednn

STEMS = ("auto", "cifar", "imagenet")
# How convolutions run: "xla" (lax / matmuls, formulated below for XLA:CPU) or "onednn" (oneDNN's
# CPU kernels through XLA's FFI for every float32 convolution, 1x1 included; ``onednn``).
CONV_IMPLS = ("xla", "onednn")
# stem="auto" uses the 3x3 stride-1 "cifar" stem up to this input height/width (px).
AUTO_CIFAR_MAX_SIZE = 32

# torchvision initialises convolutions with kaiming_normal_(mode="fan_out", nonlinearity="relu").
_conv_init = nn.initializers.variance_scaling(2.0, "fan_out", "normal")


def resolve_stem(stem: str, height: int, width: int) -> str:
  """Returns the concrete stem ("cifar" or "imagenet") for an input of height x width px.

  ``stem="auto"`` picks "cifar" (3x3 stride-1 conv, no max-pool, as MedMNIST's ResNet (28))
  when min(height, width) <= 32 px, and "imagenet" (7x7/2 conv + 3x3/2 max-pool) otherwise.
  """
  if stem not in STEMS:
    raise ValueError(f"unknown stem {stem!r}; valid stems: {', '.join(STEMS)}")
  if stem == "auto":
    return "cifar" if min(height, width) <= AUTO_CIFAR_MAX_SIZE else "imagenet"
  return stem


# Output maps of at most this many pixels are computed as one patch matmul (see ``Conv``).
SMALL_MAP_MAX_PIXELS = 4


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def channel_matmul(x, kernel, strided_input: bool = False):
  """(B, H, W, C) x (C, F) -> (B, H, W, F): a 1x1 convolution.

  Its gradient is written out because XLA:CPU lowers the kernel gradient that autodiff derives
  (``dot_general(g, x)`` over B, H, W, then a transpose) with a transposed copy of the output
  gradient g fused into the BatchNorm backward before it (35-45 ms per layer at 28 px, batch 32):
  ``einsum("bhwc,bhwf->cf", x, g)`` is one library dot, 1.6-3.7x faster (measured per layer).
  ``strided_input``: x is a strided slice (a strided shortcut); the kernel gradient then transposes
  g instead of x, whose transpose XLA:CPU fuses with the strided slice into one slow copy (19-29 ms
  per shortcut at 28 px, batch 32, 0.07-0.3 GB/s).
  """
  return jnp.einsum("bhwc,cf->bhwf", x, kernel)


def _channel_matmul_fwd(x, kernel, strided_input):
  return channel_matmul(x, kernel, strided_input), (x, kernel)


def _channel_matmul_bwd(strided_input, residuals, g):
  x, kernel = residuals
  # XLA:CPU's dot transposes its first operand here: let that be the one with fewer channels.
  if x.shape[-1] <= g.shape[-1] and not strided_input:
    kernel_grad = jnp.einsum("bhwc,bhwf->cf", x, g)
  else:
    kernel_grad = jnp.einsum("bhwf,bhwc->fc", g, x).T
  return jnp.einsum("bhwf,cf->bhwc", g, kernel), kernel_grad


channel_matmul.defvjp(_channel_matmul_fwd, _channel_matmul_bwd)


@jax.custom_vjp
def conv_same(x, kernel):
  """(B, H, W, C) x (k, k, C, F) -> (B, H, W, F): stride-1 convolution padded k // 2 per side.

  Its input gradient is written out: autodiff convolves the output gradient with the kernel
  reversed and its in/out channels swapped, which XLA:CPU emits as one fused reverse-and-transpose
  copy of the kernel (12-13 ms for 3x3x512x512, where the transpose alone takes < 1 ms). Here the
  output gradient is reversed in H and W instead (contiguous rows of C values), convolved with the
  kernel only transposed, and the result reversed back: the same sums.
  """
  return onednn.lax_conv(x, kernel, 1)


def _conv_same_fwd(x, kernel):
  return conv_same(x, kernel), (x, kernel)


def _conv_same_bwd(residuals, g):
  x, kernel = residuals
  x_grad = onednn.lax_conv(g[:, ::-1, ::-1, :], kernel.transpose(0, 1, 3, 2), 1)[:, ::-1, ::-1, :]
  kernel_grad = jax.vjp(lambda kernel: onednn.lax_conv(x, kernel, 1), kernel)[1](g)[0]
  return x_grad, kernel_grad


conv_same.defvjp(_conv_same_fwd, _conv_same_bwd)


class Conv(nn.Module):
  """Bias-free k x k convolution padded like torch (k // 2 per side): (B, H, W, C) -> (B, H', W', F).

  Same parameter (``kernel`` (k, k, C, F), float32) and result as ``nn.Conv``, but formulated for
  speed on XLA:CPU (and harmless elsewhere):

  * 1x1 kernels are a channel matmul (``channel_matmul``, with its gradient written out) of the
    strided input: 1.3-2.9x faster per layer than a convolution, forward and backward.
  * Output maps of at most ``SMALL_MAP_MAX_PIXELS`` pixels (ResNet-50's last stage at 64 px input
    is 2x2) are one matmul of the k*k shifted views (im2col): XLA:CPU rewrites such convolutions,
    whose window covers the whole padded input, into a slow generic kernel (measured 25-50x
    slower, forward and backward, for 3x3 convolutions on 2x2 maps of 512 channels).
  * Anything else is ``lax.conv_general_dilated``, stride 1 through ``conv_same`` (its input
    gradient written out).

  With ``conv_impl="onednn"`` every float32 convolution, 1x1 included, is ``onednn.conv`` instead.
  """

  features: int
  kernel_size: int = 3
  strides: int = 1
  dtype: Any = jnp.float32
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x):
    k, s, pad = self.kernel_size, self.strides, self.kernel_size // 2
    kernel = self.param("kernel", _conv_init, (k, k, x.shape[-1], self.features), jnp.float32).astype(self.dtype)
    x = x.astype(self.dtype)
    if self.conv_impl == "onednn" and self.dtype == jnp.float32:
      return onednn.conv(x, kernel, s)
    if k == 1:
      return channel_matmul(x[:, ::s, ::s, :], kernel[0, 0], s > 1)
    out_h, out_w = (x.shape[1] + 2 * pad - k) // s + 1, (x.shape[2] + 2 * pad - k) // s + 1
    if out_h * out_w <= SMALL_MAP_MAX_PIXELS:
      padded = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
      views = [padded[:, dy:dy + s * (out_h - 1) + 1:s, dx:dx + s * (out_w - 1) + 1:s, :]
               for dy in range(k) for dx in range(k)]
      return jnp.einsum("bhwk,kf->bhwf", jnp.concatenate(views, axis=-1), kernel.reshape(-1, self.features))
    return conv_same(x, kernel) if s == 1 else onednn.lax_conv(x, kernel, s)


def _bn(train: bool, dtype: Any, name: str, zero_scale: bool = False) -> nn.BatchNorm:
  """BatchNorm with torch's defaults (torch momentum 0.1 == flax momentum 0.9, eps 1e-5)."""
  return nn.BatchNorm(
      use_running_average=not train, momentum=0.9, epsilon=1e-5, dtype=dtype,
      param_dtype=jnp.float32, scale_init=nn.initializers.zeros if zero_scale else nn.initializers.ones,
      name=name)


class _Block(nn.Module):
  """Fields and projection shortcut shared by the residual blocks."""

  planes: int
  strides: int = 1
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  conv_impl: str = "xla"

  def shortcut(self, x, features: int, train: bool):
    """Identity, or conv1x1 + BN (torchvision's ``downsample``) when the shape changes."""
    if x.shape[-1] == features and self.strides == 1:
      return x
    x = Conv(features, 1, self.strides, self.dtype, self.conv_impl, name="downsample_conv")(x)
    return _bn(train, self.dtype, "downsample_bn")(x)


class BasicBlock(_Block):
  """Two 3x3 convolutions (ResNet-18): (B, H, W, C) -> (B, H/strides, W/strides, planes)."""

  expansion: ClassVar[int] = 1

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Applies the block to NHWC ``x``; ``train`` normalises with batch statistics."""
    y = Conv(self.planes, 3, self.strides, self.dtype, self.conv_impl, name="conv1")(x)
    y = nn.relu(_bn(train, self.dtype, "bn1")(y))
    y = Conv(self.planes, 3, 1, self.dtype, self.conv_impl, name="conv2")(y)
    y = _bn(train, self.dtype, "bn2", self.zero_init_residual)(y)
    return nn.relu(y + self.shortcut(x, self.planes, train))


class Bottleneck(_Block):
  """1x1 -> 3x3 (strided, v1.5) -> 1x1 convolutions: (B, H, W, C) -> (B, H/s, W/s, 4 planes)."""

  expansion: ClassVar[int] = 4

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Applies the block to NHWC ``x``; ``train`` normalises with batch statistics."""
    features = self.planes * self.expansion
    y = Conv(self.planes, 1, 1, self.dtype, self.conv_impl, name="conv1")(x)
    y = nn.relu(_bn(train, self.dtype, "bn1")(y))
    y = Conv(self.planes, 3, self.strides, self.dtype, self.conv_impl, name="conv2")(y)
    y = nn.relu(_bn(train, self.dtype, "bn2")(y))
    y = Conv(features, 1, 1, self.dtype, self.conv_impl, name="conv3")(y)
    y = _bn(train, self.dtype, "bn3", self.zero_init_residual)(y)
    return nn.relu(y + self.shortcut(x, features, train))


class ResNet(nn.Module):
  """ResNet (torchvision layout) mapping NHWC images to logits or pooled features.

  Attributes:
    stage_sizes: blocks per stage, e.g. (3, 4, 6, 3) for ResNet-50.
    block: ``BasicBlock`` or ``Bottleneck``.
    num_classes: size of the ``fc`` head; ``None`` returns the pooled features
      (B, 8 * width * block.expansion) without a head (the hybrids' backbone).
    width: channels of the stem and of the first stage (64 in torchvision).
    stem: "imagenet", "cifar" or "auto" (see ``resolve_stem``).
    zero_init_residual: zero-initialise the last BN scale of each block (off, as torchvision).
    dtype: compute dtype (e.g. ``jnp.bfloat16`` on accelerators); parameters stay float32.
    conv_impl: "xla" or "onednn" (``CONV_IMPLS``; the same parameters and results to float32 rounding).
  """

  stage_sizes: Sequence[int]
  block: type[BasicBlock] | type[Bottleneck]
  num_classes: int | None = 1000
  width: int = 64
  stem: str = "auto"
  zero_init_residual: bool = False
  dtype: Any = jnp.float32
  conv_impl: str = "xla"

  @nn.compact
  def __call__(self, x, train: bool = False):
    """Maps images (B, H, W, C) to float32 logits (B, num_classes) or features (B, D)."""
    if self.conv_impl not in CONV_IMPLS:
      raise ValueError(f"unknown conv_impl {self.conv_impl!r}; valid: {', '.join(CONV_IMPLS)}")
    imagenet = resolve_stem(self.stem, x.shape[1], x.shape[2]) == "imagenet"
    x = Conv(self.width, 7 if imagenet else 3, 2 if imagenet else 1, self.dtype, self.conv_impl, name="conv1")(x)
    x = nn.relu(_bn(train, self.dtype, "bn1")(x))
    if imagenet:
      x = nn.max_pool(x, (3, 3), strides=(2, 2), padding=((1, 1), (1, 1)))
    for stage, num_blocks in enumerate(self.stage_sizes):
      for index in range(num_blocks):
        x = self.block(
            planes=self.width * 2**stage, strides=2 if stage > 0 and index == 0 else 1,
            zero_init_residual=self.zero_init_residual, dtype=self.dtype,
            conv_impl=self.conv_impl, name=f"layer{stage + 1}_{index}")(x, train)
    x = jnp.mean(x, axis=(1, 2)).astype(jnp.float32)
    if self.num_classes is None:
      return x
    return nn.Dense(self.num_classes, name="fc")(x)


ResNet18 = functools.partial(ResNet, stage_sizes=(2, 2, 2, 2), block=BasicBlock)
ResNet50 = functools.partial(ResNet, stage_sizes=(3, 4, 6, 3), block=Bottleneck)
