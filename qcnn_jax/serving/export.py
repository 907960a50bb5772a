"""A trained run as a folder others load without this code: `export_run(workdir, out)`.

The run's reported checkpoint (best validation AUC) becomes one inference function, uint8 images
(B, H, W, C) → normalised as the run's evaluation does (`pipeline.normalise`, traced) → logits
(B, K) float32, serialised with `jax.export` (StableHLO, for CPU and CUDA) beside its parameters,
config and model card (`artifact` describes the files). Before the folder is renamed into place the
export runs the artefact on the test split and records its largest difference from the run's own
test logits.
"""

from collections.abc import Sequence
import functools
import json
import os
import pathlib
import shutil
import tempfile

import jax
import jax.numpy as jnp
import numpy as np
from jax import export as jax_export

from qcnn_jax import serving
from qcnn_jax.data import pipeline
from qcnn_jax.evaluation import metrics, reports
from qcnn_jax.serving import artifact, card
from qcnn_jax.training import checkpointing, train

PLATFORMS = ("cpu", "cuda")
CARD_FILES = ("model_card.json", "model_card.md")
DATA_FILES = "data_splits.json"
LOADER_FILE = "load_model.py"


def param_name(path: tuple) -> str:
  """"params/backbone/conv/kernel" for a key path of a variables pytree."""
  return "/".join(str(getattr(key, "key", key)) for key in path)


def infer(leaves: list, images: jax.Array, *, model, treedef, prep: pipeline.Preprocess) -> jax.Array:
  """(B, K) float32 logits of uint8 images (B, H, W, C), the variables given as `treedef`'s leaves."""
  variables = jax.tree_util.tree_unflatten(treedef, leaves)
  return model.apply(variables, pipeline.normalise(images, prep), train=False).astype(jnp.float32)


def input_shape(trainer: train.Trainer) -> tuple[int, int, int]:
  """(H, W, C) uint8 images the artefact takes: the stored images after the run's resize, before
  its channel conversion (done inside)."""
  h, w, c = trainer.dataset.image_shape
  side = trainer.prep.resize
  return (side, side, c) if side else (h, w, c)


def model_inputs(trainer: train.Trainer, images: np.ndarray) -> np.ndarray:
  """Stored images (N, H, W, C) uint8 resized as the run's pipeline resizes them (`input_shape`)."""
  if not trainer.prep.resize:
    return images
  return np.stack([pipeline.resize_image(im, trainer.prep.resize, trainer.prep.resize_method) for im in images])


def export_function(trainer: train.Trainer, variables, batch_size: int, platforms: Sequence[str]):
  """(`jax.export.Exported` of `infer` for `batch_size` images, parameter names, leaves)."""
  with_paths, treedef = jax.tree_util.tree_flatten_with_path(variables)
  leaves = [np.asarray(leaf) for _, leaf in with_paths]
  fn = jax.jit(functools.partial(infer, model=trainer.model, treedef=treedef, prep=trainer.prep))
  exported = jax_export.export(fn, platforms=tuple(platforms))(
      [jax.ShapeDtypeStruct(leaf.shape, leaf.dtype) for leaf in leaves],
      jax.ShapeDtypeStruct((batch_size,) + input_shape(trainer), jnp.uint8))
  return exported, [param_name(path) for path, _ in with_paths], leaves


def _check_target(out: pathlib.Path, overwrite: bool) -> None:
  if out.exists() and (not out.is_dir() or any(out.iterdir())) and not overwrite:
    raise serving.ServingError(f"{out} already exists and is not empty: choose another --out, or pass --overwrite "
                               f"to replace it.")


def _replace(tmp: pathlib.Path, out: pathlib.Path) -> None:
  """Moves the finished folder `tmp` to `out`; an existing `out` is renamed aside first and deleted
  only once the new one is in place."""
  old = None
  if out.exists():
    old = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.old.", dir=out.parent))
    os.replace(out, old / out.name)
  os.rename(tmp, out)
  if old is not None:
    shutil.rmtree(old)


def run_spec(trainer: train.Trainer, meta: dict, selected: str, config: dict, names: list[str], batch_size: int,
             platforms: Sequence[str]) -> dict:
  """model.json of an export (see `artifact`): how to call the function and what it was made from."""
  task, prep = trainer.dataset.task, trainer.prep
  return {"format": 1, "batch_size": batch_size, "input_shape": list(input_shape(trainer)), "input_dtype": "uint8",
          "preprocessing": {"mean": prep.mean, "std": prep.std, "channels": prep.channels, "resize": prep.resize,
                            "resize_method": prep.resize_method},
          "task": task, "class_names": trainer.class_names(), "num_outputs": trainer.dataset.num_outputs,
          "threshold": None if task in (metrics.MULTI_CLASS, metrics.ORDINAL) else serving.THRESHOLD,
          "param_names": names, "platforms": list(platforms), "run": train.config_run_name(trainer.config),
          "checkpoint_epoch": int(meta["epoch"]) + 1, "selected_checkpoint": selected, "config": config,
          "versions": {"jax": jax.__version__}}


def check_on_test(trainer: train.Trainer, model: artifact.Model, logits: np.ndarray) -> dict:
  """The exported `model` on the run's stored test images against the run's own test `logits` (N, K)."""
  source = trainer.split("test")
  images = model_inputs(trainer, pipeline.gather(source, np.arange(len(source)))["image"])
  return {"split": "test", "num_examples": len(images),
          "max_abs_logit_difference": float(np.abs(model.apply(images) - logits).max())}


def run_card(trainer: train.Trainer, config: dict, summary: dict, test: dict, spec: dict) -> dict:
  """The model card of an export (`card.model_card`) from the run's records and test predictions."""
  prep, names = trainer.prep, trainer.class_names()
  how = (f"resize to {prep.resize} px ({prep.resize_method}) first; " if prep.resize else "")
  how += f"inside: x / 255, (x - {prep.mean}) / {prep.std}" + (f", channels to {prep.channels}" if prep.channels else "")
  labels_by_split = {name: pipeline.column(source, "label") for name, source in trainer.splits.items()}
  return card.model_card(
      config=config, summary=summary, dataset=trainer.dataset, class_names=names,
      test=card.test_metrics(test["label"], test["logits"], trainer.dataset.task, names),
      input_spec={"shape": spec["input_shape"], "threshold": spec["threshold"], "how": how},
      data=card.data_section(config, trainer.dataset, names, labels_by_split), check=spec["check"])


def write_folder(out: pathlib.Path, exported, names: list[str], leaves: list, spec: dict, model_card: dict,
                 files: dict | None) -> None:
  """Writes every file of an export into a temporary folder beside `out`, then puts it in place."""
  out.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".incomplete", dir=out.parent))
  tmp.chmod(0o755)  # mkdtemp makes it private; the finished folder is an ordinary one
  try:
    (tmp / artifact.FUNCTION_FILE).write_bytes(exported.serialize())
    np.savez(tmp / artifact.PARAMS_FILE, **dict(zip(names, leaves)))
    (tmp / artifact.SPEC_FILE).write_text(json.dumps(reports.to_jsonable(spec), indent=1) + "\n")
    (tmp / CARD_FILES[0]).write_text(json.dumps(reports.to_jsonable(model_card), indent=1) + "\n")
    (tmp / CARD_FILES[1]).write_text(card.markdown(model_card))
    (tmp / LOADER_FILE).write_text(pathlib.Path(artifact.__file__).read_text())
    if files:
      (tmp / DATA_FILES).write_text(json.dumps(files, indent=1) + "\n")
    _replace(tmp, out)
  finally:
    shutil.rmtree(tmp, ignore_errors=True)


def export_run(workdir: str, out: str, *, batch_size: int | None = None, platforms: Sequence[str] = PLATFORMS,
               overwrite: bool = False) -> dict:
  """Exports the reported checkpoint of a finished run into folder `out`.

  Args:
    workdir: a run trained by `train.train_and_evaluate` (its summary.json written).
    out: folder to write (created; an existing non-empty one only with `overwrite`).
    batch_size: images per call of the exported function (default: the run's eval_batch_size).
    platforms: jax.export lowering platforms.
    overwrite: replace an existing `out`.

  Returns:
    The model.json contents (with "check": the artefact's largest |logit difference| from the run's
    own on the test split).
  """
  out = pathlib.Path(out)
  _check_target(out, overwrite)
  summary_path = os.path.join(workdir, reports.SUMMARY_FILENAME)
  if not os.path.exists(summary_path):
    raise serving.ServingError(f"{workdir} has no {reports.SUMMARY_FILENAME}: the run has not finished (or is no run); "
                               f"finish it by rerunning its experiments.train command, then export.")
  summary = reports.read_json(summary_path)
  config = reports.read_json(os.path.join(workdir, checkpointing.CONFIG_FILENAME))
  trainer, state, meta, selected = train.load_run(workdir)
  batch_size = batch_size or trainer.config.eval_batch_size
  variables = jax.device_get({"params": state.params, "batch_stats": state.batch_stats})
  exported, names, leaves = export_function(trainer, variables, batch_size, platforms)
  spec = run_spec(trainer, meta, selected, config, names, batch_size, platforms)
  test = trainer.predict(state, "test")
  model = artifact.Model(exported=exported, params=[jnp.asarray(x) for x in leaves], spec=spec)
  spec["check"] = check_on_test(trainer, model, test["logits"])
  write_folder(out, exported, names, leaves, spec, run_card(trainer, config, summary, test, spec), trainer.dataset.files)
  return spec
