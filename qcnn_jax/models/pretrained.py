"""Imports torchvision- or timm-layout ResNet weights from a ``.safetensors`` file into Flax variables.

torchvision and timm name ResNet-18/50 tensors identically (``conv1.weight``, ``bn1.running_mean``,
``layer1.0.conv1.weight``, ``layer1.0.downsample.0.weight``, ``layer1.0.downsample.1.running_var``,
``fc.weight``), so one importer serves both. The expected tensors are derived from the Flax
variables themselves (names from ``resnet.py``, shapes from the leaves), so any ResNet built by
``resnet.py`` with ``stem="imagenet"`` and ``width=64`` can be filled, alone or as the backbone of
a hybrid model.

Conversion: conv weights OIHW -> HWIO; ``fc.weight`` (out, in) -> kernel (in, out); BN
``weight``/``bias`` -> params ``scale``/``bias``; ``running_mean``/``running_var`` -> batch_stats
``mean``/``var``; ``num_batches_tracked`` is ignored.
"""

import math
import os

import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from safetensors.numpy import load_file

# Flax module names in resnet.py that differ from torchvision's.
_TORCH_MODULE_NAMES = {"downsample_conv": "downsample.0", "downsample_bn": "downsample.1"}
# (collection, Flax leaf name) -> torch tensor name suffix.
_TORCH_LEAF_NAMES = {
    ("params", "kernel"): "weight",
    ("params", "scale"): "weight",
    ("params", "bias"): "bias",
    ("batch_stats", "mean"): "running_mean",
    ("batch_stats", "var"): "running_var",
}
_RESNET_MARKERS = ("conv1", "bn1", "layer1_0")
# arch -> (blocks per stage, convolutions per block) of torchvision's models.
ARCHS = {"resnet18": ((2, 2, 2, 2), 2), "resnet50": ((3, 4, 6, 3), 3)}
_MAX_LISTED = 10


def torch_name(module_path: tuple[str, ...], collection: str, leaf: str) -> str:
  """torchvision tensor name of a Flax leaf.

  E.g. (("layer1_0", "downsample_bn"), "batch_stats", "var") -> "layer1.0.downsample.1.running_var".
  """
  modules = [_TORCH_MODULE_NAMES.get(name, name.replace("_", ".")) for name in module_path]
  return ".".join(modules + [_TORCH_LEAF_NAMES[(collection, leaf)]])


def to_flax(value: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
  """Converts a torch-layout tensor to the Flax layout of a leaf of ``target_shape``.

  4-D conv weights (O, I, H, W) become (H, W, I, O) and 2-D linear weights (out, in) become
  (in, out); other tensors are unchanged. A 3-channel (RGB) first conv is adapted to a target
  with C != 3 input channels: C == 1 sums the RGB filters (a grayscale image then gives the same
  response as the pretrained net on that image replicated to RGB); other C repeat the RGB
  filters cyclically and scale them by 3 / C (timm's ``adapt_input_conv`` rule).
  """
  if value.ndim == 4:
    in_channels = target_shape[2]
    if value.shape[1] == 3 and in_channels != 3:
      if in_channels == 1:
        value = value.sum(axis=1, keepdims=True)
      else:
        value = np.tile(value, (1, math.ceil(in_channels / 3), 1, 1))[:, :in_channels] * (3 / in_channels)
    return value.transpose(2, 3, 1, 0)
  if value.ndim == 2:
    return value.T
  return value


def _find_resnet(params) -> tuple[str, ...]:
  """Path of the single sub-tree of ``params`` holding a resnet.py ResNet."""
  found = []

  def visit(tree, path):
    if all(name in tree for name in _RESNET_MARKERS):
      found.append(path)
      return
    for name, child in tree.items():
      if hasattr(child, "items"):
        visit(child, path + (name,))

  visit(params, ())
  if len(found) != 1:
    raise ValueError(f"expected exactly one ResNet (modules {_RESNET_MARKERS}) in the variables, found "
                     f"{len(found)} at {['/'.join(p) or '<root>' for p in found]}")
  return found[0]


def _check_arch(resnet_params, arch: str) -> None:
  """Raises ValueError unless the Flax ResNet params have the layout of torchvision's ``arch``."""
  if arch not in ARCHS:
    raise ValueError(f"unknown arch {arch!r}; valid archs: {', '.join(ARCHS)}")
  stages = tuple(sum(name.startswith(f"layer{stage}_") for name in resnet_params) for stage in range(1, 5))
  convs = sum(name.startswith("conv") for name in resnet_params["layer1_0"])
  if (stages, convs) != ARCHS[arch]:
    raise ValueError(f"arch={arch!r} expects blocks {ARCHS[arch][0]} with {ARCHS[arch][1]} convs each, "
                     f"but the model has blocks {stages} with {convs} convs")


def _listing(items: list[str]) -> str:
  """Comma-separated items, cut after _MAX_LISTED."""
  more = f", ... ({len(items) - _MAX_LISTED} more)" if len(items) > _MAX_LISTED else ""
  return ", ".join(items[:_MAX_LISTED]) + more


def _convert_leaves(flat: dict, state: dict, prefix: tuple, load_head: bool):
  """(new flat variables, torch names used, names missing from `state`, shape mismatches) of copying
  the file tensors `state` into the ResNet leaves under `prefix` of `flat` (Flax flattened variables)."""
  new_flat, used, missing, mismatched = dict(flat), set(), [], []
  for key, leaf in flat.items():
    collection, module_path, leaf_name = key[0], key[1:-1], key[-1]
    if module_path[: len(prefix)] != prefix:
      continue
    module_path = module_path[len(prefix):]
    if module_path == ("fc",) and not load_head:
      continue
    name = torch_name(module_path, collection, leaf_name)
    if name not in state:
      missing.append(name)
      continue
    used.add(name)
    value = to_flax(state[name], leaf.shape)
    if value.shape != tuple(leaf.shape):
      mismatched.append(f"{name}: expected {tuple(leaf.shape)} (Flax layout), found {value.shape} "
                        f"(torch {state[name].shape})")
      continue
    new_flat[key] = jnp.asarray(value, dtype=leaf.dtype)
  return new_flat, used, missing, mismatched


def load_torchvision_resnet(path: str | os.PathLike, variables, *, arch: str = "resnet50",
                            load_head: bool = False):
  """Returns ``variables`` with the ResNet weights of a torchvision/timm ``.safetensors`` file.

  Args:
    path: ``.safetensors`` state dict of a torchvision or timm ResNet-18/50 (e.g. converted
      from ``torchvision.models.resnet50(weights="IMAGENET1K_V2").state_dict()``).
    variables: Flax variables {"params", "batch_stats"} from ``init`` (or ``jax.eval_shape`` of
      it) of a model containing exactly one resnet.py ResNet, at the root or nested (hybrids).
      Built with ``stem="imagenet"`` and ``width=64``; any input channel count (see ``to_flax``).
    arch: "resnet50" or "resnet18", the architecture of the file and of the model.
    load_head: also copy ``fc`` (needs a 1000-class head). By default the model's own freshly
      initialised head is kept, i.e. the head is re-initialised for the new class count.

  Returns:
    New variables (the input is not modified); every ResNet leaf except (by default) ``fc``
    is replaced by the converted file tensor, cast to the leaf's dtype; other leaves (e.g.
    quantum parameters) are kept.

  Raises:
    ValueError: the model is not ``arch``; or, naming them, missing or unexpected tensors and shapes
      that differ (expected vs found), with a hint when the model uses the 3x3 cifar stem.
  """
  state = {name: value for name, value in load_file(os.fspath(path)).items()
           if not name.endswith("num_batches_tracked")}
  prefix = _find_resnet(variables["params"])
  resnet_params = variables["params"]
  for name in prefix:
    resnet_params = resnet_params[name]
  _check_arch(resnet_params, arch)
  flat = traverse_util.flatten_dict({name: variables[name] for name in ("params", "batch_stats")})
  new_flat, used, missing, mismatched = _convert_leaves(flat, state, prefix, load_head)
  unexpected = sorted(name for name in state if name not in used and not name.startswith("fc."))
  errors = [f"{what}: {_listing(names)}" for what, names in (
      ("missing tensors", missing), ("unexpected tensors (another architecture?)", unexpected),
      ("shape mismatches", mismatched)) if names]
  if resnet_params["conv1"]["kernel"].shape[0] != 7:
    errors.append("the model uses the 3x3 'cifar' stem (stem='cifar', or stem='auto' with inputs "
                  "<= 32 px); pretrained ImageNet weights need stem='imagenet'")
  if errors:
    raise ValueError(f"cannot load {os.fspath(path)!r} into the ResNet at "
                     f"'{'/'.join(prefix) or '<root>'}': " + "; ".join(errors))
  result = traverse_util.unflatten_dict(new_flat)
  return {**variables, **result}
