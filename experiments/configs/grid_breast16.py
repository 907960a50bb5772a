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

from experiments.configs import grid_heads, medmnist


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = f"BreastMNIST (28 px) end to end on a width-{grid_heads.WIDTH} ResNet-50, full MedMNIST v2 protocol"
  c.base = medmnist.get_config()
  c.base.checkpoint_every_epochs = 25
  c.datasets = ("breastmnist",)
  c.models = ml_collections.ConfigDict({m: {"width": grid_heads.WIDTH}
                                        for m in ("resnet50", "resnet50_qcnn", "resnet50_mlp")})
  c.seeds = (0, 1, 2)
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"), ("resnet50_qcnn", "resnet50"),
                   ("resnet50_mlp", "resnet50"))
  c.dataset_overrides = ml_collections.ConfigDict()
  c.bootstrap = ml_collections.ConfigDict({"num_resamples": 10_000, "confidence": 0.95, "seed": 0})
  return c
