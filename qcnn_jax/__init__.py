"""qcnn-jax: hybrid quantum-classical medical image classification in JAX.

The library:
  qcnn_jax.data        MedMNIST v2 and Medical MNIST through tensorflow-datasets, input pipeline,
                       frozen-feature files, image corruptions.
  qcnn_jax.models      Flax ResNets, QCNN circuits and their hybrids (``get_model``).
  qcnn_jax.training    train state, optimiser, end-to-end and frozen-feature loops, checkpoints.
  qcnn_jax.evaluation  metrics, paired statistics, reports, provenance.
  qcnn_jax.serving     predictions on image files, exported models (jax.export) with model cards.
Studies on top of it (never imported by the library):
  qcnn_jax.studies     grids, head studies, data efficiency, robustness, export, published numbers.
"""

__version__ = "0.1.0"


def load_model(path):
  """The model that `python -m experiments.export_model` wrote into folder `path`: `.apply(images)`
  gives logits, `.probabilities(images)` per-class probabilities (`qcnn_jax.serving.artifact.Model`)."""
  from qcnn_jax.serving import artifact  # pylint: disable=g-import-not-at-top  # jax only when used
  return artifact.load_model(path)
