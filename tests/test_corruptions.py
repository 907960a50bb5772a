"""MedMNIST-C corruptions through the medmnistc registry, without torch (qcnn_jax.data.corruptions)."""

import sys

import numpy as np
import pytest
from scipy import ndimage

from qcnn_jax.data import corruptions

pytest.importorskip("medmnistc")


@pytest.fixture
def images():
  """Smooth 28-px grey images (N, 28, 28, 1) uint8, like ultrasound crops rather than pixel noise."""
  rng = np.random.default_rng(0)
  smooth = ndimage.gaussian_filter(rng.uniform(0, 1, (6, 28, 28)), sigma=(0, 2, 2))
  smooth = (smooth - smooth.min()) / np.ptp(smooth)
  return np.round(40 + 180 * smooth).astype(np.uint8)[..., None]


def test_breastmnist_registry_loads_without_torch():
  names = list(dict.fromkeys(c.name for c in corruptions.corruptions_for("breastmnist")))
  assert names == ["pixelate", "jpeg_compression", "speckle_noise", "motion_blur", "brightness_up",
                   "brightness_down", "contrast_down"]
  assert len(corruptions.corruptions_for("breastmnist", (1, 5))) == 14
  with pytest.raises(ValueError, match="no corruptions for 'medical_mnist'"):
    corruptions.corruptions_for("medical_mnist")
  with pytest.raises(ValueError, match="severities"):
    corruptions.corruptions_for("breastmnist", (0,))


def test_corruptions_are_seeded_graded_and_leave_numpy_alone(images):
  state = np.random.get_state()[1].copy()
  noisy = corruptions.Corruption("breastmnist", "speckle_noise", 5)
  first, again = corruptions.corrupt(images, noisy, seed=0), corruptions.corrupt(images, noisy, seed=0)
  other = corruptions.corrupt(images, noisy, seed=1)
  assert first.shape == images.shape and first.dtype == np.uint8
  assert np.array_equal(first, again) and not np.array_equal(first, other)
  assert np.array_equal(np.random.get_state()[1], state)  # the global generator is restored
  change = [np.abs(corruptions.corrupt(images, corruptions.Corruption("breastmnist", "contrast_down", s), size=None)
                   .astype(int) - images).mean() for s in corruptions.SEVERITIES]
  assert all(a < b for a, b in zip(change, change[1:]))  # severities 1..5 fade the images more and more
  assert np.array_equal(corruptions.corrupt(images, None, size=None), images)  # no corruption, no resizing
  round_trip = np.abs(corruptions.corrupt(images, None).astype(int) - images).mean()
  assert 0 < round_trip < change[0]  # 28 -> 224 -> 28 alters a little; the mildest fade more


@pytest.fixture
def fresh_medmnistc():
  """medmnistc is imported anew inside the test and forgotten after it."""
  forget = lambda: [sys.modules.pop(m) for m in [m for m in sys.modules if m.startswith("medmnistc")]]
  forget()
  yield
  forget()


def test_missing_backends_are_stood_in_and_named(monkeypatch, fresh_medmnistc):
  monkeypatch.setattr(corruptions, "missing_backends", lambda: ["torchvision", "wand"])
  before = {m: sys.modules.get(m) for m in ("torchvision", "wand", "wand.image")}
  blur = corruptions.Corruption("pneumoniamnist", "gaussian_blur", 1)
  assert "pip install torchvision" in corruptions.available(blur)
  assert "libmagickwand" in corruptions.available(corruptions.Corruption("breastmnist", "motion_blur", 1))
  assert corruptions.available(corruptions.Corruption("breastmnist", "pixelate", 1)) is None
  assert {m: sys.modules.get(m) for m in before} == before  # the stand-ins are gone after the import


def test_absent_medmnistc_names_the_install(monkeypatch, fresh_medmnistc):
  monkeypatch.setitem(sys.modules, "medmnistc", None)  # import medmnistc raises ImportError
  with pytest.raises(corruptions.CorruptionsUnavailable, match="pip install --no-deps medmnistc"):
    corruptions.load_registry()
