"""Your own images: the folder (and DICOM) dataset, predictions on image files, the exported model and
the page that walks through them (docs/own_data.md)."""

import hashlib
import json
import os
import pathlib
import re
import shlex
import site
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from qcnn_jax import data
from qcnn_jax.data import folder, medical_mnist, pipeline, sources
from qcnn_jax.evaluation import metrics, reports
from qcnn_jax.serving import ServingError, export, predict
from qcnn_jax.training import train

ROOT = pathlib.Path(__file__).resolve().parents[1]
TEST_IMAGES = sources.EMBEDDED_DIR / "breastmnist.npz"


def write_images(folder_path: pathlib.Path, images, suffix: str = ".png") -> list[pathlib.Path]:
  """Saves (H, W) or (H, W, C) uint8 images as 000.png, 001.png, ... in `folder_path`."""
  folder_path.mkdir(parents=True, exist_ok=True)
  paths = [folder_path / f"{i:03d}{suffix}" for i in range(len(images))]
  for path, image in zip(paths, images):
    Image.fromarray(np.squeeze(image)).save(path)
  return paths


def random_images(n: int, shape=(20, 30), seed: int = 0) -> np.ndarray:
  return np.random.default_rng(seed).integers(0, 256, (n,) + shape, dtype=np.uint8)


def tree_digest(root: pathlib.Path) -> dict[str, str]:
  """Relative path → MD5 of every file under `root`."""
  return {str(p.relative_to(root)): hashlib.md5(p.read_bytes()).hexdigest() for p in sorted(root.rglob("*"))
          if p.is_file()}


def records(dataset, split: str) -> list[tuple[int, int, bytes]]:
  """(index, label, pixels) of every record of a split, sorted by index."""
  return sorted((int(r["index"]), int(r["label"][0]), np.asarray(r["image"]).tobytes()) for r in dataset.splits[split])


# --- the folder dataset -------------------------------------------------------------------------------------------


def test_medical_mnist_class_folders_give_the_dedicated_loaders_counts_and_split(tmp_path, monkeypatch, shared_data):
  """Real Medical MNIST images (20 per class, in the Kaggle layout of one JPEG folder per class) read by
  its dedicated loader and by the folder path, with two split seeds: the same records in the same splits."""
  npz = shared_data / "medical_mnist" / medical_mnist.NPZ_NAME
  if not npz.is_file():
    pytest.skip(f"{npz} is absent")
  monkeypatch.setenv("MEDICAL_MNIST_ROOT", str(tmp_path / "none"))
  images, labels = medical_mnist.read_npz(npz)
  for label, name in enumerate(medical_mnist.CLASS_NAMES):
    write_images(tmp_path / "tree" / name, images[labels == label][:20], ".jpeg")
  monkeypatch.setattr(medical_mnist, "CLASS_COUNTS", (20,) * 6)  # this subset is the "full set" here
  test_splits = []
  for seed in (0, 3):
    dedicated = data.load_dataset("medical_mnist", size=64, data_dir=str(tmp_path / "tree"),
                                  tfds_dir=str(tmp_path / "tfds"), split_seed=seed)
    own = data.load_dataset("folder", size=64, data_dir=str(tmp_path / "tree"), tfds_dir=str(tmp_path / "tfds"),
                            split_seed=seed)
    assert own.label_names == medical_mnist.CLASS_NAMES and own.task == dedicated.task == "multi-class"
    assert own.sizes == dedicated.sizes == {"train": 96, "val": 12, "test": 12}
    for split in dedicated.splits:
      assert records(own, split) == records(dedicated, split)
    test_splits.append([r[0] for r in records(own, "test")])
  assert test_splits[0] != test_splits[1]  # the seed matters
  test_files = [f["path"] for f in own.files["splits"]["test"]]
  assert len(test_files) == 12 and all(p.endswith(".jpeg") for p in test_files)


def test_given_split_folders_resized_listed_and_cached_by_content(tmp_path, monkeypatch):
  for split, n in (("train", 6), ("val", 2), ("test", 2)):
    for c, name in enumerate(("benign", "malignant")):
      write_images(tmp_path / "scans" / split / name, random_images(n, seed=10 * c + n))
  (tmp_path / "scans" / ".DS_Store").write_bytes(b"\0")  # hidden files are not images
  load = lambda: data.load_dataset("folder", size=16, data_dir=str(tmp_path / "scans"), tfds_dir=str(tmp_path / "tfds"))
  ds = load()
  assert ds.sizes == {"train": 12, "val": 4, "test": 4} and ds.image_shape == (16, 16, 1)
  assert ds.task == "binary-class" and ds.num_outputs == 1 and ds.label_names == ("benign", "malignant")
  listing = ds.files
  assert listing["settings"]["split_scheme"] == "given" and not listing["skipped"]
  for split, files in listing["splits"].items():
    assert all(f["path"].startswith(f"{split}/") for f in files)
    by_index = {f["index"]: f for f in files}
    for index, label, pixels in records(ds, split):
      path = tmp_path / "scans" / by_index[index]["path"]
      assert label == by_index[index]["label"] == ("malignant" in path.parts)
      assert pixels == folder.conform(folder.read_image(path), 16, None).tobytes()
  cache = folder.cache_dir(folder.scan(tmp_path / "scans"), listing["content_sha256"], tmp_path / "tfds",
                           listing["settings"])
  assert json.loads((cache / folder.FILE_LIST).read_text()) == listing  # the split's files beside the cache
  before = tree_digest(tmp_path / "tfds")
  monkeypatch.setattr(folder, "_build", lambda *a: pytest.fail("a prepared copy was built again"))
  assert load().sizes == ds.sizes
  monkeypatch.undo()
  write_images(tmp_path / "scans" / "test" / "benign", random_images(2, seed=99))  # same names, new contents
  assert load().files["content_sha256"] != listing["content_sha256"]
  after = tree_digest(tmp_path / "tfds")
  assert {k: after[k] for k in before} == before  # the earlier copy is kept as it was
  assert len(list((tmp_path / "tfds" / "folder").iterdir())) == 2


def test_formats_decode_as_stored(tmp_path):
  values = np.array([[0, 1000], [2000, 4000]], np.uint16)
  Image.fromarray(values).save(tmp_path / "deep.png")  # 16-bit: scaled from its min to its max
  np.testing.assert_array_equal(folder.read_image(tmp_path / "deep.png")[..., 0], [[0, 64], [128, 255]])
  np.save(tmp_path / "float.npy", np.array([[0.0, 0.5], [1.0, np.nan]]))
  np.testing.assert_array_equal(folder.read_image(tmp_path / "float.npy")[..., 0], [[0, 128], [255, 0]])
  rgba = np.random.default_rng(0).integers(0, 256, (5, 7, 4), dtype=np.uint8)
  Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
  np.testing.assert_array_equal(folder.read_image(tmp_path / "rgba.png"), rgba[..., :3])
  gray = random_images(1, (5, 7))[0]
  for suffix in (".tif", ".bmp", ".png"):
    Image.fromarray(gray).save(tmp_path / f"gray{suffix}")
    np.testing.assert_array_equal(folder.read_image(tmp_path / f"gray{suffix}"), gray[..., None])
  rgb = rgba[:5, :5, :3].copy()
  np.testing.assert_array_equal(folder.conform(rgb, 5, 1)[..., 0], np.asarray(Image.fromarray(rgb).convert("L")))
  assert folder.conform(gray[..., None], 16, 3).shape == (16, 16, 3)
  (tmp_path / "notes.txt").write_text("not an image")
  with pytest.raises(folder.UnreadableImage, match="not a supported image file"):
    folder.read_image(tmp_path / "notes.txt")


def write_dicom(path: pathlib.Path, raw: np.ndarray, photometric: str = "MONOCHROME2") -> None:
  """A CT-like DICOM file: uint16 pixels, rescale slope 1 / intercept -1024, a 40/400 window."""
  pydicom = pytest.importorskip("pydicom")
  from pydicom.dataset import FileMetaDataset  # pylint: disable=g-import-not-at-top
  from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid
  meta = FileMetaDataset()
  meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID = SecondaryCaptureImageStorage, generate_uid()
  meta.TransferSyntaxUID = ExplicitVRLittleEndian
  ds = pydicom.Dataset()
  ds.file_meta, ds.SOPClassUID, ds.SOPInstanceUID = meta, meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
  ds.Rows, ds.Columns = raw.shape
  ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, photometric
  ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 16, 15, 0
  ds.RescaleSlope, ds.RescaleIntercept, ds.WindowCenter, ds.WindowWidth = 1, -1024, 40, 400
  ds.PixelData = raw.astype(np.uint16).tobytes()
  ds.save_as(path, enforce_file_format=True)


def test_dicom_pixels_go_through_the_files_rescale_and_window(tmp_path):
  raw = np.array([[0, 1000], [2000, 4000]])  # HU -1024, -24, 976, 2976; window [-160, 239]
  write_dicom(tmp_path / "ct.dcm", raw)
  write_dicom(tmp_path / "IM0001", raw, "MONOCHROME1")  # no suffix: found by its DICM marker
  np.testing.assert_array_equal(folder.read_image(tmp_path / "ct.dcm")[..., 0], [[0, 87], [255, 255]])
  np.testing.assert_array_equal(folder.read_image(tmp_path / "IM0001")[..., 0], [[255, 168], [0, 0]])


def split_folders_without_a_class(root: pathlib.Path) -> None:
  """Moves the class folders into train/ and gives test/ only class a."""
  (root / "train").mkdir()
  for name in ("a", "b"):
    (root / name).rename(root / "train" / name)
  write_images(root / "test" / "a", random_images(2))


BAD_FOLDERS = {
    "empty class folder": (lambda root: (root / "b").mkdir(), r"/b holds no files: .*add images of class 'b'"),
    "truncated file": (lambda root: (root / "b" / "003.png").write_bytes((root / "b" / "000.png").read_bytes()[:60]),
                       r"/b/003.png cannot be read \(.*\): replace or remove it, or pass --config.skip_unreadable=True"),
    "mixed channels": (lambda root: write_images(root / "b", random_images(1, (20, 30, 3))),
                       r"mixes images with 1 channel\(s\) \(e.g. .*/a/000.png\) and 3 channel\(s\) \(e.g. .*/b/000.png\): "
                       r"set --config.image_channels=1"),
    "too few images": (lambda root: [p.unlink() for p in sorted((root / "b").iterdir())[3:]],
                       r"/b has 3 usable image\(s\), too few for the 80/10/10 split: .* at least 8 images"),
    "file outside a class folder": (lambda root: write_images(root, random_images(1)),
                                    r"/000.png lies outside a class folder: move it"),
    "split folder without a class": (split_folders_without_a_class,
                                     r"/test/b is missing: every split needs every class; add images of class 'b'"),
}


@pytest.mark.parametrize("case", list(BAD_FOLDERS))
def test_bad_folders_stop_with_one_error_naming_the_file_and_the_fix(tmp_path, case):
  damage, message = BAD_FOLDERS[case]
  write_images(tmp_path / "images" / "a", random_images(10))
  if case != "empty class folder":
    write_images(tmp_path / "images" / "b", random_images(10, seed=1))
  damage(tmp_path / "images")
  with pytest.raises(data.FolderDatasetError, match=message):
    data.load_dataset("folder", size=16, data_dir=str(tmp_path / "images"), tfds_dir=str(tmp_path / "tfds"))
  assert not (tmp_path / "tfds" / "folder").exists() or not any((tmp_path / "tfds" / "folder").iterdir())


def test_skip_unreadable_leaves_out_and_lists_them(tmp_path):
  write_images(tmp_path / "images" / "a", random_images(10))
  write_images(tmp_path / "images" / "b", random_images(11, seed=1))
  (tmp_path / "images" / "b" / "010.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  load = lambda skip: data.load_dataset("folder", size=16, data_dir=str(tmp_path / "images"),
                                        tfds_dir=str(tmp_path / "tfds"), skip_unreadable=skip)
  ds = load(True)
  assert sum(ds.sizes.values()) == 20 and [s["path"] for s in ds.files["skipped"]] == ["b/010.png"]
  with pytest.raises(data.FolderDatasetError, match="b/010.png cannot be read"):  # the cached copy says so too
    load(False)


def test_an_incomplete_cache_folder_is_reported_not_deleted(tmp_path):
  write_images(tmp_path / "images" / "a", random_images(10))
  write_images(tmp_path / "images" / "b", random_images(10, seed=1))
  listing = data.load_dataset("folder", size=8, data_dir=str(tmp_path / "images"), tfds_dir=str(tmp_path / "tfds")).files
  target = folder.cache_dir(folder.scan(tmp_path / "images"), listing["content_sha256"], tmp_path / "tfds",
                            listing["settings"])
  (target / folder.FILE_LIST).unlink()
  kept = tree_digest(target)
  with pytest.raises(data.FolderDatasetError, match=f"{re.escape(str(target))} exists but is not a complete prepared"):
    data.load_dataset("folder", size=8, data_dir=str(tmp_path / "images"), tfds_dir=str(tmp_path / "tfds"))
  assert tree_digest(target) == kept


def test_a_bad_folder_ends_the_command_in_one_error_line_and_keeps_the_earlier_cache_and_run(tmp_path):
  write_images(tmp_path / "images" / "a", random_images(10))
  write_images(tmp_path / "images" / "b", random_images(10, seed=1))
  data.load_dataset("folder", size=16, data_dir=str(tmp_path / "images"), tfds_dir=str(tmp_path / "tfds"))
  (tmp_path / "run").mkdir()
  (tmp_path / "run" / "config.json").write_text('{"dataset": "folder"}')  # an earlier run's files
  (tmp_path / "images" / "b" / "010.png").write_bytes(b"\x89PNG\r\n\x1a\n truncated")
  before = tree_digest(tmp_path)
  result = subprocess.run(
      [sys.executable, "-m", "experiments.train", "--config=experiments/configs/quick.py", "--config.dataset=folder",
       f"--config.data_dir={tmp_path / 'images'}", "--config.size=16", f"--config.tfds_dir={tmp_path / 'tfds'}",
       f"--workdir={tmp_path / 'run'}"], cwd=ROOT, capture_output=True, text=True, timeout=600)
  assert result.returncode == 2, result.stderr[-2000:]
  assert "Traceback" not in result.stderr
  last = result.stderr.strip().splitlines()[-1]
  assert re.fullmatch(rf"error: {re.escape(str(tmp_path))}/images/b/010.png cannot be read .*skip_unreadable=True.*",
                      last), last
  assert tree_digest(tmp_path) == before  # nothing of the earlier cache or run changed


# --- predictions and the exported model ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def test_split_files(tmp_path_factory) -> pathlib.Path:
  """The embedded BreastMNIST test split as PNG files named by official index, plus a truncated file
  and an RGB JPEG of another size."""
  root = tmp_path_factory.mktemp("test_split_files")
  with np.load(TEST_IMAGES) as packed:
    images = packed["test_images"]
  for index, image in enumerate(images):
    Image.fromarray(image).save(root / f"{index:04d}.png")
  (root / "truncated.png").write_bytes((root / "0000.png").read_bytes()[:90])
  Image.fromarray(random_images(1, (40, 50, 3))[0]).save(root / "other.jpg")
  return root


def test_predict_gives_evaluates_probabilities_for_the_test_split_files(quick_run, test_split_files):
  workdir, _ = quick_run
  rows, columns, notes = predict.predict_files(str(workdir), [str(test_split_files)], progress=False)
  assert columns == ["path", "predicted", "p_malignant", "p_normal, benign", "error"]
  by_name = {pathlib.Path(r["path"]).name: r for r in rows}
  assert by_name["truncated.png"]["error"] and "p_malignant" not in by_name["truncated.png"]
  assert len(notes) == 1 and "50x40 px (width x height) with 3 channel(s)" in notes[0] and "28x28" in notes[0]
  train.evaluate_workdir(str(workdir), "test")  # what experiments.evaluate --split=test runs
  (csv_path,) = (workdir / "predictions").glob("breastmnist_test_*.csv")
  index, scores = reports.read_predictions_csv(csv_path)
  ours = np.array([[by_name[f"{i:04d}.png"][c] for c in columns[2:4]] for i in index])
  np.testing.assert_allclose(ours, scores, rtol=0, atol=1e-5)
  predicted = [by_name[f"{i:04d}.png"]["predicted"] for i in index]
  assert predicted == [("malignant", "normal, benign")[p] for p in metrics.predictions(scores, metrics.BINARY)]
  with pytest.raises(ServingError, match="names no file"):
    predict.expand_inputs([str(test_split_files / "*.dcm")])


def test_exported_model_reproduces_the_runs_logits_without_qcnn_jax(quick_run, tmp_path):
  workdir, summary = quick_run
  out = tmp_path / "exported"
  spec = export.export_run(str(workdir), str(out), platforms=("cpu",))
  assert spec["check"]["max_abs_logit_difference"] < 1e-5
  trainer, state, _, _ = train.load_run(str(workdir))
  run = trainer.predict(state, "test")
  images = pipeline.gather(trainer.split("test"), np.arange(len(run["logits"])))["image"]
  np.save(tmp_path / "images.npy", images)
  code = ("import sys\n"
          "try:\n  import qcnn_jax\n  sys.exit('qcnn_jax is importable')\nexcept ModuleNotFoundError:\n  pass\n"
          "import numpy as np\nfrom load_model import load_model\n"
          f"model = load_model('.')\nnp.save({str(tmp_path / 'logits.npy')!r}, model.apply(np.load({str(tmp_path / 'images.npy')!r})))\n")
  clean = [p for p in site.getsitepackages() if "site-packages" in p]
  env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
  result = subprocess.run([sys.executable, "-S", "-c", f"import sys; sys.path.extend({clean!r})\n" + code], cwd=out,
                          env=env, capture_output=True, text=True, timeout=600)
  assert result.returncode == 0, result.stderr[-2000:] + result.stdout[-500:]
  np.testing.assert_allclose(np.load(tmp_path / "logits.npy"), run["logits"], rtol=0, atol=1e-5)
  import qcnn_jax  # pylint: disable=g-import-not-at-top
  model = qcnn_jax.load_model(out)
  np.testing.assert_allclose(model.probabilities(images), metrics.scores_from_logits(run["logits"], metrics.BINARY),
                             atol=1e-6)
  card = json.loads((out / "model_card.json").read_text())
  test = card["metrics"]["test"]
  assert test["auc"]["estimate"] == pytest.approx(summary["test_auc"])
  assert [c["support"] for c in test["per_class"]] == np.bincount(run["label"][:, 0], minlength=2).tolist()
  assert all(c["auc"]["low"] <= c["auc"]["estimate"] <= c["auc"]["high"] for c in test["per_class"])
  assert card["circuits"] == summary["circuits"] and card["provenance"] == summary["provenance"]
  assert "not a medical device" in (out / "model_card.md").read_text()
  with pytest.raises(ServingError, match="already exists"):
    export.export_run(str(workdir), str(out))


# --- the documentation page -----------------------------------------------------------------------------------------


def doc_blocks(language: str) -> list[str]:
  """The fenced `language` blocks of docs/own_data.md."""
  return re.findall(rf"```{language}\n(.*?)```", (ROOT / "docs" / "own_data.md").read_text(), re.S)


def doc_commands() -> list[list[str]]:
  """The `python -m experiments.*` commands of docs/own_data.md's shell blocks, as argument lists."""
  commands = []
  for block in doc_blocks("bash"):
    for line in block.replace("\\\n", " ").splitlines():
      if line.strip().startswith("python -m experiments."):
        commands.append(shlex.split(line.split("#")[0]))
  return commands


TINY = ["--config.num_epochs=1", "--config.model_options.width=4", "--config.model_options.n_qubits=4",
        "--config.batch_size=8", "--config.eval_batch_size=8", "--config.progress=False"]


@pytest.mark.slow
def test_the_own_data_page_runs_from_a_folder_to_predictions_and_an_exported_model(tmp_path):
  """The page's commands on a small generated folder (two classes told apart by brightness), with the
  training shortened by `TINY` and every path under tmp_path."""
  rng = np.random.default_rng(0)
  for c, name in enumerate(("normal", "pneumonia")):
    write_images(tmp_path / "my_images" / name, np.clip(rng.normal(80 + 90 * c, 30, (20, 24, 24)), 0, 255).astype(np.uint8))
  write_images(tmp_path / "new_images", np.clip(rng.normal(120, 30, (3, 24, 24)), 0, 255).astype(np.uint8))
  places = {"my_images": tmp_path / "my_images", "new_images": tmp_path / "new_images",
            "runs/my_images": tmp_path / "run", "exported/my_images": tmp_path / "exported",
            "predictions.csv": tmp_path / "predictions.csv"}
  commands = doc_commands()
  assert [c[2] for c in commands] == ["experiments.train", "experiments.predict", "experiments.export_model"]
  for command in commands:
    args = [re.sub(r"=(runs/my_images|exported/my_images|my_images|new_images|predictions\.csv)(/?)$",
                   lambda m: f"={places[m.group(1)]}{m.group(2)}", a) for a in command[3:]]
    extra = TINY + [f"--config.tfds_dir={tmp_path / 'tfds'}"] if command[2] == "experiments.train" else []
    result = subprocess.run([sys.executable, "-m", command[2], *args, *extra], cwd=ROOT, capture_output=True,
                            text=True, timeout=600)
    assert result.returncode == 0, (command, result.stderr[-3000:])
  rows = (tmp_path / "predictions.csv").read_text().splitlines()
  assert rows[0] == "path,predicted,p_normal,p_pneumonia,error" and len(rows) == 4
  assert (tmp_path / "exported" / "model_card.md").is_file() and (tmp_path / "exported" / "data_splits.json").is_file()
  namespaces = []
  for block in doc_blocks("python"):  # with this package, and with load_model.py alone
    namespaces.append({"images": np.zeros((2, 64, 64, 1), np.uint8)})
    with pytest.MonkeyPatch.context() as patch:
      patch.syspath_prepend(str(tmp_path / "exported"))
      exec(block.replace("exported/my_images", str(tmp_path / "exported")), namespaces[-1])  # pylint: disable=exec-used
    sys.modules.pop("load_model", None)  # the folder's loader module goes with the folder
  np.testing.assert_allclose(namespaces[0]["probabilities"][:, 1], 1 / (1 + np.exp(-namespaces[1]["logits"][:, 0])),
                             atol=1e-6)
  spec = json.loads((tmp_path / "exported" / "model.json").read_text())
  # 1e-5 is checked on README command 1's run above; here 64 px inputs summed over 4 devices in the run and
  # over one in the artefact differ by a few 1e-6 (6.8e-6 seen)
  assert spec["check"]["max_abs_logit_difference"] < 1e-4 and spec["class_names"] == ["normal", "pneumonia"]
