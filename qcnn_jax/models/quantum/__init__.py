"""Quantum models: QCNN circuits (Hur, Kim & Park 2022) and a quanvolutional front-end."""

from qcnn_jax.models.quantum.encodings import (
    ENCODINGS,
    amplitude_encoding,
    angle_encoding,
    dense_angle_encoding,
    encode,
    n_features,
    normalized_amplitudes,
)
from qcnn_jax.models.quantum.execution import EXECUTIONS, NOISE_CHANNELS, Noise, layer_args, qcnn_apply, sample_fn
from qcnn_jax.models.quantum.interleaved import qcnn_statevector  # today's engine (execution="statevector")
from qcnn_jax.models.quantum.layer import QCNN, QCNNHead, head_readout
from qcnn_jax.models.quantum.pooling import POOL_UNIT, cr_pool
from qcnn_jax.models.quantum.qcnn import (
    READOUTS,
    QCNNSpec,
    layout,
    n_params,
    param_shapes,
    qcnn_circuit,
    readout_wires,
    resources,
)
from qcnn_jax.models.quantum.quanv import Quanvolution
from qcnn_jax.models.quantum.trainability import gradient_variance
from qcnn_jax.models.quantum.units import CONV_UNITS, Unit

__all__ = [
    "CONV_UNITS", "ENCODINGS", "EXECUTIONS", "NOISE_CHANNELS", "POOL_UNIT", "READOUTS", "Noise", "QCNN",
    "QCNNHead", "QCNNSpec", "Quanvolution", "Unit", "amplitude_encoding", "angle_encoding",
    "cr_pool", "dense_angle_encoding", "encode", "gradient_variance", "head_readout", "layer_args", "layout", "n_features",
    "n_params", "normalized_amplitudes", "param_shapes", "qcnn_apply", "qcnn_circuit", "qcnn_statevector",
    "readout_wires", "resources", "sample_fn",
]
