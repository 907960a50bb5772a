"""qcnn-jax: hybrid quantum-classical medical image classification in JAX.

The library:
  qcnn_jax.data        MedMNIST v2 and Medical MNIST through tensorflow-datasets, input pipeline,
                       frozen-feature files, image corruptions.
  qcnn_jax.models      Flax ResNets, QCNN circuits and their hybrids (``get_model``).
  qcnn_jax.training    train state, optimiser, end-to-end and frozen-feature loops, checkpoints.
  qcnn_jax.evaluation  metrics, paired statistics, reports, provenance.
Studies on top of it (never imported by the library):
  qcnn_jax.studies     grids, head studies, data efficiency, robustness, export, published numbers.
"""

__version__ = "0.1.0"
