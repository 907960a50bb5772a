"""End to end on BreastMNIST at CPU scale: ResNet-50, the hybrid and its classical twin on the
width-16 ResNet-50 of grid_heads.py, full MedMNIST v2 protocol (medmnist.py: 100 epochs, batch
128, Adam 1e-3, x0.1 at 50% and 75%, best-validation-AUC checkpoint), 3 seeds.

A full-width ResNet-50 run takes 1.2-3 h on 2 CPU cores; at width 16 one takes 15-25 min, so the
three models x 3 seeds fit a session or two. Seed 0 is the model set of the MedMNIST-C study
(results/robustness/breast16/).

  python -m experiments.grid --config=experiments/configs/grid_breast16.py \
      --workdir=runs/grid_breast16 --records=results/grid_breast16/runs
"""

import ml_collections

from experiments.configs import grid_heads


def get_config() -> ml_collections.ConfigDict:
  """grid_heads.py's base and width-16 rows, without its learning-rate and augmentation variants."""
  c = grid_heads.get_config()
  c.name = f"BreastMNIST (28 px) end to end on a width-{grid_heads.WIDTH} ResNet-50, full MedMNIST v2 protocol"
  for variant in ("resnet50_qcnn_qlr10x", "resnet50_qcnn_augment"):
    del c.models[variant]
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"), ("resnet50_qcnn", "resnet50"),
                   ("resnet50_mlp", "resnet50"))
  return c
