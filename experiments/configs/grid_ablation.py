"""Ablation over QCNN choices on BreastMNIST (full MedMNIST v2 protocol, 3 seeds): convolution unit
(U_SU4, U_SO4, U_15, U_TTN), qubit count (4, 8, 12) and encoding (angle vs dense angle).

The QCNN is trained alone (`qcnn` model, `qcnn_input="pooled"`: the image average-pooled to the
encoding's features), so nothing but the circuit changes between rows and each run takes seconds
to minutes on a CPU. The reference row is `q8_su4_angle` (8 qubits, SU(4) units, RY angle encoding).

  python -m experiments.grid --config=experiments/configs/grid_ablation.py --workdir=grids/grid_ablation
"""

import ml_collections

from experiments.configs import medmnist

REFERENCE = "q8_su4_angle"


def variant(n_qubits: int = 8, conv_unit: str = "su4", encoding: str = "angle_y") -> dict:
  return {"model": "qcnn", "qcnn_input": "pooled", "n_qubits": n_qubits, "conv_unit": conv_unit, "encoding": encoding}


def get_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.name = "BreastMNIST (28 px): ablation over QCNN choices (QCNN alone)"
  c.base = medmnist.get_config()
  c.base.checkpoint_every_epochs = 25
  c.datasets = ("breastmnist",)
  c.models = ml_collections.ConfigDict({
      REFERENCE: variant(),
      "q8_so4_angle": variant(conv_unit="so4"),
      "q8_u15_angle": variant(conv_unit="u15"),
      "q8_ttn_angle": variant(conv_unit="ttn"),
      "q4_su4_angle": variant(n_qubits=4),
      "q12_su4_angle": variant(n_qubits=12),
      "q8_su4_dense": variant(encoding="dense_angle"),
  })
  c.seeds = (0, 1, 2)
  c.comparisons = tuple((name, REFERENCE) for name in c.models.keys() if name != REFERENCE)
  return c
