"""Predictions of a trained run for image files: `predict_files(workdir, inputs)`.

Inputs are files, folders (every file below them, hidden names left out) or glob patterns. Each file
is decoded as the folder dataset decodes it (`folder.read_image`: PNG, JPEG, TIFF, BMP, .npy,
DICOM), brought to the run's stored image shape (`folder.conform`, with a warning per shape that
needed it) and scored by the run's reported checkpoint through its own evaluation path
(`Trainer.predict`: the run's preprocessing and batches). A file that cannot be read gets a row
with its error and no probabilities; the others go on.
"""

from collections.abc import Sequence
import concurrent.futures
import glob
import os
import pathlib

import numpy as np

from qcnn_jax import runtime, serving
from qcnn_jax.data import folder, pipeline
from qcnn_jax.evaluation import metrics
from qcnn_jax.training import train

CHUNK = 512  # files read and scored at a time (memory stays bounded for any number of inputs)


def expand_inputs(inputs: Sequence[str]) -> list[pathlib.Path]:
  """The files named by `inputs` (files, folders, glob patterns), each once, in the given order
  (a folder's or pattern's files sorted).

  Raises:
    ServingError: an input that names no file.
  """
  found: dict[pathlib.Path, None] = {}
  for spec in inputs:
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
      matches = [p for p in sorted(path.rglob("*"))
                 if p.is_file() and not any(part.startswith(".") for part in p.relative_to(path).parts)]
    elif path.is_file():
      matches = [path]
    else:
      matches = [pathlib.Path(p) for p in sorted(glob.glob(os.path.expanduser(spec), recursive=True))
                 if os.path.isfile(p)]
    if not matches:
      raise serving.ServingError(f"{spec} names no file: give image files, folders holding them, or a glob pattern "
                                 f"such as 'scans/*.png' (quoted).")
    found.update(dict.fromkeys(matches))
  return list(found)


def load_for_run(path: pathlib.Path, shape: tuple[int, int, int]) -> tuple[np.ndarray | None, tuple | None, str | None]:
  """(image conformed to the run's stored `shape` (H, W, C), its own shape, error): image None on error."""
  try:
    image = folder.read_image(path)
  except (folder.UnreadableImage, folder.FolderDatasetError) as e:
    return None, None, str(e)
  return folder.conform(image, shape[0], shape[2]), image.shape, None


def conversion_notes(converted: dict[tuple, list[str]], shape: tuple[int, int, int]) -> list[str]:
  """One warning per input shape that differs from the run's stored `shape`."""
  return [f"{len(paths)} image(s) of {w}x{h} px (width x height) with {c} channel(s) (e.g. {paths[0]}) were resized "
          f"to {shape[1]}x{shape[0]} and given {shape[2]} channel(s), as the run's images have"
          for (h, w, c), paths in converted.items()]


def rows_for(paths: Sequence[pathlib.Path], probabilities: np.ndarray, class_names: Sequence[str], task: str
             ) -> list[dict]:
  """CSV rows {path, predicted, p_<class>..., error} of scored files."""
  predicted = metrics.predictions(probabilities, task, serving.THRESHOLD)
  rows = []
  for path, p, label in zip(paths, probabilities, predicted):
    name = (";".join(n for n, on in zip(class_names, label) if on) if task == metrics.MULTI_LABEL
            else class_names[int(label)])
    rows.append({"path": str(path), "predicted": name, **{f"p_{n}": float(v) for n, v in zip(class_names, p)},
                 "error": ""})
  return rows


def columns(class_names: Sequence[str]) -> list[str]:
  """CSV header of `rows_for`."""
  return ["path", "predicted"] + [f"p_{n}" for n in class_names] + ["error"]


def predict_files(workdir: str, inputs: Sequence[str], progress: bool = True) -> tuple[list[dict], list[str], list[str]]:
  """Scores every file `inputs` name with the run's reported checkpoint.

  Returns:
    (rows in input order, CSV columns, warnings about converted images).
  """
  paths = expand_inputs(inputs)
  trainer, state, _, _ = train.load_run(workdir)
  shape, task, names = trainer.dataset.image_shape, trainer.dataset.task, trainer.class_names()
  rows, converted = [], {}
  with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool, \
      runtime.progress_bar(len(paths), unit="image", desc="predicting", enabled=progress) as bar:
    for start in range(0, len(paths), CHUNK):
      chunk = paths[start:start + CHUNK]
      loaded = list(pool.map(lambda p: load_for_run(p, shape), chunk))
      good = [i for i, (image, _, _) in enumerate(loaded) if image is not None]
      for i in good:
        if loaded[i][1] != shape:
          converted.setdefault(loaded[i][1], []).append(str(chunk[i]))
      scored = {}
      if good:
        images = np.stack([loaded[i][0] for i in good])
        split = pipeline.ArraySplit(image=images, label=np.zeros((len(good), 1), np.int64), index=np.arange(len(good)))
        probabilities = metrics.scores_from_logits(trainer.predict(state, split)["logits"], task)
        scored = dict(zip(good, rows_for([chunk[i] for i in good], probabilities, names, task)))
      rows += [scored.get(i) or {"path": str(path), "error": loaded[i][2]} for i, path in enumerate(chunk)]
      bar.update(len(chunk))
  return rows, columns(names), conversion_notes(converted, shape)
