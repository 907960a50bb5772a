"""Heads on frozen features, families chosen the same way (issue 44): in-path quantum heads, their
classical twins, the same circuit without its entangling gates, and linear heads, each family
choosing its design from one menu on validation; rates from one grid, extended past any edge choice.

  python -m experiments.train_heads --config=experiments/configs/heads_families.py --workdir=runs/heads_families

What differs from heads_fair.py (the width-16 protocol, kept as the record in results/frozen_heads_fair/):
  * Menu: every non-linear family has all 2 × 2 × 2 designs "<features>_<norm>_<scale>": features
    "std" (training-split standardised) or "raw"; LayerNorm "after" the bottleneck Dense or "before"
    it on the features; angle scale tanh·π/2 ("pi2") or tanh·π ("pi"). Quantum design "q_<menu>",
    its twin "q_<menu>_twin", its control "q_<menu>_control" (kind "unentangled": the same circuit,
    encoding, angle scale and readout without the multi-qubit gates; 45 of the circuit's 51 angles at
    8 qubits, the pooling angles acting only through controlled gates). Linear: "linear_std", "linear_raw".
  * Selection (`studies.families.select`): per family, the highest mean validation AUC over seeds;
    on a saturated set (every head ≥ 0.99) the lowest mean validation loss; ties to menu order.
    The headline (`families = True`) compares family best with family best, with two-level
    intervals (`stats.two_level_bootstrap`) and Holm-adjusted decisions; design vs own twin / own
    control is the second table.
  * Twins at full rank: hidden width ≥ number of classes (`twin_full_rank`); parameter counts in the
    design table beside.
  * Reported epoch: highest validation AUC, except on the SATURATED sets below (lowest validation
    loss, `select_epoch_by`), stated before any run of this study.
  * Rates: the 5 × 5 grid of heads_fair.py for every family; an axis is extended past an edge choice
    (3e-2 -> 1e-1 -> 3e-1 -> 1, 3e-4 -> 1e-4 -> 3e-5 -> 1e-5) until the choice is interior or the
    bound [1e-5, 1] is reached; lr_search.json keeps every point.

Feature sets: the full-width ResNet-50 backbones of grid_backbones.py (MedMNIST v2 recipe):
"<dataset>" is backbone seed 0, "<dataset>@r50s<k>" seed k, each extracted with
`python -m experiments.extract_features --workdir=<grid_backbones run> --out=features/r50/<dataset>_seed<k>.npz`.
Medical MNIST (features of grid_hassan_cpu.py's resnet50 seed 0: full width, 64 px, 2 epochs) is
the saturated sanity row, labelled so in the report.
"""

import itertools
import math

import ml_collections

from experiments.configs import heads_fair

FEATURES = {"std": {}, "raw": {"standardize": False}}
NORM = {"after": {"norm": False, "bottleneck_norm": True}, "before": {"norm": True, "bottleneck_norm": False}}
SCALE = {"pi2": math.pi / 2, "pi": math.pi}
BOUNDS = (1e-5, 1.0)  # no extension below 1e-5 (nothing moves in 100 epochs) or above 1 (Adam steps of ~1)
BACKBONE_SEEDS = {"breastmnist": 3, "retinamnist": 3, "pneumoniamnist": 1, "medical_mnist": 1}
# Sets whose validation AUC is saturated (every head ≥ 0.99 in the width-16 study: 0.994-0.996 on
# PneumoniaMNIST, 1.0 on Medical MNIST): each run's reported epoch is its lowest validation loss.
SATURATED = ("pneumoniamnist", "medical_mnist")


def menu() -> dict[str, dict]:
  """Design name -> {"head", "overrides"} of the quantum and control families and the linear heads
  (twins are added by `frozen_heads.designs`)."""
  out = {}
  for (feat, overrides), (place, norm), (scale, angle) in itertools.product(FEATURES.items(), NORM.items(),
                                                                           SCALE.items()):
    head = {**heads_fair.IN_PATH, **norm, "angle_scale": angle}
    out[f"q_{feat}_{place}_{scale}"] = {"head": head, "overrides": overrides}
    out[f"q_{feat}_{place}_{scale}_control"] = {"head": {**head, "kind": "unentangled"}, "overrides": overrides}
  for feat, overrides in FEATURES.items():
    out[f"linear_{feat}"] = {"head": {"kind": "linear", "calibrate": True}, "overrides": overrides}
  return out


def get_config() -> ml_collections.ConfigDict:
  c = heads_fair.get_config()
  c.name = "Heads on frozen features, families chosen the same way: quantum, twin, control and linear family bests"
  c.features = ml_collections.ConfigDict({
      (dataset if k == 0 else f"{dataset}@r50s{k}"): f"features/r50/{dataset}_seed{k}.npz"
      for dataset, n in BACKBONE_SEEDS.items() for k in range(n)})
  c.base.head.twin_full_rank = True
  c.designs = ml_collections.ConfigDict(menu())
  c.lr_search = ml_collections.ConfigDict({
      "block": heads_fair.RATES, "head": heads_fair.RATES, "seeds": (0, 1, 2), "bounds": BOUNDS,
      "on": {f"{d}@r50s{k}": d for d, n in BACKBONE_SEEDS.items() for k in range(1, n)}})
  c.families = True
  for dataset in SATURATED:
    c.dataset_overrides[dataset] = {**c.dataset_overrides.get(dataset, ml_collections.ConfigDict()).to_dict(),
                                    "select_epoch_by": "loss"}
  return c
