"""qcnn-jax: hybrid quantum-classical medical image classification in JAX.

Sub-packages:
  qcnn_jax.data     MedMNIST v2 and Medical MNIST through tensorflow-datasets, input pipeline.
  qcnn_jax.models   Flax ResNets, PennyLane QCNNs and their hybrids (``get_model``).
"""

__version__ = "0.1.0"
