"""A few-minute CPU run of the hybrid ResNet-50 + QCNN on the BreastMNIST copy shipped inside
the package: the README's first command.

Same protocol as medmnist.py (Adam 1e-3, x0.1 at 50% and 75%, best-validation-AUC checkpoint)
but 15 epochs, batch 32, and a quarter-width ResNet-50 (base width 16: the same bottleneck
architecture with 1.5 M instead of 23.5 M parameters), so it ends in about 3 minutes on 2 cores.
The hybrid's default head puts its circuit in the prediction path (features -> Dense(8) -> LayerNorm
-> tanh·π -> QCNN -> a<Z> + b); the compared block (the circuit, or the twin's Dense-tanh-Dense in
resnet50_mlp) trains at 1e-2, everything else at 1e-3.
"""

import ml_collections

from experiments.configs import medmnist


def get_config() -> ml_collections.ConfigDict:
  c = medmnist.get_config()
  c.dataset = "breastmnist"
  c.model = "resnet50_qcnn"
  c.model_options.width = 16
  c.num_epochs = 15
  c.batch_size = 32
  c.eval_batch_size = 64
  c.log_every_steps = 5
  c.block_learning_rate = 1e-2
  return c
