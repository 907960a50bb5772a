"""Where dataset source files come from: local copies, the embedded file, verified downloads.

Every `.npz` is MD5-checked before use; a download goes to a temporary file in the target
folder and is renamed into place only after its MD5 matches, so a partial or corrupt file
is never used.
"""

import contextlib
import dataclasses
import hashlib
import io
import os
import pathlib
import tempfile
import urllib.error
import urllib.request

from qcnn_jax import runtime

with contextlib.redirect_stdout(io.StringIO()):  # medmnist prints a torch hint on import
  from medmnist.info import INFO  # pylint: disable=g-import-not-at-top

EMBEDDED_DIR = pathlib.Path(__file__).resolve().parent / "embedded"
# Where a checkout beside a shared data folder finds the MedMNIST files (named by error messages).
SHARED_DIRS = ("../shared/data/medmnist",)
DOWNLOAD_TIMEOUT_S = 60


class DatasetNotFoundError(FileNotFoundError):
  """No usable copy of a dataset file was found and it could not be downloaded."""


class ChecksumError(ValueError):
  """A dataset file is corrupt, truncated or not the official release."""


@dataclasses.dataclass(frozen=True)
class SourceFile:
  """One official MedMNIST file: its name on disk, its download URL and its MD5."""
  filename: str
  url: str
  md5: str


def medmnist_file(flag: str, size: int) -> SourceFile:
  """The official file of MedMNIST dataset `flag` at image size `size` (pixels)."""
  if flag not in INFO:
    raise ValueError(f"Unknown MedMNIST dataset {flag!r}; known: {', '.join(INFO)}.")
  suffix = "" if size == 28 else f"_{size}"
  info = INFO[flag]
  if f"url{suffix}" not in info:
    sizes = [28] + [int(k[4:]) for k in info if k.startswith("url_")]
    raise ValueError(f"{flag} has no {size} px release; available sizes: {sizes}.")
  return SourceFile(f"{flag}{suffix}.npz", info[f"url{suffix}"], info[f"MD5{suffix}"])


def md5sum(path: os.PathLike, chunk_bytes: int = 1 << 20) -> str:
  """Hex MD5 digest of the file at `path`."""
  digest = hashlib.md5()
  with open(path, "rb") as f:
    for chunk in iter(lambda: f.read(chunk_bytes), b""):
      digest.update(chunk)
  return digest.hexdigest()


def verify_md5(path: pathlib.Path, source: SourceFile) -> pathlib.Path:
  """Returns `path` if its MD5 is the official one; raises `ChecksumError` otherwise."""
  found = md5sum(path)
  if found != source.md5:
    raise ChecksumError(
        f"{path} has MD5 {found}, but the official {source.filename} has MD5 {source.md5}: "
        f"the file is corrupt, truncated or modified and will not be used. Delete it and "
        f"download it again from {source.url} (or let qcnn_jax download it).")
  return path


def remove_empty_dirs(folder: os.PathLike) -> None:
  """Removes `folder` and its subfolders when they hold no file (what a failed attempt made)."""
  for path, _, _ in sorted(os.walk(folder), key=lambda entry: -len(entry[0])):
    with contextlib.suppress(OSError):
      os.rmdir(path)


def where_else(filename: str, data_dir: str | os.PathLike | None) -> str:
  """A sentence naming the folders that hold `filename` but were not searched (a shared copy in
  `SHARED_DIRS`, or the `medmnist` folder inside `data_dir`), with the flags that use one; else
  those shared folders that exist; "" when there are none."""
  candidates = [pathlib.Path(data_dir).expanduser() / "medmnist"] if data_dir else []
  candidates += [pathlib.Path(d) for d in SHARED_DIRS]
  holding = [str(d) for d in candidates if (d / filename).is_file()]
  if holding:
    return (f" It is in {holding[0]}: pass --config.data_dir={holding[0]} or set MEDMNIST_ROOT={holding[0]}.")
  existing = [str(d) for d in candidates if d.is_dir()]
  return f" ({', '.join(existing)}, which holds MedMNIST files here, has no {filename}.)" if existing else ""


def default_medmnist_dirs() -> list[pathlib.Path]:
  """Folders searched after an explicit one: `$MEDMNIST_ROOT` if set, else `~/.medmnist`."""
  root = os.environ.get("MEDMNIST_ROOT")
  return [pathlib.Path(root).expanduser()] if root else [pathlib.Path("~/.medmnist").expanduser()]


def download(source: SourceFile, target_dir: pathlib.Path, searched: list[pathlib.Path]) -> pathlib.Path:
  """Downloads `source` into `target_dir` via a temporary file, MD5-verified, then renamed.

  Args:
    source: the file to fetch.
    target_dir: folder that receives the file (created if needed).
    searched: folders already searched, named in the error message when offline.

  Returns:
    Path of the verified file.
  """
  target, made = target_dir / source.filename, not target_dir.exists()
  try:
    target_dir.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{source.filename}.", suffix=".part", dir=target_dir)
  except OSError as e:
    raise DatasetNotFoundError(
        f"Cannot write {source.filename} to {target_dir} ({e}). Download it from {source.url} "
        f"and put it in one of: {', '.join(map(str, searched))}.") from e
  tmp = pathlib.Path(tmp_name)
  try:
    digest = hashlib.md5()
    with (os.fdopen(fd, "wb") as out, urllib.request.urlopen(source.url, timeout=DOWNLOAD_TIMEOUT_S) as response,
          runtime.progress_bar(int(response.headers.get("Content-Length") or 0) or None, unit="B", unit_scale=True,
                               desc=source.filename) as bar):
      for chunk in iter(lambda: response.read(1 << 20), b""):
        digest.update(chunk)
        out.write(chunk)
        bar.update(len(chunk))
    if digest.hexdigest() != source.md5:
      raise ChecksumError(
          f"The download of {source.filename} from {source.url} has MD5 {digest.hexdigest()}, "
          f"expected {source.md5}: it was interrupted or altered and was discarded. Try again, "
          f"or download it by hand into {target_dir}.")
    os.replace(tmp, target)
  except (urllib.error.URLError, OSError) as e:
    raise DatasetNotFoundError(
        f"{source.filename} was not found locally and could not be downloaded from "
        f"{source.url} ({e}). Download it by hand and put it in one of: "
        f"{', '.join(map(str, searched))} (or pass --config.data_dir=DIR, or set "
        f"$MEDMNIST_ROOT).{where_else(source.filename, searched[0] if searched else None)}") from e
  finally:
    tmp.unlink(missing_ok=True)
    if made and not target.exists():
      remove_empty_dirs(target_dir)
  return target


def locate_medmnist(flag: str, size: int = 28, data_dir: str | os.PathLike | None = None,
                    allow_download: bool = True) -> pathlib.Path:
  """Finds (or downloads) the verified official `.npz` of a MedMNIST dataset.

  Search order: `data_dir`; `$MEDMNIST_ROOT` or `~/.medmnist`; the copy embedded in this
  package (BreastMNIST 28 px only); then a download into the first of those folders.
  The first copy found must have the official MD5, else `ChecksumError` is raised.

  Args:
    flag: MedMNIST dataset name, e.g. "breastmnist".
    size: image size in pixels (28, 64, 128 or 224).
    data_dir: optional explicit folder holding the file.
    allow_download: when False, a missing file raises `DatasetNotFoundError` at once.

  Returns:
    Path of the verified file.
  """
  source = medmnist_file(flag, size)
  user_dirs = ([pathlib.Path(data_dir).expanduser()] if data_dir else []) + default_medmnist_dirs()
  for folder in user_dirs + [EMBEDDED_DIR]:
    candidate = folder / source.filename
    if candidate.is_file():
      return verify_md5(candidate, source)
  if not allow_download:
    raise DatasetNotFoundError(
        f"{source.filename} was not found in {', '.join(map(str, user_dirs))} and downloading "
        f"is disabled. Download it from {source.url} and put it in one of those folders."
        f"{where_else(source.filename, data_dir)}")
  return download(source, user_dirs[0], user_dirs)
