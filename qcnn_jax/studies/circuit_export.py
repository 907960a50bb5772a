"""A trained run's circuit for one input, as OpenQASM with its readout and resources.

  export_run(workdir, split="test", index=0, out="circuit.qasm")

writes `out` (OpenQASM 2.0, or 3 with version="qasm3") and `out + ".json"` (readout kind, wires
and values in float64, resources, and which run, checkpoint, split, example and circuit it is).
"""

import os

import jax
import numpy as np

from qcnn_jax.evaluation import provenance, reports
from qcnn_jax.training import train
from qcnn_jax.data import pipeline
from qcnn_jax.models.quantum import export


def export_run(workdir: str, split: str = "test", index: int = 0, out: str = "circuit.qasm",
               version: str = "qasm2", block: int = 0) -> dict:
  """Exports circuit `block` of the run's reported checkpoint for the example with official `index`
  of `split`; returns the description written beside it."""
  trainer, state, meta, selected = train.load_run(workdir)
  config = trainer.config
  source = trainer.split(split)
  positions = np.flatnonzero(pipeline.column(source, "index") == index)
  if not len(positions):
    raise train.ConfigError(f"{split} has no example with index {index} (it has {len(source)} examples, 0..{len(source) - 1})")
  record = pipeline.gather(source, positions[:1])
  circuits = trainer.circuits(jax.device_get({"params": state.params, "batch_stats": state.batch_stats}),
                              record["image"])
  if not circuits:
    raise train.ConfigError(f"model {config.model!r} runs no QCNN circuit to export")
  if not 0 <= block < len(circuits):
    raise train.ConfigError(f"block {block} out of range: the model runs {len(circuits)} circuits")
  spec, params, features = circuits[block]
  program, description = export.export(spec, params, features[0], version)
  description.update({"format": version, "run": train.config_run_name(config),
                      "config_sha256": provenance.config_hash(config.to_dict(), train.NON_RESULT_KEYS), "model": config.model,
                      "checkpoint_epoch": int(meta["epoch"]) + 1, "selected_checkpoint": selected, "split": split,
                      "index": int(index), "label": record["label"][0].tolist(), "block": block,
                      "n_circuits": len(circuits), "spec": {"n_qubits": spec.n_qubits, "conv_unit": spec.conv_unit,
                                                            "encoding": spec.encoding, "readout": spec.readout,
                                                            "n_readout": spec.n_readout, "reuploading": spec.reuploading}})
  os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
  with open(out, "w") as f:
    f.write(program)
  reports.write_json_atomic(f"{out}.json", description)
  return description
