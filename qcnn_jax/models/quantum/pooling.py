"""Controlled-rotation pooling (Hur, Kim & Park 2022, ``Pooling_ansatz1`` in takh04/QCNN unitary.py)."""

from typing import Sequence

import pennylane as qml

from qcnn_jax.models.quantum.units import Unit


def cr_pool(params, wires: Sequence[int]) -> None:
  """Pools ``wires`` = (control, target): CRZ(θ0), X(control), CRX(θ1); ``params``: (2,) radians.

  The control qubit is never used afterwards (it is traced out / discarded), so the information
  its state carried reaches the target only through the two controlled rotations.
  """
  control, target = wires
  qml.CRZ(params[0], wires=[control, target])
  qml.PauliX(wires=control)
  qml.CRX(params[1], wires=[control, target])


POOL_UNIT = Unit(cr_pool, 2)
