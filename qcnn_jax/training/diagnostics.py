"""What a training run reports about its parameters: counts, gradient norms by group, how far the
circuit angles moved, the residual gate, a head's saturation and readout range."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from qcnn_jax.models import heads


QUANTUM_TAG = "quantum"


def is_quantum_path(path: tuple) -> bool:
  """True for a circuit parameter: its name (last path entry) starts with "quantum"
  (`quantum_conv`, `quantum_pool`, `quantum_weights`); a quantum head's classical logit
  scale or readout Dense does not count."""
  return bool(path) and str(getattr(path[-1], "key", path[-1])).startswith(QUANTUM_TAG)


def count_params(params) -> tuple[int, int]:
  """(all, quantum) trainable parameter counts of a params pytree."""
  leaves = jax.tree_util.tree_leaves_with_path(params)
  total = sum(int(np.prod(x.shape)) for _, x in leaves)
  quantum = sum(int(np.prod(x.shape)) for p, x in leaves if is_quantum_path(p))
  return total, quantum


def grad_norms(grads) -> dict[str, jax.Array]:
  """Global gradient norms of the circuit parameters and of all others (0 for an empty group)."""
  leaves = jax.tree_util.tree_leaves_with_path(grads)
  norm = lambda group: optax.global_norm(group) if group else jnp.zeros(())
  return {"grad_norm_quantum": norm([g for p, g in leaves if is_quantum_path(p)]),
          "grad_norm_classical": norm([g for p, g in leaves if not is_quantum_path(p)])}


def angle_shift(shifts: list[np.ndarray]) -> dict[str, float]:
  """RMS and largest |change| (radians) of the circuit angles since initialisation; {} without any."""
  if not shifts:
    return {}
  shift = np.concatenate([np.ravel(s) for s in shifts])
  return {"angle_shift_rms": float(np.sqrt(np.mean(shift**2))), "angle_shift_max": float(np.abs(shift).max())}


def residual_gate(params) -> dict[str, float]:
  """{"residual_gate": g} of a residual head (how much its circuit or twin block adds to the linear
  path's logits); {} for models without one."""
  gates = [x for p, x in jax.tree_util.tree_leaves_with_path(params) if heads.is_residual_gate(p)]
  return {"residual_gate": float(np.asarray(gates[0]).reshape(-1)[0])} if gates else {}


def summarize_probe(probe: dict[str, np.ndarray]) -> dict[str, float]:
  """Split-level diagnostics from per-example `heads.probe_stats`: mean saturation, readout range."""
  out = {}
  if "saturated" in probe:
    out["saturated"] = float(np.mean(probe["saturated"]))
  if "readout_min" in probe:
    out["readout_min"], out["readout_max"] = float(np.min(probe["readout_min"])), float(np.max(probe["readout_max"]))
  return out


def quantum_leaves(params) -> list[np.ndarray]:
  """Host copies of the circuit parameters, in tree order."""
  return [np.asarray(x) for p, x in jax.tree_util.tree_leaves_with_path(params) if is_quantum_path(p)]
