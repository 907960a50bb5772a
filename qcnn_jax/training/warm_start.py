"""Warm start: a model's fresh variables with the trained backbone (and linear head) of another run."""

import os

import jax
import jax.numpy as jnp
import numpy as np

from qcnn_jax.evaluation import reports
from qcnn_jax.training import checkpointing


def backbone_variables(model_name: str, variables: dict) -> tuple[dict, tuple | None]:
  """(backbone variables, (fc kernel, fc bias) or None) of a trained model's variables."""
  params, stats = variables["params"], variables.get("batch_stats", {})
  if model_name in ("resnet18", "resnet50"):
    fc = params["fc"]
    return ({"params": {k: v for k, v in params.items() if k != "fc"}, "batch_stats": stats},
            (np.asarray(fc["kernel"]), np.asarray(fc["bias"])))
  return {"params": params["backbone"], "batch_stats": stats["backbone"]}, None


def warm_start(variables: dict, model: str, workdir: str) -> tuple[dict, list[str]]:
  """Fresh `variables` of `model` with the trained backbone of the run in `workdir` (best checkpoint).

  Fine-tunes a hybrid from a classical run (`--config.init_from`): the ResNet-50 backbone (params and
  BatchNorm statistics) is copied; when the source is a plain ResNet and the target's head has a
  linear path (the residual head, or a plain ResNet), its final layer is copied too, so a residual
  hybrid (gate g = 0) starts as exactly the source model. The circuit starts fresh.

  Returns:
    (variables, names of the copied parts).

  Raises:
    FileNotFoundError: `workdir` holds no run or no checkpoint.
    ValueError: the source's backbone does not fit `model` (other width, stem or architecture).
  """
  config_path = os.path.join(workdir, checkpointing.CONFIG_FILENAME)
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"init_from={workdir} holds no run ({checkpointing.CONFIG_FILENAME} missing)")
  source = reports.read_json(config_path)["model"]
  with checkpointing.RunCheckpoints(workdir) as ckpts:
    restored = ckpts.restore_best(None) or ckpts.restore_latest(None)
  if restored is None:
    raise FileNotFoundError(f"init_from={workdir} holds no checkpoint; train it first.")
  state = restored[0]
  trained, fc = backbone_variables(source, {"params": state["params"], "batch_stats": state.get("batch_stats", {})})
  params, stats = dict(variables["params"]), dict(variables.get("batch_stats", {}))
  plain = model in ("resnet18", "resnet50")
  if plain:
    new_params, new_stats = dict(trained["params"]), dict(trained["batch_stats"])
    new_params["fc"] = params["fc"]
  elif "backbone" in params:
    new_params, new_stats = {**params, "backbone": trained["params"]}, {**stats, "backbone": trained["batch_stats"]}
  else:
    raise ValueError(f"init_from: model {model!r} has no ResNet backbone to initialise")
  copied = ["backbone"]
  head = new_params["fc"] if plain else new_params["head"].get("linear")
  if fc is not None and head is not None:
    linear = {"kernel": jnp.asarray(fc[0]), "bias": jnp.asarray(fc[1])}
    if plain:
      new_params["fc"] = linear
    else:
      new_params["head"] = {**new_params["head"], "linear": linear}
    copied.append("final linear layer")
  new = {**variables, "params": new_params, "batch_stats": new_stats}
  expected = jax.tree.map(lambda x: (x.shape, x.dtype), {"params": params, "batch_stats": stats})
  got = jax.tree.map(lambda x: (np.shape(x), jnp.asarray(x).dtype), {"params": new_params, "batch_stats": new_stats})
  if expected != got:
    raise ValueError(f"init_from={workdir}: its {source} backbone does not fit {model} with this config's options "
                     "(width, stem and number of classes must match).")
  return jax.tree.map(jnp.asarray, new), copied

