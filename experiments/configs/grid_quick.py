"""README command 1 (quick.py: 15 epochs, width-16 ResNet-50, BreastMNIST, about 3 minutes a run on
2 cores) over 10 seeds: what a new user gets from the first command, run to run, for the hybrid, its
parameter-matched classical twin and the plain ResNet-50 (linear head) under the same recipe, and
the hybrid and twin with their residual gate starting at 1 instead of 0 (`gate_init`).

  python -m experiments.grid --config=experiments/configs/grid_quick.py --workdir=runs/grid_quick \
      --records=results/grid_quick/runs

The committed records are of the earlier protocol: the residual head was then the default, its gated
branch's bias also started at the prior, and only circuit angles (not the twin's block) trained at
the block rate. The rows below name today's residual models (resnet50_*_residual), so a rerun trains
the corrected heads. The in-path default over seeds: grid_quick_inpath.py.
"""

import ml_collections

from experiments.configs import quick


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "README command 1 (quick.py) over seeds: BreastMNIST, width-16 ResNet-50, 15 epochs"
  c.base = quick.get_config()
  c.base.progress = False
  c.datasets = ("breastmnist",)
  c.models = ml_collections.ConfigDict({
      "resnet50_qcnn": {"model": "resnet50_qcnn_residual", "width": 16},
      "resnet50_mlp": {"model": "resnet50_mlp_residual", "width": 16}, "resnet50": {"width": 16},
      # The residual gate starting at 1 instead of 0: the circuit's (the twin's) logits count from the
      # first step, so the optimizer cannot leave the circuit out at the start.
      "resnet50_qcnn_gate1": {"model": "resnet50_qcnn_residual", "width": 16, "gate_init": 1.0},
      "resnet50_mlp_gate1": {"model": "resnet50_mlp_residual", "width": 16, "gate_init": 1.0},
  })
  c.seeds = tuple(range(10))
  c.comparisons = (("resnet50_qcnn", "resnet50_mlp"), ("resnet50_qcnn", "resnet50"),
                   ("resnet50_qcnn_gate1", "resnet50_mlp_gate1"), ("resnet50_qcnn_gate1", "resnet50_qcnn"))
  return c
