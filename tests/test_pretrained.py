"""Tests for qcnn_jax.models.pretrained on synthetic torchvision-layout state dicts (nothing downloaded)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import traverse_util
from safetensors.numpy import save_file

from qcnn_jax.models import get_model, pretrained
from qcnn_jax.models.resnet import ResNet18, ResNet50

# (blocks per stage, Bottleneck?) of torchvision's architectures.
ARCHS = {"resnet18": ((2, 2, 2, 2), False), "resnet50": ((3, 4, 6, 3), True)}
MODELS = {"resnet18": ResNet18, "resnet50": ResNet50}


def torchvision_shapes(arch: str) -> dict[str, tuple[int, ...]]:
  """Names and shapes of torchvision's ``resnet18``/``resnet50`` state dict, in order."""
  stages, bottleneck = ARCHS[arch]
  expansion = 4 if bottleneck else 1
  shapes = {"conv1.weight": (64, 3, 7, 7)}

  def bn(name, channels):
    shapes.update({f"{name}.{leaf}": (channels,) for leaf in ("weight", "bias", "running_mean", "running_var")})
    shapes[f"{name}.num_batches_tracked"] = ()

  bn("bn1", 64)
  inplanes = 64
  for stage, num_blocks in enumerate(stages):
    planes = 64 * 2**stage
    for index in range(num_blocks):
      prefix = f"layer{stage + 1}.{index}"
      if bottleneck:
        convs = [(planes, inplanes, 1), (planes, planes, 3), (planes * 4, planes, 1)]
      else:
        convs = [(planes, inplanes, 3), (planes, planes, 3)]
      for number, (out, inp, kernel) in enumerate(convs, start=1):
        shapes[f"{prefix}.conv{number}.weight"] = (out, inp, kernel, kernel)
        bn(f"{prefix}.bn{number}", out)
      if index == 0 and (stage > 0 or inplanes != planes * expansion):
        shapes[f"{prefix}.downsample.0.weight"] = (planes * expansion, inplanes, 1, 1)
        bn(f"{prefix}.downsample.1", planes * expansion)
      inplanes = planes * expansion
  shapes.update({"fc.weight": (1000, inplanes), "fc.bias": (1000,)})
  return shapes


def synthetic_state(arch: str, seed: int = 0) -> dict[str, np.ndarray]:
  """Random float32 tensors with torchvision's names/shapes (positive running_var)."""
  rng = np.random.default_rng(seed)
  state = {}
  for name, shape in torchvision_shapes(arch).items():
    if name.endswith("num_batches_tracked"):
      state[name] = np.array(7, np.int64)
    elif name.endswith("running_var"):
      state[name] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
    else:
      state[name] = rng.normal(size=shape).astype(np.float32)
  return state


def flax_path(name: str) -> tuple[str, ...]:
  """Expected Flax variable path of a torchvision tensor name (written out independently)."""
  *modules, leaf = name.replace("downsample.0", "downsample_conv").replace("downsample.1", "downsample_bn").split(".")
  merged = []
  for module in modules:
    if module.isdigit():
      merged[-1] = f"{merged[-1]}_{module}"
    else:
      merged.append(module)
  is_bn = merged[-1].startswith("bn") or merged[-1] == "downsample_bn"
  collection, flax_leaf = {
      "weight": ("params", "scale" if is_bn else "kernel"),
      "bias": ("params", "bias"),
      "running_mean": ("batch_stats", "mean"),
      "running_var": ("batch_stats", "var"),
  }[leaf]
  return (collection, *merged, flax_leaf)


def abstract_variables(arch: str, num_classes: int = 1000, channels: int = 3, size: int = 64):
  """Variable shapes of a ResNet (``jax.eval_shape``: no real init)."""
  model = MODELS[arch](num_classes=num_classes, stem="imagenet" if size > 32 else "cifar")
  return model, jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, channels)))


@pytest.fixture(scope="module")
def resnet50_file(tmp_path_factory):
  """A synthetic torchvision resnet50 .safetensors file and its tensors."""
  state = synthetic_state("resnet50")
  path = tmp_path_factory.mktemp("weights") / "resnet50.safetensors"
  save_file(state, str(path))
  return path, state


def test_synthetic_state_dict_matches_torchvision():
  shapes = torchvision_shapes("resnet50")
  known = {
      "conv1.weight": (64, 3, 7, 7),
      "layer1.0.downsample.0.weight": (256, 64, 1, 1),
      "layer1.0.downsample.1.running_var": (256,),
      "layer2.0.conv2.weight": (128, 128, 3, 3),
      "layer3.5.conv2.weight": (256, 256, 3, 3),
      "layer4.0.downsample.0.weight": (2048, 1024, 1, 1),
      "layer4.2.conv3.weight": (2048, 512, 1, 1),
      "fc.weight": (1000, 2048),
      "fc.bias": (1000,),
  }
  assert {name: shapes[name] for name in known} == known
  assert "layer1.1.downsample.0.weight" not in shapes
  assert len(shapes) == 320
  assert len([n for n in shapes if not n.endswith("num_batches_tracked")]) == 267
  assert sum(np.prod(s) for n, s in shapes.items() if "running" not in n and "num_batches" not in n) == 25_557_032
  shapes18 = torchvision_shapes("resnet18")
  assert shapes18["layer1.0.conv1.weight"] == (64, 64, 3, 3) and "layer1.0.downsample.0.weight" not in shapes18
  assert shapes18["layer2.0.downsample.0.weight"] == (128, 64, 1, 1)
  assert len(shapes18) == 122
  assert sum(np.prod(s) for n, s in shapes18.items() if "running" not in n and "num_batches" not in n) == 11_689_512


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_every_tensor_lands_in_place(arch, tmp_path):
  state = synthetic_state(arch, seed=1)
  path = tmp_path / f"{arch}.safetensors"
  save_file(state, str(path))
  _, variables = abstract_variables(arch)
  loaded = traverse_util.flatten_dict(pretrained.load_torchvision_resnet(path, variables, arch=arch, load_head=True))
  targets = {name: flax_path(name) for name in state if not name.endswith("num_batches_tracked")}
  assert sorted(targets.values()) == sorted(loaded)  # every Flax leaf gets exactly one tensor
  for name, key in targets.items():
    value = state[name]
    expected = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value.T if value.ndim == 2 else value
    assert loaded[key].dtype == jnp.float32
    np.testing.assert_array_equal(np.asarray(loaded[key]), expected, err_msg=name)


def test_head_kept_and_input_untouched(resnet50_file):
  path, state = resnet50_file
  _, variables = abstract_variables("resnet50", num_classes=5)
  loaded = pretrained.load_torchvision_resnet(path, variables)
  assert loaded["params"]["fc"]["kernel"] is variables["params"]["fc"]["kernel"]  # own new head kept
  np.testing.assert_array_equal(loaded["batch_stats"]["bn1"]["var"], state["bn1.running_var"])
  assert isinstance(variables["params"]["conv1"]["kernel"], jax.ShapeDtypeStruct)  # input not modified


def test_stem_matches_numpy_conv_bn_relu(resnet50_file):
  """Converted conv1 + bn1 (+ ReLU), eval mode, against the same computation in NCHW numpy."""
  path, state = resnet50_file
  model, variables = abstract_variables("resnet50")
  variables = pretrained.load_torchvision_resnet(path, variables, load_head=True)
  images = np.random.default_rng(2).normal(size=(2, 36, 36, 3)).astype(np.float32)

  def stem(v, x):
    _, state = model.apply(v, x, capture_intermediates=lambda m, _: m.scope.path == ("bn1",))
    return state["intermediates"]["bn1"]["__call__"][0]

  got = np.maximum(np.asarray(jax.jit(stem)(variables, images)), 0.0)
  x = np.pad(images.transpose(0, 3, 1, 2), ((0, 0), (0, 0), (3, 3), (3, 3)))  # NCHW, torch padding=3
  w = state["conv1.weight"]
  size = (36 + 6 - 7) // 2 + 1
  conv = np.zeros((2, 64, size, size), np.float64)
  for i in range(7):
    for j in range(7):
      conv += np.einsum("nchw,oc->nohw", x[:, :, i:i + 2 * size:2, j:j + 2 * size:2], w[:, :, i, j])
  c = lambda name: state[f"bn1.{name}"][None, :, None, None]
  expected = np.maximum((conv - c("running_mean")) / np.sqrt(c("running_var") + 1e-5) * c("weight") + c("bias"), 0)
  np.testing.assert_allclose(got, expected.transpose(0, 2, 3, 1), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("channels", [1, 4])
def test_first_conv_adapts_to_channels(resnet50_file, channels):
  path, state = resnet50_file
  _, variables = abstract_variables("resnet50", channels=channels)
  kernel = np.asarray(pretrained.load_torchvision_resnet(path, variables)["params"]["conv1"]["kernel"])
  rgb = state["conv1.weight"].transpose(2, 3, 1, 0)
  if channels == 1:
    np.testing.assert_allclose(kernel, rgb.sum(axis=2, keepdims=True), rtol=1e-6)
  else:
    np.testing.assert_allclose(kernel, np.concatenate([rgb, rgb[:, :, :1]], axis=2) * 3 / 4, rtol=1e-6)


@pytest.mark.parametrize("name", ["resnet50_qcnn", "quanv_resnet50"])
def test_hybrid_backbone_is_found(resnet50_file, name):
  path, state = resnet50_file
  options = {"n_qubits": 4} if name == "resnet50_qcnn" else {"quanv_trainable": True}
  model = get_model(name, 2, stem="imagenet", **options)
  variables = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3)))
  loaded = pretrained.load_torchvision_resnet(path, variables)
  np.testing.assert_array_equal(loaded["params"]["backbone"]["layer4_2"]["bn3"]["bias"], state["layer4.2.bn3.bias"])
  flat, flat_loaded = traverse_util.flatten_dict(variables), traverse_util.flatten_dict(loaded)
  others = [key for key in flat if key[1] != "backbone"]  # quantum / dressing params kept as they were
  assert others and all(flat_loaded[key] is flat[key] for key in others)


def _write(tmp_path, state):
  path = tmp_path / "weights.safetensors"
  save_file(state, str(path))
  return path


def test_errors_name_missing_unexpected_and_mismatched(resnet50_file, tmp_path):
  _, state = resnet50_file
  _, variables = abstract_variables("resnet50")
  broken = {n: v for n, v in state.items() if n != "layer3.5.conv2.weight"}
  broken["layer3.6.conv1.weight"] = state["layer3.5.conv1.weight"]
  broken["layer2.1.bn1.running_mean"] = np.zeros(64, np.float32)
  with pytest.raises(ValueError) as error:
    pretrained.load_torchvision_resnet(_write(tmp_path, broken), variables)
  message = str(error.value)
  assert "missing tensors: layer3.5.conv2.weight" in message
  assert "unexpected tensors (another architecture?): layer3.6.conv1.weight" in message
  assert "layer2.1.bn1.running_mean: expected (128,)" in message and "found (64,)" in message


def test_errors_on_cifar_stem_and_head_size(resnet50_file):
  path, _ = resnet50_file
  _, cifar = abstract_variables("resnet50", size=28)
  with pytest.raises(ValueError, match="need stem='imagenet'"):
    pretrained.load_torchvision_resnet(path, cifar)
  _, five_classes = abstract_variables("resnet50", num_classes=5)
  with pytest.raises(ValueError, match=r"fc.weight: expected \(2048, 5\)"):
    pretrained.load_torchvision_resnet(path, five_classes, load_head=True)


def test_errors_on_wrong_arch(resnet50_file):
  path, _ = resnet50_file
  _, resnet18 = abstract_variables("resnet18")
  with pytest.raises(ValueError, match=r"arch='resnet50' expects blocks \(3, 4, 6, 3\) with 3 convs each, "
                                       r"but the model has blocks \(2, 2, 2, 2\) with 2 convs"):
    pretrained.load_torchvision_resnet(path, resnet18)
  with pytest.raises(ValueError, match="unexpected tensors"):  # a resnet50 file is not a resnet18 one
    pretrained.load_torchvision_resnet(path, resnet18, arch="resnet18")
  with pytest.raises(ValueError, match="valid archs: resnet18, resnet50"):
    pretrained.load_torchvision_resnet(path, resnet18, arch="resnet34")
