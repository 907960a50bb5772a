"""A few-minute CPU run of the hybrid ResNet-50 + QCNN on the BreastMNIST copy shipped inside
the package: the README's first command. Same protocol as medmnist.py, 3 epochs, batch 32."""

import ml_collections

from experiments.configs import medmnist


def get_config() -> ml_collections.ConfigDict:
  c = medmnist.get_config()
  c.dataset = "breastmnist"
  c.model = "resnet50_qcnn"
  c.num_epochs = 3
  c.batch_size = 32
  c.eval_batch_size = 64
  c.log_every_steps = 5
  return c
