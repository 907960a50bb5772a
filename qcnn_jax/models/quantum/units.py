"""Two-qubit convolution units of Hur, Kim & Park (2022).

Reference: T. Hur, L. Kim, D. K. Park, "Quantum convolutional neural network for classical data
classification", Quantum Mach. Intell. 4:3 (2022), Fig. 2; gate sequences follow their code,
github.com/takh04/QCNN, ``Final_QCNN/unitary.py`` (U_TTN, U_5, U_6, U_9, U_13, U_14, U_15, U_SO4,
U_SU4). Each unit takes ``params`` of shape (n_params,) in radians and ``wires`` = (a, b).
"""

from typing import Callable, NamedTuple, Sequence

import pennylane as qml


def u_ttn(params, wires: Sequence[int]) -> None:
  """U_TTN, 2 params: RY on both qubits, CNOT(a->b)."""
  qml.RY(params[0], wires=wires[0])
  qml.RY(params[1], wires=wires[1])
  qml.CNOT(wires=[wires[0], wires[1]])


def _rotations_controlled_pair(params, wires, controlled) -> None:
  """Shared body of U_5/U_6: RX, RZ layers around controlled rotations b->a then a->b."""
  qml.RX(params[0], wires=wires[0])
  qml.RX(params[1], wires=wires[1])
  qml.RZ(params[2], wires=wires[0])
  qml.RZ(params[3], wires=wires[1])
  controlled(params[4], wires=[wires[1], wires[0]])
  controlled(params[5], wires=[wires[0], wires[1]])
  qml.RX(params[6], wires=wires[0])
  qml.RX(params[7], wires=wires[1])
  qml.RZ(params[8], wires=wires[0])
  qml.RZ(params[9], wires=wires[1])


def u_5(params, wires: Sequence[int]) -> None:
  """U_5, 10 params: RX, RZ, CRZ(b->a), CRZ(a->b), RX, RZ."""
  _rotations_controlled_pair(params, wires, qml.CRZ)


def u_6(params, wires: Sequence[int]) -> None:
  """U_6, 10 params: RX, RZ, CRX(b->a), CRX(a->b), RX, RZ."""
  _rotations_controlled_pair(params, wires, qml.CRX)


def u_9(params, wires: Sequence[int]) -> None:
  """U_9, 2 params: H on both, CZ, RX on both."""
  qml.Hadamard(wires=wires[0])
  qml.Hadamard(wires=wires[1])
  qml.CZ(wires=[wires[0], wires[1]])
  qml.RX(params[0], wires=wires[0])
  qml.RX(params[1], wires=wires[1])


def _ry_controlled_pair(params, wires, controlled) -> None:
  """Shared body of U_13/U_14: RY, controlled(b->a), RY, controlled(a->b)."""
  qml.RY(params[0], wires=wires[0])
  qml.RY(params[1], wires=wires[1])
  controlled(params[2], wires=[wires[1], wires[0]])
  qml.RY(params[3], wires=wires[0])
  qml.RY(params[4], wires=wires[1])
  controlled(params[5], wires=[wires[0], wires[1]])


def u_13(params, wires: Sequence[int]) -> None:
  """U_13, 6 params: RY, CRZ(b->a), RY, CRZ(a->b)."""
  _ry_controlled_pair(params, wires, qml.CRZ)


def u_14(params, wires: Sequence[int]) -> None:
  """U_14, 6 params: RY, CRX(b->a), RY, CRX(a->b)."""
  _ry_controlled_pair(params, wires, qml.CRX)


def u_15(params, wires: Sequence[int]) -> None:
  """U_15, 4 params: RY, CNOT(b->a), RY, CNOT(a->b)."""
  qml.RY(params[0], wires=wires[0])
  qml.RY(params[1], wires=wires[1])
  qml.CNOT(wires=[wires[1], wires[0]])
  qml.RY(params[2], wires=wires[0])
  qml.RY(params[3], wires=wires[1])
  qml.CNOT(wires=[wires[0], wires[1]])


def u_so4(params, wires: Sequence[int]) -> None:
  """U_SO4, 6 params: RY, CNOT(a->b), RY, CNOT(a->b), RY."""
  qml.RY(params[0], wires=wires[0])
  qml.RY(params[1], wires=wires[1])
  qml.CNOT(wires=[wires[0], wires[1]])
  qml.RY(params[2], wires=wires[0])
  qml.RY(params[3], wires=wires[1])
  qml.CNOT(wires=[wires[0], wires[1]])
  qml.RY(params[4], wires=wires[0])
  qml.RY(params[5], wires=wires[1])


def u_su4(params, wires: Sequence[int]) -> None:
  """U_SU4, 15 params: U3 x2, CNOT(a->b), RY(a) RZ(b), CNOT(b->a), RY(a), CNOT(a->b), U3 x2."""
  qml.U3(params[0], params[1], params[2], wires=wires[0])
  qml.U3(params[3], params[4], params[5], wires=wires[1])
  qml.CNOT(wires=[wires[0], wires[1]])
  qml.RY(params[6], wires=wires[0])
  qml.RZ(params[7], wires=wires[1])
  qml.CNOT(wires=[wires[1], wires[0]])
  qml.RY(params[8], wires=wires[0])
  qml.CNOT(wires=[wires[0], wires[1]])
  qml.U3(params[9], params[10], params[11], wires=wires[0])
  qml.U3(params[12], params[13], params[14], wires=wires[1])


class Unit(NamedTuple):
  """A two-qubit block: its quantum function ``fn(params, wires)`` and parameter count."""

  fn: Callable
  n_params: int


CONV_UNITS: dict[str, Unit] = {
    "ttn": Unit(u_ttn, 2),
    "u5": Unit(u_5, 10),
    "u6": Unit(u_6, 10),
    "u9": Unit(u_9, 2),
    "u13": Unit(u_13, 6),
    "u14": Unit(u_14, 6),
    "u15": Unit(u_15, 4),
    "so4": Unit(u_so4, 6),
    "su4": Unit(u_su4, 15),
}
