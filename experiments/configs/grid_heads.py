"""Why does the quantum head not help? Heads on a narrow ResNet-50 (base width 16, 1/16 of the
FLOPs) on BreastMNIST, full MedMNIST v2 protocol otherwise, 3 seeds: CPU-sized controls for the
full-width grid (grid_medmnist.py).

Rows: the plain linear head (`resnet50`), the dressed quantum head (`resnet50_qcnn`), its
parameter-matched classical control (`resnet50_mlp`), the quantum head with a 10x learning rate
for the circuit angles, and the quantum head with data augmentation (flip + padded crop).

  python -m experiments.grid --config=experiments/configs/grid_heads.py --workdir=grids/grid_heads
"""

import ml_collections

from experiments.configs import medmnist

WIDTH = 16


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = f"BreastMNIST (28 px): heads on a width-{WIDTH} ResNet-50"
  c.base = medmnist.get_config()
  c.base.checkpoint_every_epochs = 25
  c.datasets = ("breastmnist",)
  c.models = ml_collections.ConfigDict({
      "resnet50": {"width": WIDTH},
      "resnet50_qcnn": {"width": WIDTH},
      "resnet50_mlp": {"width": WIDTH},
      "resnet50_qcnn_qlr10x": {"model": "resnet50_qcnn", "width": WIDTH, "overrides": {"block_learning_rate": 1e-2}},
      "resnet50_qcnn_augment": {"model": "resnet50_qcnn", "width": WIDTH, "overrides": {"preprocess": {"augment": True}}},
  })
  c.seeds = (0, 1, 2)
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"), ("resnet50_qcnn", "resnet50"),
                   ("resnet50_qcnn_qlr10x", "resnet50_qcnn"), ("resnet50_qcnn_augment", "resnet50_qcnn"))
  return c
