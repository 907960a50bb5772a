"""README command 1's recipe (quick.py) against four cheap changes, 5 seeds each, to pick the quick
run's recipe by validation AUC (never test): the same hybrid with random flips and crops, with
30 epochs instead of 15, with a warm-up + cosine schedule instead of the x0.1 steps, and with a
class-balanced loss (BreastMNIST's training split is 73% class 1).

  python -m experiments.grid --config=experiments/configs/grid_quick_recipes.py \
      --workdir=runs/grid_quick_recipes --records=results/grid_quick_recipes/runs

The `resnet50_qcnn` row is quick.py's recipe before this comparison (15 epochs, x0.1 steps, no
augmentation, unweighted loss; its records are grid_quick's seeds of then), pinned here so that the
rows keep their meaning whatever quick.py becomes.
"""

import ml_collections

from experiments.configs import grid_quick


def get_config() -> ml_collections.ConfigDict:
  c = grid_quick.get_config()
  c.name = "README command 1 (quick.py): recipe changes over 5 seeds, chosen by validation AUC"
  c.base.update({"num_epochs": 15, "schedule": "multistep", "class_weights": None})
  c.base.preprocess.augment = False
  c.seeds = tuple(range(5))
  hybrid = {"model": "resnet50_qcnn", "width": 16}
  c.models = ml_collections.ConfigDict({
      "resnet50_qcnn": {"width": 16},
      "resnet50_qcnn_augment": dict(hybrid, overrides={"preprocess": {"augment": True}}),
      "resnet50_qcnn_e30": dict(hybrid, overrides={"num_epochs": 30}),
      "resnet50_qcnn_cosine": dict(hybrid, overrides={"schedule": "warmup_cosine"}),
      "resnet50_qcnn_balanced": dict(hybrid, overrides={"class_weights": "balanced"}),
  })
  c.comparisons = tuple(("resnet50_qcnn_" + r, "resnet50_qcnn") for r in ("augment", "e30", "cosine", "balanced"))
  return c
