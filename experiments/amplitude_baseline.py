r"""Classical baselines on the QCNN-alone model's own input: Medical MNIST downsampled to 16x16 and
L2-normalised (the 256 amplitudes the 8-qubit QCNN encodes), classified by logistic regression on
k PCA components (k*6 + 6 trained parameters, about the QCNN's 34 at k = 4-5) or on all pixels.

  python -m experiments.amplitude_baseline --data=/path/to/medical_mnist_64.npz \
      --out=results/grid_hassan_cpu/amplitude_baseline.json
"""

import json
import time

from absl import app, flags
import numpy as np
from PIL import Image
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression

from qcnn_jax.data import medical_mnist

flags.DEFINE_string("data", None, "Medical MNIST .npz or JPEG tree.", required=True)
flags.DEFINE_list("components", ["4", "5", "0"], "PCA components (0 = all pixels).")
flags.DEFINE_integer("side", 16, "Downsampled side (16 = 2**8 amplitudes).")
flags.DEFINE_string("out", None, "JSON file for the rows.")
FLAGS = flags.FLAGS


def amplitudes(images: np.ndarray, side: int) -> np.ndarray:
  """(N, side*side) bilinear-downsampled images, each row L2-normalised."""
  x = np.stack([np.asarray(Image.fromarray(im).resize((side, side), Image.BILINEAR), np.float32) for im in images])
  x = x.reshape(len(x), -1)
  return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-9)


def main(argv):
  del argv
  images, labels = medical_mnist.load_arrays(FLAGS.data)
  split = medical_mnist.stratified_split(labels, medical_mnist.SPLIT_SCHEMES["80_10_10"], 0)
  train, test = amplitudes(images[split["train"]], FLAGS.side), amplitudes(images[split["test"]], FLAGS.side)
  rows = []
  for k in (int(c) for c in FLAGS.components):
    start = time.time()
    pca = PCA(k, random_state=0).fit(train) if k else None
    a, b = (pca.transform(train), pca.transform(test)) if pca else (train, test)
    clf = LogisticRegression(max_iter=2000).fit(a, labels[split["train"]])
    rows.append({"inputs": f"{k} PCA components" if k else f"{train.shape[1]} pixels",
                 "trained_params": int(clf.coef_.size + clf.intercept_.size),
                 "test_acc": float(clf.score(b, labels[split["test"]])), "seconds": time.time() - start})
    print(rows[-1])
  if FLAGS.out:
    with open(FLAGS.out, "w") as f:
      json.dump(rows, f, indent=1)


if __name__ == "__main__":
  app.run(main)
