r"""Seconds to train S seeds of a head on frozen features: one run after another vs one vmapped program.

  python -m experiments.benchmarks.heads --heads=linear,mlp,qcnn --seeds=1,10,32 --n_train=546,4708 \
      --epochs=100 --out=heads.json

Synthetic binary features (D = 2048, like ResNet-50's) of BreastMNIST's (546) and PneumoniaMNIST's
(4,708) training-set sizes, validation and test a tenth of that. Heads: `linear`, `qcnn` (the
calibrated 8-qubit design of experiments/configs/heads.py) and `mlp` (its classical twin).
`sequential` trains the seeds one by one, each with a fresh compile (`jax.clear_caches()`: a grid
starts one process per run); `vmapped` trains them as one program (`frozen.train_seeds`).
One JSON row per measurement: head, n_train, seeds, mode, epochs, wall_s (everything: compile,
training, evaluation, selection), compile_s (of the training and evaluation programs, summed over
runs), and for vmapped rows measured beside a sequential one, speedup and max_logit_diff (largest
difference of any seed's test logits between the two modes).
"""

import time

import jax
import numpy as np
from absl import app, flags

from experiments import benchmarks
from experiments.configs import heads as heads_config
from qcnn_jax.data import features
from qcnn_jax.training import frozen

flags.DEFINE_list("heads", ["linear", "mlp", "qcnn"], "Heads to time.")
flags.DEFINE_list("seeds", ["1", "10", "32"], "Seed counts S.")
flags.DEFINE_list("n_train", ["546", "4708"], "Training-set sizes.")
flags.DEFINE_list("modes", ["sequential", "vmapped"], "sequential and/or vmapped.")
flags.DEFINE_integer("epochs", 100, "Epochs per run.")
flags.DEFINE_integer("dim", 2048, "Feature dimension.")
flags.DEFINE_string("out", None, "JSON-lines output file.")
FLAGS = flags.FLAGS

HEADS = {"linear": {"kind": "linear", "calibrate": True},
         "qcnn": heads_config.CALIBRATED,
         "mlp": {**heads_config.CALIBRATED, "kind": "classical"}}


def synthetic_features(n_train: int, dim: int) -> features.FeatureSet:
  """Binary features: class 1 adds 0.3 to a random tenth of the (ReLU-like, non-negative) features."""
  rng = np.random.default_rng(0)
  signal = rng.random(dim) < 0.1
  parts = {}
  for split, n in (("train", n_train), ("val", max(16, n_train // 10)), ("test", max(16, n_train // 10))):
    labels = rng.integers(0, 2, (n, 1))
    parts[split] = (np.maximum(rng.normal(0.5, 0.5, (n, dim)) + 0.3 * signal * labels, 0).astype(np.float32), labels)
  meta = {"dataset": "breastmnist", "task": "binary-class", "label_names": ["0", "1"], "num_outputs": 1, "size": 28}
  return features.FeatureSet({s: p[0] for s, p in parts.items()}, {s: p[1] for s, p in parts.items()},
                             {s: np.arange(len(p[0])) for s, p in parts.items()}, meta)


def run(config, fs, seeds: list[int], mode: str) -> tuple[dict, list]:
  """Trains `seeds` in `mode`; returns the timing row fields and the per-seed results."""
  start = time.time()
  if mode == "vmapped":
    results = frozen.train_seeds(config, fs, seeds)
    compile_s = results[0].timing["compile_s"]
  else:
    results = []
    for seed in seeds:
      jax.clear_caches()
      results += frozen.train_seeds(config, fs, [seed])
    compile_s = sum(r.timing["compile_s"] for r in results)
  return {"wall_s": time.time() - start, "compile_s": compile_s}, results


def main(argv):
  del argv
  for n_train in map(int, FLAGS.n_train):
    fs = synthetic_features(n_train, FLAGS.dim)
    for head in FLAGS.heads:
      config = heads_config.get_config().base
      config.unlock()
      config.head.update(HEADS[head])
      config.num_epochs, config.design = FLAGS.epochs, head
      for num_seeds in map(int, FLAGS.seeds):
        seeds = list(range(num_seeds))
        measured = {}
        for mode in FLAGS.modes:
          timing, results = run(config, fs, seeds, mode)
          row = {"head": head, "n_train": n_train, "seeds": num_seeds, "mode": mode, "epochs": FLAGS.epochs,
                 **timing}
          measured[mode] = (timing, results)
          if mode == "vmapped" and "sequential" in measured:
            sequential, alone = measured["sequential"]
            row["speedup"] = sequential["wall_s"] / timing["wall_s"]
            row["max_logit_diff"] = float(max(np.abs(a.logits["test"] - b.logits["test"]).max()
                                              for a, b in zip(alone, results)))
          print(row, flush=True)
          benchmarks.write_rows(FLAGS.out, [row])


if __name__ == "__main__":
  app.run(main)
