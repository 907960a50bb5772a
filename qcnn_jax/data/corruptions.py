"""MedMNIST-C image corruptions (Di Salvo et al. 2024) of a split's stored images.

The corruptions and their five severity levels per dataset are the `medmnistc` package's own
registry (`medmnistc.corruptions.registry.CORRUPTIONS_DS`), installed without its dependencies:

  pip install --no-deps medmnistc==0.1.0 && pip install scikit-image opencv-python-headless wand

`medmnistc` imports torchvision and Wand (ImageMagick) when the registry is loaded, but only three
corruptions use them: `gaussian_blur` and `gamma_corr_up/down` (torchvision) and `motion_blur`
(ImageMagick). Where one is missing, the registry still loads (the missing module is stood in for
while importing) and those corruptions are reported as unavailable, with the install command.

MedMNIST-C's severities are set for 224-px images. A split stored at a smaller size (e.g. 28 px) is
upsampled to `size` (bicubic), corrupted, and downsampled back (area average, PIL's BOX), so each
severity means what the registry intends; the "resampled" reference (the same round trip without
a corruption) separates the round trip's own effect. Every (corruption, severity, seed) draws its
random numbers from its own seeded generators, so a corrupted split is reproducible.
"""

import contextlib
import dataclasses
import importlib
import sys
import types
import zlib

import numpy as np
from PIL import Image

DESIGN_SIZE = 224
SEVERITIES = (1, 2, 3, 4, 5)
INSTALL = "pip install --no-deps medmnistc==0.1.0 && pip install scikit-image opencv-python-headless"
# Optional backends medmnistc imports eagerly: the module names, and how to get each.
BACKENDS = {
    "torchvision": (("torchvision", "torchvision.transforms", "torchvision.transforms.functional"),
                    "pip install torchvision (brings torch; never a dependency of qcnn-jax)"),
    "wand": (("wand", "wand.image", "wand.api"),
             "apt-get install libmagickwand-dev (ImageMagick) && pip install wand"),
}


class CorruptionsUnavailable(ImportError):
  """medmnistc, or a library a corruption needs, is not installed (the message says how to)."""


class _AbsentMeta(type):
  """Metaclass of a missing backend's stand-in: using it (calling, reading an attribute) raises."""

  def __getattr__(cls, name):
    raise CorruptionsUnavailable(f"needs {cls.backend}: {BACKENDS[cls.backend][1]}")

  def __call__(cls, *args, **kwargs):
    raise CorruptionsUnavailable(f"needs {cls.backend}: {BACKENDS[cls.backend][1]}")


def _stand_in_module(name: str, backend: str) -> types.ModuleType:
  module = types.ModuleType(name)
  absent = _AbsentMeta(f"Absent_{backend}", (), {"backend": backend})
  module.__getattr__ = lambda attr: absent
  return module


def _importable(name: str) -> bool:
  try:
    importlib.import_module(name)
    return True
  except Exception:  # ImportError, or Wand's own error when ImageMagick's library is missing
    return False


@contextlib.contextmanager
def _stand_ins(missing: list[str]):
  """Stand-in modules for the `missing` backends while medmnistc imports, removed afterwards."""
  modules = {n: _stand_in_module(n, b) for b in missing for n in BACKENDS[b][0]}
  for name, module in modules.items():  # `import a.b.c` binds through the parents' attributes
    parent, _, child = name.rpartition(".")
    if parent in modules:
      setattr(modules[parent], child, module)
  saved = {n: sys.modules.get(n) for n in modules}
  sys.modules.update(modules)
  try:
    yield
  finally:
    for n, module in saved.items():
      if module is None:
        sys.modules.pop(n, None)
      else:
        sys.modules[n] = module


def missing_backends() -> list[str]:
  """The optional backends (BACKENDS keys) that cannot be imported here."""
  return [b for b, (modules, _) in BACKENDS.items() if not _importable(modules[-1])]


class _NumpyWithFromstring(types.ModuleType):
  """NumPy, with `fromstring(bytes, dtype)` read as `frombuffer`: medmnistc 0.1.0's motion_blur
  decodes ImageMagick's PNG with the binary `np.fromstring`, which NumPy 2.3 removed."""

  def __init__(self):
    super().__init__("numpy")

  def __getattr__(self, name):
    return getattr(np, name)

  @staticmethod
  def fromstring(data, dtype=float):
    return np.frombuffer(data, dtype)


def load_registry() -> dict:
  """medmnistc's {dataset: {corruption name: corruptor}}; raises CorruptionsUnavailable if absent."""
  try:
    with _stand_ins(missing_backends()):
      registry = importlib.import_module("medmnistc.corruptions.registry")
  except ImportError as e:
    raise CorruptionsUnavailable(f"MedMNIST-C corruptions need medmnistc ({e}): {INSTALL}") from e
  sys.modules["medmnistc.corruptions.filter"].np = _NumpyWithFromstring()
  return registry.CORRUPTIONS_DS


@dataclasses.dataclass(frozen=True)
class Corruption:
  """One registry corruption of a dataset at `severity` (1-5)."""

  dataset: str
  name: str
  severity: int

  @property
  def label(self) -> str:
    return f"{self.name}/{self.severity}"


def corruptions_for(dataset: str, severities=SEVERITIES) -> list[Corruption]:
  """Every corruption of `dataset` in the registry at each severity, in the registry's order."""
  registry = load_registry()
  if dataset not in registry:
    raise ValueError(f"MedMNIST-C has no corruptions for {dataset!r}; it covers {sorted(registry)}")
  bad = [s for s in severities if s not in SEVERITIES]
  if bad:
    raise ValueError(f"severities must be in {SEVERITIES}, got {bad}")
  return [Corruption(dataset, name, s) for name in registry[dataset] for s in severities]


def _seed(corruption: Corruption, seed: int) -> int:
  return zlib.crc32(f"{corruption.dataset}/{corruption.label}/{seed}".encode())


@contextlib.contextmanager
def _numpy_global_seed(seed: int):
  """medmnistc draws from NumPy's global generator: seed it, and restore its state afterwards."""
  state = np.random.get_state()
  np.random.seed(seed)
  try:
    yield
  finally:
    np.random.set_state(state)


def _corrupt_one(image: np.ndarray, corruptor, severity_index: int, size: int | None) -> np.ndarray:
  height, width, channels = image.shape
  pil = Image.fromarray(image[..., 0] if channels == 1 else image).convert("RGB")
  if size and (height, width) != (size, size):
    pil = pil.resize((size, size), Image.BICUBIC)
  out = Image.fromarray(np.asarray(corruptor.apply(pil, severity_index), np.uint8))
  out = out.convert("L" if channels == 1 else "RGB")
  if out.size != (width, height):
    out = out.resize((width, height), Image.BOX)
  return np.asarray(out, np.uint8).reshape(image.shape)


def corrupt(images: np.ndarray, corruption: Corruption | None, *, seed: int = 0,
            size: int | None = DESIGN_SIZE) -> np.ndarray:
  """`images` (N, H, W, C) uint8, C in {1, 3}, under `corruption` (None: the resampling round trip
  only), processed at `size` px (None: at their own size); returns (N, H, W, C) uint8."""
  if corruption is None:
    corruptor, severity_index, seed_value = None, 0, seed
  else:
    corruptor = load_registry()[corruption.dataset][corruption.name]
    severity_index, seed_value = corruption.severity - 1, _seed(corruption, seed)
  if corruptor is None:
    corruptor = types.SimpleNamespace(apply=lambda pil, _: np.asarray(pil))
  corruptor.rng = np.random.default_rng(seed_value)  # impulse noise draws from `rng` (skimage)
  with _numpy_global_seed(seed_value):
    return np.stack([_corrupt_one(im, corruptor, severity_index, size) for im in images])


def available(corruption: Corruption) -> str | None:
  """None if `corruption` runs here, else why not (and how to install what it needs)."""
  try:
    corrupt(np.zeros((1, 8, 8, 1), np.uint8), corruption, size=DESIGN_SIZE)
  except CorruptionsUnavailable as e:
    return str(e)
  return None
