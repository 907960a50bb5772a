"""TFDS builder for a user's own images: a folder with one subfolder per class.

Layouts (class names are the subfolder names, in sorted order; labels follow that order):

  DIR/<class>/<files>                        split here: seeded, stratified (80/10/10 or 80/20)
  DIR/train|val|test/<class>/<files>         the folders' split (val/ is optional)

Files may sit in nested folders below their class folder; names starting with "." are ignored.
Formats: PNG, JPEG, TIFF, BMP (Pillow), NumPy `.npy` arrays ((H, W), (H, W, 1) or (H, W, 3)) and
DICOM (`.dcm`, `.dicom`, or any file with the DICOM preamble; needs the optional `pydicom`).
8-bit pixels are kept as stored; other depths are scaled to 0..255 per image (min to max), and DICOM
pixels go through the file's own rescale (slope, intercept) and window (centre, width) tags, with
MONOCHROME1 inverted. Every image is resized to `size` x `size` (bilinear, antialiased) and has the
channels it is stored with (all files must agree) or the configured `channels` (1: luma, 3: RGB).

The split orders files by (class, relative path) and uses `medical_mnist.stratified_split`, so the
Medical MNIST class folders read here give its dedicated loader's split, seed for seed.

A prepared copy lives in `{tfds_dir}/folder/{name}-{key}`, `key` a hash of every file's relative
path, size and contents and of the settings: it is built in a temporary folder and renamed into
place when complete, so an interrupted build leaves no partial cache and an earlier one is kept.
Beside the array_record files, `files.json` lists each split's files (and any skipped unreadable
file with its reason): which files a run used.

Features of one record: image (size, size, C) uint8, label (1,) int64, index () int64 (row in
(class, path) order).
"""

import concurrent.futures
import dataclasses
import hashlib
import json
import logging
import os
import pathlib
import shutil
import tempfile

import numpy as np
import tensorflow_datasets as tfds
from PIL import Image

from qcnn_jax import integrity, runtime
from qcnn_jax.data import cache, medical_mnist, pipeline

SPLIT_FOLDERS = ("train", "val", "test")
PIL_SUFFIXES = (".png", ".jpg", ".jpeg", ".tif", ".tiff", ".bmp")
DICOM_SUFFIXES = (".dcm", ".dicom")
SUFFIXES = PIL_SUFFIXES + (".npy",) + DICOM_SUFFIXES
RESIZE_METHOD = "bilinear"
FILE_LIST = "files.json"
CACHE_FOLDER = "folder"
SKIP_HINT = "or pass --config.skip_unreadable=True to leave unreadable files out (they are listed in files.json)"


class FolderDatasetError(ValueError):
  """A folder dataset that cannot be used as it is; the message names the file and the fix."""


class UnreadableImage(ValueError):
  """One file that cannot be decoded as an image (unknown format, truncated, corrupt)."""


@dataclasses.dataclass(frozen=True)
class Layout:
  """The files of a folder dataset, in (class, relative path) order.

  Attributes:
    root: the dataset folder.
    class_names: C class names (sorted subfolder names); label i is class_names[i].
    paths: (N,) relative paths (POSIX).
    labels: (N,) int64 class of each file.
    given_splits: (N,) split folder of each file, or None when the folders give no split.
  """
  root: pathlib.Path
  class_names: tuple[str, ...]
  paths: tuple[str, ...]
  labels: np.ndarray
  given_splits: tuple[str, ...] | None


def _visible(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir() if not p.name.startswith("."))


def _class_files(folder: pathlib.Path) -> list[pathlib.Path]:
  """Files below a class folder (nested folders included, hidden names left out), sorted."""
  return sorted(p for p in folder.rglob("*")
                if p.is_file() and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _class_folders(folder: pathlib.Path, root: pathlib.Path) -> list[pathlib.Path]:
  """The class folders of `folder`; refuses files beside them."""
  entries = _visible(folder)
  strays = [p for p in entries if not p.is_dir()]
  if strays:
    raise FolderDatasetError(f"{strays[0]} lies outside a class folder: move it into the folder of its class "
                             f"({root}/<class>/...) or out of {root}.")
  return entries


def scan(root: str | os.PathLike) -> Layout:
  """Lists a folder dataset without reading its images.

  Raises:
    FolderDatasetError: no such folder, fewer than two classes, a file outside a class folder, an
      empty class folder, or split folders that lack a class.
  """
  root = pathlib.Path(root).expanduser()
  if not root.is_dir():
    raise FolderDatasetError(f"{root} is not a folder: pass --config.data_dir=DIR, a folder holding one subfolder "
                             f"of images per class (or train/ val/ test/ each holding them).")
  top = _class_folders(root, root)
  names = {p.name for p in top}
  given = bool(names) and names <= set(SPLIT_FOLDERS)
  if given and not {"train", "test"} <= names:
    raise FolderDatasetError(f"{root} has split folders {sorted(names)}: give train/ and test/ (val/ is optional), "
                             f"or put the class folders directly in {root} to have them split.")
  groups = {name: _class_folders(root / name, root) for name in SPLIT_FOLDERS if name in names} if given else {None: top}
  class_names = tuple(sorted({p.name for folders in groups.values() for p in folders}))
  if len(class_names) < 2:
    raise FolderDatasetError(f"{root} holds {len(class_names)} class folder(s) {list(class_names)}: a classifier needs "
                             f"at least two, one subfolder of images per class.")
  entries = []
  for split, folders in groups.items():
    present = {p.name for p in folders}
    for name in class_names:
      folder = root / split / name if split else root / name
      files = _class_files(folder) if name in present else []
      if not files:
        raise FolderDatasetError(f"{folder} {'holds no files' if name in present else 'is missing'}: every "
                                 f"{'split needs every class' if split else 'class needs images'}; add images of "
                                 f"class {name!r} there, or remove that class everywhere.")
      entries += [(class_names.index(name), p.relative_to(root).as_posix(), split) for p in files]
  entries.sort(key=lambda e: e[:2])
  return Layout(root=root, class_names=class_names, paths=tuple(e[1] for e in entries),
                labels=np.array([e[0] for e in entries], np.int64),
                given_splits=tuple(e[2] for e in entries) if given else None)


def content_digest(layout: Layout) -> str:
  """SHA-256 (hex) of every file's relative path, size and BLAKE2b digest of its bytes."""
  digest = hashlib.sha256()
  for rel in layout.paths:
    path = layout.root / rel
    with open(path, "rb") as f:
      content = hashlib.file_digest(f, "blake2b").hexdigest()
    digest.update(f"{rel}\0{path.stat().st_size}\0{content}\n".encode())
  return digest.hexdigest()


def _scheme_name(fractions: dict[str, float]) -> str:
  return "/".join(f"{round(100 * f)}" for f in fractions.values())


def plan_splits(layout: Layout, keep: np.ndarray, scheme: str, seed: int) -> dict[str, np.ndarray]:
  """Split name → sorted (M,) indices into `layout.paths` of the kept files.

  The folders' split when they give one, else `medical_mnist.stratified_split` of the kept files'
  labels with `scheme` ("80_10_10" or "80_20") and `seed`.

  Args:
    layout: the scanned files.
    keep: (N,) bool, False for files left out (unreadable, skipped).
    scheme, seed: split of a folder without split folders.

  Raises:
    FolderDatasetError: a class without a file in some split.
  """
  kept = np.flatnonzero(keep)
  if layout.given_splits is not None:
    given = np.array(layout.given_splits)
    splits = {name: kept[given[kept] == name] for name in SPLIT_FOLDERS if (given == name).any()}
  else:
    if scheme not in medical_mnist.SPLIT_SCHEMES:
      raise FolderDatasetError(f"Unknown split_scheme {scheme!r}; choose one of {list(medical_mnist.SPLIT_SCHEMES)}.")
    fractions = medical_mnist.SPLIT_SCHEMES[scheme]
    splits = {name: kept[idx] for name, idx in
              medical_mnist.stratified_split(layout.labels[kept], fractions, seed).items()}
  for name, idx in splits.items():
    missing = sorted(set(range(len(layout.class_names))) - set(layout.labels[idx].tolist()))
    if missing:
      cls = layout.class_names[missing[0]]
      count = int((layout.labels[kept] == missing[0]).sum())
      if layout.given_splits is not None:
        raise FolderDatasetError(f"{layout.root / name / cls} has no readable image: every split needs every class; "
                                 f"add images of class {cls!r} there.")
      need = min_class_size(medical_mnist.SPLIT_SCHEMES[scheme], seed)
      raise FolderDatasetError(
          f"{layout.root / cls} has {count} usable image(s), too few for the {_scheme_name(fractions)} split: its "
          f"{name} split would get none. Give each class at least {need} images, "
          f"{'or use --config.split_scheme=80_20, ' if scheme != '80_20' else ''}or give train/ val/ test/ folders.")
  return splits


def min_class_size(fractions: dict[str, float], seed: int) -> int:
  """Fewest images a class needs so that `stratified_split` gives every split at least one."""
  n = len(fractions)
  while min(len(v) for v in medical_mnist.stratified_split(np.zeros(n, np.int64), fractions, seed).values()) == 0:
    n += 1
  return n


def to_uint8(pixels: np.ndarray) -> np.ndarray:
  """uint8 pixels as they are; any other dtype scaled from its min (0) to its max (255) per image."""
  if pixels.dtype == np.uint8:
    return pixels
  x = pixels.astype(np.float64)
  if pixels.dtype == bool:
    return (x * 255).astype(np.uint8)
  finite = x[np.isfinite(x)]
  low, high = (finite.min(), finite.max()) if finite.size else (0.0, 0.0)
  scaled = (np.nan_to_num(x, nan=low, posinf=high, neginf=low) - low) / (high - low if high > low else 1.0)
  return np.round(scaled * 255).astype(np.uint8)


def _with_channels(pixels: np.ndarray) -> np.ndarray:
  """(H, W) or (H, W, 1|3) pixels → (H, W, C) uint8."""
  if pixels.ndim == 2:
    pixels = pixels[..., None]
  if pixels.ndim != 3 or pixels.shape[-1] not in (1, 3):
    raise UnreadableImage(f"pixel array of shape {pixels.shape}, expected (H, W), (H, W, 1) or (H, W, 3)")
  return to_uint8(pixels)


def _read_pil(path: pathlib.Path) -> np.ndarray:
  with Image.open(path) as img:
    if getattr(img, "n_frames", 1) > 1:
      raise UnreadableImage(f"{img.n_frames} frames in one file; save one image per file")
    img.load()  # decodes now: a truncated file fails here
    if img.mode in ("1", "L", "LA", "La"):
      img = img.convert("L")
    elif img.mode not in ("I", "I;16", "I;16B", "I;16L", "I;16N", "F"):
      img = img.convert("RGB")
    return np.asarray(img)


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
  """DICOM linear VOI windowing (PS3.3 C.11.2.1.2.1) of modality values to 0..255 uint8."""
  scaled = np.clip((values - (center - 0.5)) / max(width - 1, 1e-12) + 0.5, 0.0, 1.0)
  return np.round(scaled * 255).astype(np.uint8)


def _read_dicom(path: pathlib.Path) -> np.ndarray:
  try:
    import pydicom  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise FolderDatasetError(f"{path} is DICOM, which needs pydicom: pip install pydicom (the [dicom] extra of "
                             f"qcnn-jax), or convert the files to PNG.") from e
  ds = pydicom.dcmread(path)
  if int(ds.get("NumberOfFrames", 1) or 1) > 1:
    raise UnreadableImage(f"{ds.NumberOfFrames} frames in one DICOM file; save one image per file")
  pixels = ds.pixel_array
  if int(ds.get("SamplesPerPixel", 1)) != 1:
    return pixels
  values = pixels.astype(np.float64) * float(ds.get("RescaleSlope", 1) or 1) + float(ds.get("RescaleIntercept", 0) or 0)
  first = lambda v: float(v[0] if isinstance(v, pydicom.multival.MultiValue) else v)  # several windows: the first
  if "WindowCenter" in ds and "WindowWidth" in ds:
    image = window(values, first(ds.WindowCenter), first(ds.WindowWidth))
  else:
    image = to_uint8(values)
  return 255 - image if ds.get("PhotometricInterpretation") == "MONOCHROME1" else image


def is_dicom(path: pathlib.Path) -> bool:
  """A DICOM file by its suffix, or by the "DICM" marker after its 128-byte preamble."""
  if path.suffix.lower() in DICOM_SUFFIXES:
    return True
  with open(path, "rb") as f:
    return f.read(132)[128:] == b"DICM"


def read_image(path: str | os.PathLike) -> np.ndarray:
  """Decodes one file (PNG, JPEG, TIFF, BMP, .npy or DICOM) to (H, W, C) uint8, C = 1 or 3, as stored.

  Raises:
    UnreadableImage: the file is not an image of a supported format, or is truncated or corrupt.
    FolderDatasetError: a DICOM file without pydicom installed.
  """
  path = pathlib.Path(path)
  suffix = path.suffix.lower()
  try:
    if suffix in PIL_SUFFIXES:
      pixels = _read_pil(path)
    elif suffix == ".npy":
      pixels = np.load(path, allow_pickle=False)
    elif is_dicom(path):
      pixels = _read_dicom(path)
    else:
      raise UnreadableImage(f"not a supported image file (suffixes: {' '.join(SUFFIXES)}, or DICOM)")
  except (UnreadableImage, FolderDatasetError):
    raise
  except Exception as e:  # pylint: disable=broad-except  # decoders raise many types for corrupt files
    raise UnreadableImage(f"{type(e).__name__}: {e}") from e
  return _with_channels(pixels)


def conform(image: np.ndarray, size: int, channels: int | None) -> np.ndarray:
  """(H, W, C) uint8 → (size, size, C') uint8: bilinear resize, then C' = `channels` (1: ITU-R 601
  luma as Pillow computes it; 3: gray repeated) or C when None."""
  image = pipeline.resize_image(image, size, RESIZE_METHOD)
  if channels == 1 and image.shape[-1] == 3:
    return np.asarray(Image.fromarray(image).convert("L"))[..., None]
  if channels == 3 and image.shape[-1] == 1:
    return np.repeat(image, 3, axis=-1)
  return image


def _load(path: pathlib.Path, size: int, channels: int | None) -> tuple[np.ndarray | None, str | None]:
  """(conformed image, None) or (None, why it cannot be read)."""
  try:
    return conform(read_image(path), size, channels), None
  except UnreadableImage as e:
    return None, str(e)


def read_all(layout: Layout, size: int, channels: int | None, progress: bool = True
             ) -> tuple[list[np.ndarray | None], list[str | None]]:
  """Decodes and conforms every file of `layout` on threads: (images or None, reasons or None)."""
  paths = [layout.root / rel for rel in layout.paths]
  images, reasons = [], []
  with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
      runtime.progress_bar(len(paths), unit="image", desc=f"reading {layout.root.name}", enabled=progress) as bar:
    for image, reason in pool.map(lambda p: _load(p, size, channels), paths):
      images.append(image)
      reasons.append(reason)
      bar.update(1)
  return images, reasons


def unreadable_error(root: pathlib.Path, skipped: list[dict]) -> FolderDatasetError:
  """The error for unreadable files: the first named with its reason, a few more by name."""
  first, rest = skipped[0], [s["path"] for s in skipped[1:]]
  more = f" (and {len(rest)} more: {', '.join(rest[:3])}{', ...' if len(rest) > 3 else ''})" if rest else ""
  return FolderDatasetError(f"{root / first['path']} cannot be read ({first['reason']}){more}: replace or remove it, "
                            f"{SKIP_HINT}.")


def check_channels(layout: Layout, images: list[np.ndarray | None]) -> int:
  """The one channel count of the decoded images; FolderDatasetError naming an example of each when
  they differ."""
  examples = {}
  for rel, image in zip(layout.paths, images):
    if image is not None:
      examples.setdefault(image.shape[-1], rel)
  if len(examples) > 1:
    found = " and ".join(f"{c} channel(s) (e.g. {layout.root / rel})" for c, rel in sorted(examples.items()))
    raise FolderDatasetError(f"{layout.root} mixes images with {found}: set --config.image_channels=1 (grayscale) or "
                             f"--config.image_channels=3 (RGB) to convert them all.")
  return next(iter(examples))


@dataclasses.dataclass
class FolderConfig(tfds.core.BuilderConfig):
  """A prepared folder dataset: image side, channels, classes and task."""
  size: int = 64
  channels: int = 1
  class_names: tuple[str, ...] = ()


def task_for(class_names: tuple[str, ...]) -> str:
  """"binary-class" (one sigmoid logit; the second class is the positive one) for two classes,
  else "multi-class"."""
  return "binary-class" if len(class_names) == 2 else "multi-class"


class FolderDataset(tfds.core.GeneratorBasedBuilder):
  """A user's own images (class folders), decoded by `read_all` before the builder runs."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Class folders of PNG, JPEG, TIFF, BMP, .npy or DICOM files."}

  def __init__(self, *, arrays: dict | None = None, **kwargs):
    """Args: arrays: {"images": (N, S, S, C) uint8, "labels": (N,), "splits": {name: indices}} to write
    (only when preparing); kwargs: for TFDS."""
    self._arrays = arrays
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    config = self.builder_config
    return self.dataset_info_from_configs(
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(config.size, config.size, config.channels), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(1,), dtype=np.int64),
            "index": tfds.features.Scalar(dtype=np.int64),
        }),
        metadata=tfds.core.MetadataDict(task=task_for(config.class_names),
                                        label_names={str(i): n for i, n in enumerate(config.class_names)}),
    )

  def _split_generators(self, dl_manager):
    del dl_manager
    return {name: self._generate_examples(idx) for name, idx in self._arrays["splits"].items()}

  def _generate_examples(self, indices: np.ndarray):
    images, labels = self._arrays["images"], self._arrays["labels"]
    for i in indices:
      yield int(i), {"image": images[i], "label": labels[i:i + 1], "index": int(i)}


def default_tfds_dir() -> pathlib.Path:
  """TFDS's data folder ($TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  return pathlib.Path(os.environ.get("TFDS_DATA_DIR", "~/tensorflow_datasets")).expanduser()


def cache_dir(layout: Layout, digest: str, tfds_dir: str | os.PathLike | None, settings: dict) -> pathlib.Path:
  """The prepared copy's folder: `{tfds_dir}/folder/{name}-{key}`, key from the content digest and settings."""
  key = hashlib.sha256(json.dumps({"digest": digest, **settings}, sort_keys=True).encode()).hexdigest()[:16]
  return (pathlib.Path(tfds_dir).expanduser() if tfds_dir else default_tfds_dir()) / CACHE_FOLDER / \
      f"{layout.root.resolve().name}-{key}"


def _builder(folder: pathlib.Path, listing: dict, arrays: dict | None = None) -> FolderDataset:
  config = FolderConfig(name="images", size=listing["size"], channels=listing["channels"],
                        class_names=tuple(listing["class_names"]))
  return FolderDataset(config=config, arrays=arrays, data_dir=str(folder), file_format="array_record")


def incomplete_copy_error(target: pathlib.Path) -> FolderDatasetError:
  """The error for a cache folder without its files.json (never deleted here: it may hold anything)."""
  return FolderDatasetError(f"{target} exists but is not a complete prepared copy ({FILE_LIST} missing): delete it; "
                            f"it is rebuilt on the next run.")


def _put_in_place(tmp: pathlib.Path, target: pathlib.Path) -> None:
  """Renames the finished copy `tmp` to `target`; a complete copy another process put there first is
  kept (the same content and settings), an incomplete one is reported."""
  try:
    os.rename(tmp, target)
  except OSError:
    if read_listing(target) is None:
      raise incomplete_copy_error(target) from None


def _build(layout: Layout, target: pathlib.Path, settings: dict, skip_unreadable: bool, digest: str,
           progress: bool) -> None:
  """Decodes and checks every file, writes the array_record files and `files.json` into a temporary
  folder beside `target`, then renames it to `target`."""
  plan_splits(layout, np.ones(len(layout.paths), bool), settings["split_scheme"], settings["split_seed"])  # early
  images, reasons = read_all(layout, settings["size"], settings["channels"], progress)
  skipped = [{"path": rel, "reason": r} for rel, r in zip(layout.paths, reasons) if r is not None]
  if skipped and not skip_unreadable:
    raise unreadable_error(layout.root, skipped)
  if skipped:
    logging.warning("%d unreadable file(s) of %s left out (skip_unreadable): %s", len(skipped), layout.root,
                    ", ".join(s["path"] for s in skipped))
  keep = np.array([r is None for r in reasons])
  channels = check_channels(layout, images)
  splits = plan_splits(layout, keep, settings["split_scheme"], settings["split_seed"])
  listing = {"class_names": list(layout.class_names), "size": settings["size"], "channels": channels,
             "task": task_for(layout.class_names), "content_sha256": digest, "settings": settings,
             "splits": {name: [{"path": layout.paths[i], "label": int(layout.labels[i]), "index": int(i)} for i in idx]
                        for name, idx in splits.items()},
             "skipped": skipped}
  blank = np.zeros((settings["size"], settings["size"], channels), np.uint8)
  arrays = {"images": np.stack([blank if im is None else im for im in images]), "labels": layout.labels,
            "splits": splits}
  target.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".incomplete", dir=target.parent))
  tmp.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
  try:
    _builder(tmp, listing, arrays).download_and_prepare()
    (tmp / FILE_LIST).write_text(json.dumps(listing, indent=1) + "\n")
    integrity.write_digest(tmp)
    _put_in_place(tmp, target)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def read_listing(folder: pathlib.Path) -> dict | None:
  """`files.json` of a prepared copy, or None when there is none (not prepared, or interrupted)."""
  path = folder / FILE_LIST
  return json.loads(path.read_text()) if path.is_file() else None


def prepare(data_dir: str | os.PathLike | None, *, size: int, channels: int | None = None,
            tfds_dir: str | os.PathLike | None = None, split_scheme: str = "80_10_10", split_seed: int = 0,
            skip_unreadable: bool = False, progress: bool = True) -> tuple[tfds.core.DatasetBuilder, dict]:
  """Prepares (once per content and settings) and opens a folder dataset.

  Args:
    data_dir: the dataset folder (see module docstring).
    size: image side in pixels after resizing.
    channels: 1 or 3 to convert every image; None keeps the stored count (all must agree).
    tfds_dir: where prepared copies live (TFDS's data folder when None).
    split_scheme, split_seed: split of a folder without split folders.
    skip_unreadable: leave out (and list) unreadable files instead of stopping.
    progress: a progress bar while decoding (on a terminal).

  Returns:
    (prepared builder, files.json contents: classes, task, each split's files, skipped files).

  Raises:
    FolderDatasetError: anything in the folder that needs the user's fix (the message says which).
  """
  if data_dir is None:
    raise FolderDatasetError("dataset=folder needs --config.data_dir=DIR, a folder holding one subfolder of images "
                             "per class.")
  if channels not in (None, 1, 3):
    raise FolderDatasetError(f"image_channels must be unset, 1 or 3, got {channels}.")
  layout = scan(data_dir)
  digest = content_digest(layout)
  scheme = "given" if layout.given_splits is not None else split_scheme
  settings = {"size": size, "channels": channels, "split_scheme": scheme,
              "split_seed": None if scheme == "given" else split_seed}
  target = cache_dir(layout, digest, tfds_dir, settings)
  listing = read_listing(target)
  if listing is None and target.exists():
    raise incomplete_copy_error(target)
  damage = None if listing is None else cache.find_damage(_builder(target, listing), target)
  if damage is not None:
    cache.discard(target, damage, layout.root)
    listing = None
  if listing is None:
    _build(layout, target, settings, skip_unreadable, digest, progress)
    listing = read_listing(target)
  elif listing["skipped"] and not skip_unreadable:
    raise unreadable_error(layout.root, listing["skipped"])
  return _builder(target, listing), listing
