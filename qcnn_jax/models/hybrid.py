"""QCNN-only, dressed-QCNN, quanvolutional and classical-control models built on resnet.py.

All modules map NHWC images (B, H, W, C), H, W >= 28, any C, to float32 logits (B, num_classes)
with ``__call__(images, train=False)``. Quantum parameters sit under paths containing
"quantum" (``quantum_head/qcnn/quantum_conv``, ``quanv/quantum_weights``); the ResNet of a
hybrid is always the submodule ``backbone`` (``pretrained.load_torchvision_resnet`` finds it).
Quantum parts compute in float32 whatever ``dtype`` the backbone uses.
"""

import math
from typing import Any, ClassVar

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from qcnn_jax.models import heads, quantum
from qcnn_jax.models.quantum import noise_model
from qcnn_jax.models.heads import HEAD_DEFAULTS, RESIDUAL_HEAD
from qcnn_jax.models.resnet import ResNet50

QCNN_INPUTS = ("amplitude", "pooled")


def to_unit_range(images, input_range: tuple[float, float]):
  """Maps pixels normalised to ``input_range`` (the pipeline's default, mean 0.5 / std 0.5,
  gives (-1, 1)) back to intensities in [0, 1], clipped, float32."""
  low, high = input_range
  return jnp.clip((images.astype(jnp.float32) - low) / (high - low), 0.0, 1.0)


def head_readout(readout: str, multi_label: bool) -> str:
  """QCNNHead readout: "auto" becomes "expvals" for multi-label tasks (sigmoid per label)."""
  return "expvals" if multi_label and readout == "auto" else readout


def grid_shape(n_features: int) -> tuple[int, int]:
  """(rows, cols) with rows * cols == n_features, rows the largest divisor <= sqrt(n_features)."""
  rows = max(d for d in range(1, math.isqrt(n_features) + 1) if n_features % d == 0)
  return rows, n_features // rows


def area_weights(n_in: int, n_out: int) -> np.ndarray:
  """(n_out, n_in) matrix averaging n_in pixels into n_out equal-length cells (fractional overlaps)."""
  edges = np.arange(n_out + 1) * (n_in / n_out)
  pixels = np.arange(n_in)
  overlap = np.minimum(edges[1:, None], pixels + 1) - np.maximum(edges[:-1, None], pixels)
  return np.maximum(overlap, 0.0) * (n_out / n_in)


def area_pool(images, shape: tuple[int, int]):
  """Adaptive average pooling (B, H, W) -> (B, h, w): each output is the mean of its cell's area."""
  rows, cols = area_weights(images.shape[1], shape[0]), area_weights(images.shape[2], shape[1])
  return jnp.einsum("bhw,ih,jw->bij", images, rows, cols)


class QCNNClassifier(nn.Module):
  """The QCNN alone on a reduced grayscale image (channels averaged).

  ``qcnn_input="amplitude"``: the image is resized (``jax.image.resize``, antialiased linear) to
  2**ceil(n/2) x 2**floor(n/2) pixels (16 x 16 at 8 qubits) whose 2**n values are amplitude
  encoded (L2-normalised by the encoding). ``qcnn_input="pooled"``: the image is average-pooled
  (``area_pool``) to the F features of ``encoding`` (n for angle_*, 2n for dense_angle) on a
  ``grid_shape(F)`` grid (2 x 4 at 8 qubits) and encoded as angles pi * pixel, so pixels are
  expected in [0, 1]: the "QCNN" row of Hassan et al. ``noise``: the circuit's noise
  (``noise_model.parse``), None for exact circuits.
  """

  num_classes: int
  n_qubits: int = 8
  qcnn_input: str = "amplitude"
  conv_unit: str = "su4"
  encoding: str | None = None
  readout: str = "auto"
  execution: str = "auto"
  noise: str | None = None
  multi_label: bool = False
  input_range: tuple[float, float] = (-1.0, 1.0)

  def circuit_encoding(self) -> str:
    """Encoding used: "amplitude" for amplitude input, ``encoding`` (default angle_y) for pooled."""
    if self.qcnn_input not in QCNN_INPUTS:
      raise ValueError(f"qcnn_input {self.qcnn_input!r} not in {QCNN_INPUTS}")
    if self.qcnn_input == "amplitude":
      if self.encoding not in (None, "amplitude"):
        raise ValueError(f"qcnn_input='amplitude' needs encoding 'amplitude', got {self.encoding!r}")
      return "amplitude"
    if self.encoding == "amplitude":
      raise ValueError("qcnn_input='pooled' needs an angle encoding, got 'amplitude'")
    return self.encoding or "angle_y"

  @nn.compact
  def __call__(self, images, train: bool = False):
    """Maps images (B, H, W, C) to logits (B, num_classes); ``train`` is unused (no BatchNorm)."""
    del train
    encoding = self.circuit_encoding()
    n_features = quantum.n_features(encoding, self.n_qubits)
    gray = jnp.mean(to_unit_range(images, self.input_range), axis=-1)
    if encoding == "amplitude":
      grid = (2 ** math.ceil(self.n_qubits / 2), 2 ** (self.n_qubits // 2))
      features = jax.image.resize(gray, (gray.shape[0], *grid), method="linear", antialias=True)
    else:
      features = math.pi * area_pool(gray, grid_shape(n_features))
    features = features.reshape(gray.shape[0], n_features)
    return quantum.QCNNHead(
        self.num_classes, self.n_qubits, conv_unit=self.conv_unit, encoding=encoding,
        readout=head_readout(self.readout, self.multi_label), execution=self.execution,
        noise=noise_model.parse(self.noise), name="quantum_head")(features)


class _DressedResNet50(nn.Module):
  """ResNet-50 pooled features -> ``heads.FeatureHead`` of kind ``KIND`` (see heads.py).

  The head options are FeatureHead's; the defaults (``heads.HEAD_DEFAULTS``) are the in-path
  design: Dense(F) -> LayerNorm -> tanh * pi -> QCNN -> a<Z> + b, b from the prior, the circuit's
  readout the only route to the logits. ``prior`` (the training prior's logits) is set by the trainer.
  ``noise`` (FeatureHead's, ``noise_model.parse``): the circuit's noise; None runs exact circuits.
  """

  KIND: ClassVar[str] = "quantum"
  num_classes: int
  width: int = 64
  stem: str = "auto"
  dtype: Any = jnp.float32
  conv_impl: str = "xla"
  n_qubits: int = 8
  conv_unit: str = "su4"
  encoding: str = "angle_y"
  readout: str = "auto"
  execution: str = "auto"
  noise: str | None = None
  multi_label: bool = False
  norm: bool = HEAD_DEFAULTS["norm"]
  bottleneck_norm: bool = HEAD_DEFAULTS["bottleneck_norm"]
  angle_scale: float = HEAD_DEFAULTS["angle_scale"]
  angle_init_std: float | None = HEAD_DEFAULTS["angle_init_std"]
  calibrate: bool = HEAD_DEFAULTS["calibrate"]
  residual: bool = HEAD_DEFAULTS["residual"]
  gate_init: float | None = None
  n_blocks: int = 1
  reuploading: int = 1
  prior: tuple[float, ...] | None = None

  def head(self) -> heads.FeatureHead:
    """The head module (quantum or its classical twin), named "head"."""
    return heads.FeatureHead(
        self.num_classes, kind=self.KIND, n_qubits=self.n_qubits, conv_unit=self.conv_unit,
        encoding=self.encoding, readout=head_readout(self.readout, self.multi_label), reuploading=self.reuploading,
        execution=self.execution, noise=self.noise, n_blocks=self.n_blocks, norm=self.norm,
        bottleneck_norm=self.bottleneck_norm, angle_scale=self.angle_scale,
        angle_init_std=self.angle_init_std, calibrate=self.calibrate, prior=self.prior, residual=self.residual,
        gate_init=self.gate_init, name="head")

  @nn.compact
  def __call__(self, images, train: bool = False):
    """Maps images (B, H, W, C) to logits (B, num_classes); ``train`` drives the BatchNorms."""
    features = ResNet50(num_classes=None, width=self.width, stem=self.stem, dtype=self.dtype,
                        conv_impl=self.conv_impl, name="backbone")(images, train)
    return self.head()(features)


class ResNet50QCNN(_DressedResNet50):
  """ResNet-50 backbone with a dressed QCNN head (bottleneck -> angles -> QCNN -> readout)."""

  KIND: ClassVar[str] = "quantum"


class ResNet50MLP(_DressedResNet50):
  """Classical twin of ``ResNet50QCNN``: the same head with the circuit replaced by a
  Dense -> tanh -> Dense block of matched parameter count (``heads.twin_width``)."""

  KIND: ClassVar[str] = "classical"


class ResNet50QCNNResidual(ResNet50QCNN):
  """``ResNet50QCNN`` with the residual head (``heads.RESIDUAL_HEAD``): logits = Dense(K)(features)
  + g * (LayerNorm -> Dense(F) -> tanh * pi -> QCNN -> a<Z>), g from 0 (``gate_init``)."""

  norm: bool = RESIDUAL_HEAD["norm"]
  bottleneck_norm: bool = RESIDUAL_HEAD["bottleneck_norm"]
  angle_scale: float = RESIDUAL_HEAD["angle_scale"]
  residual: bool = RESIDUAL_HEAD["residual"]


class ResNet50MLPResidual(ResNet50MLP):
  """Classical twin of ``ResNet50QCNNResidual``."""

  norm: bool = RESIDUAL_HEAD["norm"]
  bottleneck_norm: bool = RESIDUAL_HEAD["bottleneck_norm"]
  angle_scale: float = RESIDUAL_HEAD["angle_scale"]
  residual: bool = RESIDUAL_HEAD["residual"]


class QuanvResNet50(nn.Module):
  """Quanvolutional front-end (2x2 patches, 4 qubits) feeding a ResNet-50.

  The quanvolution halves H and W and gives 4 channels: 28 px inputs become 14 x 14 x 4, for
  which ``stem="auto"`` picks the 3x3 stride-1 cifar stem (stages at 14, 7, 4, 2 px); inputs of
  66 px or more keep the ImageNet stem. Images normalised to ``input_range`` are mapped back to
  intensities in [0, 1] for the RY(pi x) encoding; H and W must be even.
  """

  num_classes: int
  width: int = 64
  stem: str = "auto"
  dtype: Any = jnp.float32
  conv_impl: str = "xla"
  quanv_trainable: bool = False
  input_range: tuple[float, float] = (-1.0, 1.0)

  @nn.compact
  def __call__(self, images, train: bool = False):
    """Maps images (B, H, W, C) to logits (B, num_classes); ``train`` drives the BatchNorms."""
    maps = quantum.Quanvolution(trainable=self.quanv_trainable, name="quanv")(
        to_unit_range(images, self.input_range))
    return ResNet50(num_classes=self.num_classes, width=self.width, stem=self.stem, dtype=self.dtype,
                    conv_impl=self.conv_impl, name="backbone")(maps, train)
