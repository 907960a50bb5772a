"""Model registry: ``get_model(name, num_classes, **options)`` returns a Flax module.

Every model maps NHWC float images (B, H, W, C), H, W >= 28, any C, to float32 logits
(B, num_classes) through the pure functions ``model.init(rng, images, train=False)`` and
``model.apply(variables, images, train=..., mutable=["batch_stats"] if train else False)``
(``qcnn`` has no BatchNorm: its variables hold only "params").

Models (options besides ``num_classes``):
  resnet18, resnet50   classical baselines: width, stem, dtype, conv_impl ("xla" or "onednn": oneDNN's CPU
                       convolutions, ``resnet.CONV_IMPLS``), zero_init_residual.
  qcnn                 the QCNN alone on a reduced grayscale image: n_qubits, qcnn_input
                       ("amplitude" | "pooled"), conv_unit, encoding, readout, execution, noise,
                       input_range (pixel range of the normalised input, default (-1, 1)).
  resnet50_qcnn        ResNet-50 features -> heads.FeatureHead, the circuit in the prediction path
                       (bottleneck -> LayerNorm -> angles -> QCNN -> readout): width, stem, dtype,
                       n_qubits, conv_unit, encoding, readout, execution, noise (the circuit's:
                       "depolarizing:0.01" or a calibrated .json, quantum heads only), and the head options norm,
                       bottleneck_norm, angle_scale, angle_init_std, calibrate, residual, gate_init,
                       n_blocks, reuploading, prior (the trainer sets prior from the training labels).
  resnet50_mlp         its classical twin (circuit -> Dense-tanh-Dense of matched size): same options.
  resnet50_qcnn_residual, resnet50_mlp_residual   the same with the residual head defaults
                       (heads.RESIDUAL_HEAD: linear path + g · head, g from 0): same options.
  quanv_resnet50       quanvolution (2x2 patches, 4 qubits) -> ResNet-50: width, stem, dtype,
                       quanv_trainable, input_range.
Every model accepts ``multi_label`` (set by the trainer for multi-label tasks): quantum heads then
use readout "expvals" when readout is "auto"; classical heads are unchanged (one logit per label).
"""

from collections.abc import Callable

import flax.linen as nn
import jax.numpy as jnp

from qcnn_jax.models import hybrid, resnet

_RESNET = ("width", "stem", "dtype", "conv_impl")
_QUANTUM = ("n_qubits", "conv_unit", "encoding", "readout", "execution", "noise", "multi_label")
_HEAD = ("norm", "bottleneck_norm", "angle_scale", "angle_init_std", "calibrate", "residual", "gate_init", "n_blocks", "reuploading",
         "prior")


def _ignoring_multi_label(make: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
  """Builder that accepts and drops ``multi_label`` (a classical head gives one logit per label)."""

  def build(num_classes: int, multi_label: bool = False, **options) -> nn.Module:
    del multi_label
    return make(num_classes=num_classes, **options)

  return build


# name -> (builder(num_classes, **options), accepted options)
MODELS: dict[str, tuple[Callable[..., nn.Module], tuple[str, ...]]] = {
    "resnet18": (_ignoring_multi_label(resnet.ResNet18), _RESNET + ("zero_init_residual", "multi_label")),
    "resnet50": (_ignoring_multi_label(resnet.ResNet50), _RESNET + ("zero_init_residual", "multi_label")),
    "qcnn": (hybrid.QCNNClassifier, ("qcnn_input", "input_range") + _QUANTUM),
    "resnet50_qcnn": (hybrid.ResNet50QCNN, _RESNET + _QUANTUM + _HEAD),
    "resnet50_mlp": (hybrid.ResNet50MLP, _RESNET + _QUANTUM + _HEAD),
    "resnet50_qcnn_residual": (hybrid.ResNet50QCNNResidual, _RESNET + _QUANTUM + _HEAD),
    "resnet50_mlp_residual": (hybrid.ResNet50MLPResidual, _RESNET + _QUANTUM + _HEAD),
    "quanv_resnet50": (_ignoring_multi_label(hybrid.QuanvResNet50), _RESNET + ("quanv_trainable", "input_range", "multi_label")),
}


def get_model(name: str, num_classes: int, **options) -> nn.Module:
  """Returns the Flax module ``name`` with ``num_classes`` output logits.

  Args:
    name: one of ``MODELS`` (see the module docstring).
    num_classes: number of logits: 1 (binary, sigmoid BCE), C (multi-class) or L (multi-label).
    **options: model options; ``dtype`` may be a string such as "bfloat16".

  Raises:
    ValueError: unknown name or option (the message lists the valid ones), or num_classes < 1.
  """
  if name not in MODELS:
    raise ValueError(f"unknown model {name!r}; valid models: {', '.join(MODELS)}")
  build, valid = MODELS[name]
  unknown = sorted(set(options) - set(valid))
  if unknown:
    raise ValueError(f"unknown options {unknown} for model {name!r}; valid options: {', '.join(valid)}")
  if not isinstance(num_classes, int) or num_classes < 1:
    raise ValueError(f"num_classes must be a positive int, got {num_classes!r}")
  if "dtype" in options:
    options["dtype"] = jnp.dtype(options["dtype"])
  return build(num_classes, **options)


# Options the trainer derives from the data (not part of a model's configuration).
DATA_OPTIONS = ("multi_label", "prior")


# Options added after runs were recorded, with the value those runs used: resolved as None (what a
# missing key reads as, `checkpointing.config_differences`) when they have it, so earlier records stay valid.
ADDED_LATER = {"conv_impl": "xla"}


def resolved_options(name: str, **options) -> dict:
  """Every configurable option of model ``name`` with the value the model uses: the given
  ``options`` (None = unset) and the model's defaults for the rest, as JSON-ready values
  (dtype names, lists for tuples; None for an ``ADDED_LATER`` option at its earlier value).
  ``DATA_OPTIONS`` are left out. Raises like ``get_model``.

  A run stores this with its config, so a later change of a default cannot make an old run pass
  for a run of the new defaults.
  """
  given = {k: v for k, v in options.items() if v is not None}
  module = get_model(name, 1, **given)
  resolved = {}
  for option in MODELS[name][1]:
    if option in DATA_OPTIONS or not hasattr(module, option):
      continue
    value = getattr(module, option)
    if isinstance(value, tuple):
      value = list(value)
    elif option == "dtype":
      value = None if value is None else jnp.dtype(value).name
    resolved[option] = None if option in ADDED_LATER and value == ADDED_LATER[option] else value
  return resolved


__all__ = ["DATA_OPTIONS", "MODELS", "get_model", "resolved_options"]
