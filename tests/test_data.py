"""Data layer: TFDS builders on synthetic and real files, sources (MD5, offline), splits, pipeline."""

import hashlib
import pathlib
import re
import shutil
import tracemalloc

import numpy as np
import pytest
from PIL import Image

from qcnn_jax import data
from qcnn_jax.data import medical_mnist, medmnist, pipeline, sources

EMBEDDED_BREAST = sources.EMBEDDED_DIR / "breastmnist.npz"


@pytest.fixture(autouse=True)
def isolated_roots(tmp_path, monkeypatch):
  """Keeps ~/.medmnist and ~/.medical_mnist of the machine out of every test."""
  monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "medmnist_root"))
  monkeypatch.setenv("MEDICAL_MNIST_ROOT", str(tmp_path / "medical_mnist_root"))


def write_synthetic_medmnist(folder: pathlib.Path, flag: str, size: int, monkeypatch,
                             sizes=(12, 4, 6)) -> dict[str, tuple[np.ndarray, np.ndarray]]:
  """Writes a small random `.npz` in MedMNIST's layout and registers its MD5 and split sizes."""
  info = sources.INFO[flag]
  rng = np.random.default_rng(len(flag) + size)
  n_labels = len(info["label"])
  arrays, splits = {}, {}
  for split, n in zip(("train", "val", "test"), sizes):
    shape = (n, size, size) + ((3,) if info["n_channels"] == 3 else ())
    images = rng.integers(0, 256, shape, dtype=np.uint8)
    if info["task"].startswith("multi-label"):
      labels = rng.integers(0, 2, (n, n_labels), dtype=np.uint8)
    else:
      labels = rng.integers(0, n_labels, (n, 1), dtype=np.uint8)
    arrays[f"{split}_images"], arrays[f"{split}_labels"] = images, labels
    splits[split] = (images, labels)
  source = sources.medmnist_file(flag, size)
  folder.mkdir(parents=True, exist_ok=True)
  np.savez(folder / source.filename, **arrays)
  suffix = "" if size == 28 else f"_{size}"
  patched = dict(info, n_samples=dict(zip(("train", "val", "test"), sizes)))
  patched[f"MD5{suffix}"] = sources.md5sum(folder / source.filename)
  monkeypatch.setitem(sources.INFO, flag, patched)
  return splits


@pytest.mark.parametrize("flag,size,task,num_outputs", [
    ("breastmnist", 28, "binary-class", 1),
    ("dermamnist", 28, "multi-class", 7),
    ("retinamnist", 64, "ordinal-regression", 5),
    ("chestmnist", 28, "multi-label, binary-class", 14),
    ("pneumoniamnist", 128, "binary-class", 1),
    ("pathmnist", 224, "multi-class", 9),
])
def test_medmnist_builder_on_synthetic_files(tmp_path, monkeypatch, flag, size, task, num_outputs):
  expected = write_synthetic_medmnist(tmp_path / "src", flag, size, monkeypatch)
  ds = data.load_dataset(flag, size=size, data_dir=str(tmp_path / "src"), tfds_dir=str(tmp_path / "tfds"),
                         allow_download=False)
  channels = sources.INFO[flag]["n_channels"]
  assert ds.task == task and ds.num_outputs == num_outputs
  assert ds.image_shape == (size, size, channels)
  assert ds.sizes == {"train": 12, "val": 4, "test": 6}
  assert len(ds.label_names) == len(sources.INFO[flag]["label"])
  for split, (images, labels) in expected.items():
    source = ds.splits[split]
    records = [source[i] for i in range(len(source))]
    assert sorted(int(r["index"]) for r in records) == list(range(len(images)))
    for r in records:
      assert r["image"].dtype == np.uint8 and r["image"].shape == (size, size, channels)
      assert r["label"].dtype == np.int64 and r["label"].shape == (labels.shape[1],)
      np.testing.assert_array_equal(r["image"].reshape(images.shape[1:]), images[r["index"]])
      np.testing.assert_array_equal(r["label"], labels[r["index"]])


@pytest.mark.parametrize("compressed", [False, True])
def test_medmnist_split_streams_from_the_archive_in_blocks(tmp_path, monkeypatch, compressed):
  """The builder reads a split in blocks of rows: memory O(block), not O(split) (224 px PathMNIST:
  before, all three splits' arrays, 16.3 GB, were loaded before the first record was written)."""
  expected = write_synthetic_medmnist(tmp_path, "pathmnist", 224, monkeypatch, sizes=(120, 4, 4))
  path = tmp_path / "pathmnist_224.npz"
  if compressed:  # the official files are written by np.savez_compressed
    np.savez_compressed(path, **dict(np.load(path)))
  images, labels = expected["train"]
  assert medmnist.npz_split_shape(path, "train") == images.shape
  tracemalloc.start()
  blocks = []
  for block_images, block_labels in medmnist.iter_npz_split(path, "train", chunk=4):
    blocks.append((block_images.sum(dtype=np.int64), block_images.shape, block_labels.copy()))
  peak = tracemalloc.get_traced_memory()[1]
  tracemalloc.stop()
  assert peak < 0.25 * images.nbytes, (peak, images.nbytes)
  assert [shape for _, shape, _ in blocks] == [(4, 224, 224, 3)] * 30
  assert [int(total) for total, _, _ in blocks] == [int(images[i:i + 4].sum(dtype=np.int64)) for i in range(0, 120, 4)]
  np.testing.assert_array_equal(np.concatenate([b[2] for b in blocks]), labels)


def test_every_medmnist_2d_config_is_registered():
  from qcnn_jax.data import medmnist
  names = {c.name for c in medmnist.MedmnistV2.BUILDER_CONFIGS}
  assert len(names) == 12 * 4
  for flag in medmnist.DATASETS_2D:
    for size in (28, 64, 128, 224):
      assert f"{flag}_{size}" in names
      source = sources.medmnist_file(flag, size)
      assert source.url.startswith("https://zenodo.org/") and len(source.md5) == 32


def test_embedded_breastmnist_is_the_official_file():
  assert sources.md5sum(EMBEDDED_BREAST) == sources.INFO["breastmnist"]["MD5"]
  path = sources.locate_medmnist("breastmnist", 28, allow_download=False)
  assert path == EMBEDDED_BREAST


@pytest.mark.parametrize("damage", ["truncate", "flip_byte"])
def test_corrupted_copy_is_rejected_with_md5_error(tmp_path, damage):
  bad = tmp_path / "breastmnist.npz"
  payload = bytearray(EMBEDDED_BREAST.read_bytes())
  if damage == "truncate":
    payload = payload[: len(payload) // 2]
  else:
    payload[1000] ^= 0xFF
  bad.write_bytes(bytes(payload))
  with pytest.raises(sources.ChecksumError, match=r"MD5 .* official breastmnist.npz .*zenodo"):
    data.load_dataset("breastmnist", data_dir=str(tmp_path), tfds_dir=str(tmp_path / "tfds"))
  assert not (tmp_path / "tfds" / "medmnist_v2" / "breastmnist_28" / "1.0.0").exists()


def test_offline_error_names_file_url_and_folders(tmp_path, monkeypatch):
  patched = dict(sources.INFO["pneumoniamnist"], url="http://127.0.0.1:9/pneumoniamnist.npz")
  monkeypatch.setitem(sources.INFO, "pneumoniamnist", patched)
  with pytest.raises(sources.DatasetNotFoundError) as err:
    sources.locate_medmnist("pneumoniamnist", 28, data_dir=tmp_path / "mine")
  message = str(err.value)
  assert "pneumoniamnist.npz" in message and "http://127.0.0.1:9/pneumoniamnist.npz" in message
  assert str(tmp_path / "mine") in message and "medmnist_root" in message
  assert not list((tmp_path / "mine").glob("*")), "no partial file may be left behind"


def test_download_is_verified_then_renamed(tmp_path, monkeypatch):
  patched = dict(sources.INFO["breastmnist"], url=EMBEDDED_BREAST.as_uri())
  monkeypatch.setitem(sources.INFO, "breastmnist", patched)
  monkeypatch.setattr(sources, "EMBEDDED_DIR", tmp_path / "no_embedded")
  path = sources.locate_medmnist("breastmnist", 28, data_dir=tmp_path / "dl")
  assert path == tmp_path / "dl" / "breastmnist.npz"
  assert sources.md5sum(path) == patched["MD5"]
  assert [p.name for p in (tmp_path / "dl").iterdir()] == ["breastmnist.npz"]


def test_download_with_wrong_md5_is_discarded(tmp_path, monkeypatch):
  patched = dict(sources.INFO["breastmnist"], url=EMBEDDED_BREAST.as_uri(), MD5="0" * 32)
  monkeypatch.setitem(sources.INFO, "breastmnist", patched)
  monkeypatch.setattr(sources, "EMBEDDED_DIR", tmp_path / "no_embedded")
  with pytest.raises(sources.ChecksumError, match="discarded"):
    sources.locate_medmnist("breastmnist", 28, data_dir=tmp_path / "dl")
  assert not (tmp_path / "dl").exists()  # neither the file nor the folder the attempt made is left


def test_missing_file_without_download(tmp_path):
  with pytest.raises(sources.DatasetNotFoundError, match=r"retinamnist_128\.npz.*downloading is disabled"):
    sources.locate_medmnist("retinamnist", 128, data_dir=tmp_path, allow_download=False)


def test_unknown_dataset_and_size_errors():
  with pytest.raises(ValueError, match="Unknown dataset 'cifar10'"):
    data.load_dataset("cifar10")
  with pytest.raises(ValueError, match="Unknown MedMNIST size 32"):
    data.load_dataset("breastmnist", size=32)
  with pytest.raises(ValueError, match="Medical MNIST images are 64 px"):
    data.load_dataset("medical_mnist", size=28)
  with pytest.raises(ValueError, match="Unknown Medical MNIST split"):
    medical_mnist.make_config("70_30")


# --- Medical MNIST -------------------------------------------------------------------------

OFFICIAL_CLASS_COUNTS = (10000, 8954, 10000, 10000, 10000, 10000)


def official_labels() -> np.ndarray:
  return np.repeat(np.arange(6), OFFICIAL_CLASS_COUNTS)


def test_stratified_split_is_deterministic_and_stratified():
  labels = official_labels()
  split = medical_mnist.stratified_split(labels, medical_mnist.SPLIT_SCHEMES["80_10_10"], seed=0)
  again = medical_mnist.stratified_split(labels, medical_mnist.SPLIT_SCHEMES["80_10_10"], seed=0)
  other = medical_mnist.stratified_split(labels, medical_mnist.SPLIT_SCHEMES["80_10_10"], seed=1)
  for name in split:
    np.testing.assert_array_equal(split[name], again[name])
  assert not np.array_equal(split["test"], other["test"])
  everything = np.concatenate(list(split.values()))
  assert len(everything) == len(labels) == len(np.unique(everything))
  whole = np.bincount(labels) / len(labels)
  for name, frac in medical_mnist.SPLIT_SCHEMES["80_10_10"].items():
    share = np.bincount(labels[split[name]], minlength=6) / len(split[name])
    assert np.abs(share - whole).max() < 0.01, name
    assert abs(len(split[name]) / len(labels) - frac) < 0.001
  # Pinned digest: the split must be the same on every machine and numpy version.
  digest = hashlib.sha256(split["test"].tobytes()).hexdigest()[:16]
  assert digest == PINNED_TEST_SPLIT_DIGEST


PINNED_TEST_SPLIT_DIGEST = "bd8b3a97697c602d"


@pytest.fixture
def ten_per_class(monkeypatch):
  """Synthetic Medical MNIST sets hold 10 images per class: that is their full set."""
  monkeypatch.setattr(medical_mnist, "CLASS_COUNTS", (10,) * 6)


def write_jpeg_tree(root: pathlib.Path, per_class: int = 10) -> tuple[np.ndarray, np.ndarray]:
  """Class-per-folder JPEG tree like the Kaggle download; returns the decoded pixels."""
  rng = np.random.default_rng(0)
  for name in medical_mnist.CLASS_NAMES:
    (root / name).mkdir(parents=True)
    for i in range(per_class):
      Image.fromarray(rng.integers(0, 256, (64, 64), dtype=np.uint8), "L").save(root / name / f"{i:06d}.jpeg")
  return medical_mnist.read_jpeg_tree(root)


def test_medical_mnist_reads_jpeg_tree_and_npz_alike(tmp_path, ten_per_class):
  images, labels = write_jpeg_tree(tmp_path / "tree" / "resized")
  assert images.shape == (60, 64, 64) and images.dtype == np.uint8
  np.testing.assert_array_equal(labels, np.repeat(np.arange(6), 10))
  np.savez(tmp_path / "packed.npz", images=images, labels=labels.astype(np.uint8),
           class_names=np.array(medical_mnist.CLASS_NAMES))
  from_tree = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"),
                                tfds_dir=str(tmp_path / "tfds_tree"))
  from_npz = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "packed.npz"),
                               tfds_dir=str(tmp_path / "tfds_npz"))
  assert from_tree.sizes == from_npz.sizes == {"train": 48, "val": 6, "test": 6}
  assert from_tree.num_outputs == 6 and from_tree.task == "multi-class"
  for split in from_tree.splits:
    a = sorted((int(r["index"]), r["image"].tobytes(), int(r["label"][0])) for r in from_tree.splits[split])
    b = sorted((int(r["index"]), r["image"].tobytes(), int(r["label"][0])) for r in from_npz.splits[split])
    assert a == b
    for index, pixels, label in a:
      assert pixels == images[index].tobytes() and label == labels[index]


def test_medical_mnist_paper_split_has_no_val(tmp_path, ten_per_class):
  write_jpeg_tree(tmp_path / "tree")
  ds = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"),
                         tfds_dir=str(tmp_path / "tfds"), split_scheme="80_20", split_seed=3)
  assert ds.sizes == {"train": 48, "test": 12}


def test_medical_mnist_missing_and_corrupt(tmp_path):
  with pytest.raises(sources.DatasetNotFoundError, match="kaggle"):
    medical_mnist.load_arrays(tmp_path / "nothing")
  (tmp_path / "medical_mnist_64.npz").write_bytes(b"PK\x03\x04 truncated")
  with pytest.raises(sources.ChecksumError, match="truncated or corrupt"):
    medical_mnist.load_arrays(tmp_path)


def test_medical_mnist_partial_source_is_refused(tmp_path, ten_per_class):
  write_jpeg_tree(tmp_path / "tree")
  (tmp_path / "tree" / "Hand" / "000003.jpeg").unlink()  # a half-extracted archive
  with pytest.raises(sources.ChecksumError, match=r"not the full Medical MNIST set .*Hand 9/10"):
    data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"), tfds_dir=str(tmp_path / "tfds"))
  assert not (tmp_path / "tfds").exists()  # nothing prepared, nothing cached


def test_medical_mnist_changed_source_is_prepared_again(tmp_path, ten_per_class):
  images, labels = write_jpeg_tree(tmp_path / "tree")
  first = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"), tfds_dir=str(tmp_path / "tfds"))
  record = first.splits["train"][0]
  path = tmp_path / "tree" / medical_mnist.CLASS_NAMES[int(record["label"][0])] / f"{int(record['index']) % 10:06d}.jpeg"
  Image.fromarray(np.zeros((64, 64), np.uint8), "L").save(path)  # same counts, other pixels
  again = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"), tfds_dir=str(tmp_path / "tfds"))
  assert again.splits["train"][0]["image"].max() == 0 and record["image"].max() > 0
  reused = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"), tfds_dir=str(tmp_path / "tfds"))
  assert reused.splits["train"][0]["image"].max() == 0


def test_medical_mnist_truncated_jpeg_names_its_path(tmp_path, ten_per_class):
  write_jpeg_tree(tmp_path / "tree")
  path = tmp_path / "tree" / "CXR" / "000004.jpeg"
  path.write_bytes(path.read_bytes()[:200])
  with pytest.raises(sources.ChecksumError, match=r"CXR/000004.jpeg cannot be decoded .*truncated or corrupt"):
    data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"), tfds_dir=str(tmp_path / "tfds"))


# --- Real files in ../shared/data (skipped when absent) -------------------------------------

@pytest.mark.parametrize("flag,sizes", [
    ("breastmnist", {"train": 546, "val": 78, "test": 156}),
    ("pneumoniamnist", {"train": 4708, "val": 524, "test": 624}),
    ("retinamnist", {"train": 1080, "val": 120, "test": 400}),
])
def test_official_split_sizes(shared_data, tmp_path, flag, sizes):
  if not (shared_data / "medmnist" / f"{flag}.npz").is_file():
    pytest.skip(f"{flag}.npz absent")
  ds = data.load_dataset(flag, data_dir=str(shared_data / "medmnist"), tfds_dir=str(tmp_path),
                         allow_download=False)
  assert ds.sizes == sizes
  assert ds.image_shape == (28, 28, sources.INFO[flag]["n_channels"])


def test_real_medical_mnist_counts_and_split(shared_data):
  path = shared_data / "medical_mnist" / "medical_mnist_64.npz"
  if not path.is_file():
    pytest.skip("medical_mnist_64.npz absent")
  images, labels = medical_mnist.load_arrays(path)
  assert images.shape == (58_954, 64, 64)
  assert tuple(np.bincount(labels)) == OFFICIAL_CLASS_COUNTS == medical_mnist.CLASS_COUNTS
  assert medical_mnist.source_summary(path)["counts"] == list(OFFICIAL_CLASS_COUNTS)
  split = medical_mnist.stratified_split(labels, medical_mnist.SPLIT_SCHEMES["80_10_10"], 0)
  assert hashlib.sha256(split["test"].tobytes()).hexdigest()[:16] == PINNED_TEST_SPLIT_DIGEST


# --- Pipeline -----------------------------------------------------------------------------

def fake_source(n: int = 37, size: int = 28, channels: int = 1) -> list[dict]:
  rng = np.random.default_rng(1)
  return [{"image": rng.integers(0, 256, (size, size, channels), dtype=np.uint8),
           "label": np.array([i % 2]), "index": np.int64(i)} for i in range(n)]


def test_train_batches_shuffle_per_epoch_deterministically():
  source, prep = fake_source(), pipeline.Preprocess()
  order = lambda seed, epoch: np.concatenate(
      [b["index"] for b in pipeline.train_batches(source, batch_size=8, seed=seed, epoch=epoch, prep=prep)])
  e0, e0_again, e1 = order(0, 0), order(0, 0), order(0, 1)
  assert len(e0) == 32 and len(np.unique(e0)) == 32  # 37 // 8 full batches, no duplicates
  np.testing.assert_array_equal(e0, e0_again)
  assert not np.array_equal(e0, e1)
  assert not np.array_equal(e0, order(1, 0))


def test_eval_batches_pad_and_mask_every_example_once():
  source = fake_source(37)
  batches = list(pipeline.eval_batches(source, batch_size=8, prep=pipeline.Preprocess()))
  assert len(batches) == 5 and all(b["image"].shape == (8, 28, 28, 1) for b in batches)
  assert [int(b["mask"].sum()) for b in batches] == [8, 8, 8, 8, 5]
  seen = np.concatenate([b["index"][b["mask"]] for b in batches])
  np.testing.assert_array_equal(seen, np.arange(37))
  np.testing.assert_array_equal(batches[-1]["image"][5:], -1.0)  # zero pixels, normalised


def test_preprocess_normalise_channels_resize():
  source = fake_source(4)
  prep = pipeline.Preprocess(channels=3, resize=56, resize_method="nearest")
  batch = next(pipeline.eval_batches(source, batch_size=4, prep=prep))
  raw = source[0]["image"].astype(np.float32) / 255.0 * 2 - 1
  upsampled = np.repeat(np.repeat(raw, 2, axis=0), 2, axis=1)
  assert batch["image"].shape == (4, 56, 56, 3) and batch["image"].dtype == np.float32
  np.testing.assert_allclose(batch["image"][0, ..., 0], upsampled[..., 0], atol=1e-6)
  np.testing.assert_array_equal(batch["image"][0, ..., 0], batch["image"][0, ..., 2])
  with pytest.raises(ValueError, match="resize_method"):
    pipeline.Preprocess(resize_method="lanczos9")


def test_augmentation_is_seeded_and_keeps_shapes():
  source, prep = fake_source(16), pipeline.Preprocess(augment=True)
  first = next(pipeline.train_batches(source, batch_size=16, seed=0, epoch=0, prep=prep))
  again = next(pipeline.train_batches(source, batch_size=16, seed=0, epoch=0, prep=prep))
  plain = next(pipeline.train_batches(source, batch_size=16, seed=0, epoch=0, prep=pipeline.Preprocess()))
  np.testing.assert_array_equal(first["image"], again["image"])
  np.testing.assert_array_equal(first["index"], plain["index"])
  assert first["image"].shape == plain["image"].shape
  assert not np.array_equal(first["image"], plain["image"])


def test_batch_larger_than_split_is_a_clear_error():
  with pytest.raises(ValueError, match="fewer than one batch"):
    next(pipeline.train_batches(fake_source(5), batch_size=8, seed=0, epoch=0, prep=pipeline.Preprocess()))


def test_in_memory_split_gives_the_same_batches_as_records():
  source = fake_source(37, channels=3)
  arrays = pipeline.materialise(source)
  assert isinstance(arrays, pipeline.ArraySplit) and arrays.image.shape == (37, 28, 28, 3)
  prep = pipeline.Preprocess(augment=True, resize=32)
  for make in (lambda s: pipeline.train_batches(s, batch_size=8, seed=3, epoch=2, prep=prep),
               lambda s: pipeline.eval_batches(s, batch_size=8, prep=prep)):
    for a, b in zip(make(source), make(arrays), strict=True):
      for key in ("image", "label", "index", "mask"):
        np.testing.assert_array_equal(a[key], b[key])
  assert pipeline.materialise(source, max_bytes=1000) is source  # too big: stays record-wise
  for split in (source, arrays):
    np.testing.assert_array_equal(pipeline.column(split, "label"), np.arange(37)[:, None] % 2)
    np.testing.assert_array_equal(pipeline.column(split, "index"), np.arange(37))
  np.testing.assert_array_equal(pipeline.preprocess(arrays.image[:2], pipeline.Preprocess(resize=32)),
                                next(iter(pipeline.eval_batches(arrays, batch_size=2,
                                                                prep=pipeline.Preprocess(resize=32))))["image"])


def test_a_missing_set_names_the_shared_folder_and_leaves_no_empty_prepared_folder(tmp_path, monkeypatch):
  """dermamnist absent: the error lists where it looked and where this checkout keeps MedMNIST files,
  and TFDS's empty `medmnist_v2/dermamnist_28/` of the attempt is removed."""
  shared = tmp_path / "shared" / "medmnist"
  shared.mkdir(parents=True)
  monkeypatch.setattr(sources, "SHARED_DIRS", (str(shared),))
  monkeypatch.setenv("MEDMNIST_ROOT", str(tmp_path / "root"))
  with pytest.raises(sources.DatasetNotFoundError, match=rf"{re.escape(str(tmp_path / 'root'))}.*{re.escape(str(shared))}, which holds"):
    data.load_dataset("dermamnist", allow_download=False, tfds_dir=str(tmp_path / "tfds"))
  assert not (tmp_path / "tfds" / "medmnist_v2" / "dermamnist_28").exists()
  shutil.copy(EMBEDDED_BREAST, shared / "dermamnist.npz")  # found there: the flags that use it
  with pytest.raises(sources.DatasetNotFoundError, match=re.escape(f"It is in {shared}: pass --config.data_dir={shared} "
                                                                   f"or set MEDMNIST_ROOT={shared}")):
    sources.locate_medmnist("dermamnist", data_dir=str(tmp_path / "data"), allow_download=False)


def test_a_parent_data_dir_is_pointed_at_its_medmnist_folder(tmp_path, monkeypatch):
  """--config.data_dir=../shared/data (the parent) used to fail without a word about the subfolder."""
  monkeypatch.setattr(sources, "SHARED_DIRS", ())
  (tmp_path / "medmnist").mkdir()
  shutil.copy(EMBEDDED_BREAST, tmp_path / "medmnist" / "pneumoniamnist.npz")
  with pytest.raises(sources.DatasetNotFoundError, match=re.escape(f"It is in {tmp_path / 'medmnist'}")):
    sources.locate_medmnist("pneumoniamnist", data_dir=str(tmp_path), allow_download=False)
