r"""Input pipeline throughput: grain over the TFDS data source (record by record, and
materialised in memory, the training default) vs a plain in-memory numpy loop.

  python -m experiments.benchmarks.pipeline --dataset=breastmnist --out=pipeline.json

Each row: impl, dataset, batch, images_per_s (one full epoch of training batches, median of
--repeats), with the same preprocessing (normalise, grayscale→RGB, optional resize/augment).
"""

import time

import numpy as np
from absl import app, flags

from experiments import benchmarks

from qcnn_jax.data import load_dataset, pipeline

flags.DEFINE_string("dataset", "breastmnist", "Dataset name.")
flags.DEFINE_string("data_dir", None, "Folder with the source files.")
flags.DEFINE_integer("batch", 128, "Batch size.")
flags.DEFINE_integer("resize", None, "Optional resize (px).")
flags.DEFINE_bool("augment", False, "Random flip + crop.")
flags.DEFINE_integer("repeats", 3, "Epochs timed per implementation.")
flags.DEFINE_string("out", None, "JSON file for the rows.")
FLAGS = flags.FLAGS


def numpy_epoch(images: np.ndarray, labels: np.ndarray, batch: int, seed: int, prep: pipeline.Preprocess):
  """The baseline: permute in-memory arrays and normalise each batch (no augmentation/resize)."""
  order = np.random.default_rng(seed).permutation(len(images))
  for start in range(0, len(order) - batch + 1, batch):
    idx = order[start:start + batch]
    yield {"image": pipeline.normalise(images[idx], prep), "label": labels[idx]}


def time_epochs(make_epoch, repeats: int) -> float:
  """Median images/s over `repeats` epochs."""
  rates = []
  for epoch in range(repeats):
    start, n = time.perf_counter(), 0
    for batch in make_epoch(epoch):
      n += len(batch["label"])
    rates.append(n / (time.perf_counter() - start))
  return float(np.median(rates))


def main(argv):
  del argv
  ds = load_dataset(FLAGS.dataset, data_dir=FLAGS.data_dir)
  source = ds.splits["train"]
  prep = pipeline.Preprocess(channels=3, resize=FLAGS.resize, augment=FLAGS.augment)
  arrays = pipeline.materialise(source)
  rows = []
  for name, split in (("records", source), ("in_memory", arrays)):
    for threads in (0, 2):
      rate = time_epochs(lambda e, s=split, t=threads: pipeline.train_batches(
          s, batch_size=FLAGS.batch, seed=0, epoch=e, prep=prep, num_threads=t), FLAGS.repeats)
      rows.append({"impl": f"grain_{name}_threads{threads}", "images_per_s": rate})
  if not FLAGS.resize and not FLAGS.augment:
    rows.append({"impl": "numpy_loop_in_memory", "images_per_s": time_epochs(
        lambda e: numpy_epoch(arrays.image, arrays.label, FLAGS.batch, e, prep), FLAGS.repeats)})
  for row in rows:
    row.update(dataset=FLAGS.dataset, batch=FLAGS.batch, resize=FLAGS.resize, augment=FLAGS.augment)
    print(f"{row['impl']:>18}: {row['images_per_s']:10.0f} images/s")
    benchmarks.write_rows(FLAGS.out, [row])


if __name__ == "__main__":
  app.run(main)
