r"""Exports a trained run as a folder others can load without this code: the inference function
serialised with jax.export (StableHLO), its parameters and config, a model card (Markdown + JSON)
and `load_model.py` (jax and numpy only).

  python -m experiments.export_model --workdir=runs/my_images --out=exported/my_images

Python users of this package load it with `qcnn_jax.load_model(DIR)`.
"""

from absl import flags

from experiments import cli
from qcnn_jax import runtime
from qcnn_jax.serving import export

flags.DEFINE_string("workdir", None, "A finished run trained by experiments.train.", required=True)
flags.DEFINE_string("out", None, "Folder to write.", required=True)
flags.DEFINE_integer("batch_size", None, "Images per call of the exported function (default: the run's "
                     "eval_batch_size); the loader pads the last batch.")
flags.DEFINE_list("platforms", list(export.PLATFORMS), "jax.export platforms to lower for.")
flags.DEFINE_bool("overwrite", False, "Replace an existing --out folder.")
FLAGS = flags.FLAGS


def main(argv):
  del argv
  runtime.quiet_library_logs()
  runtime.enable_compilation_cache()  # the run's own compiled evaluation step is reused
  spec = export.export_run(FLAGS.workdir, FLAGS.out, batch_size=FLAGS.batch_size, platforms=FLAGS.platforms,
                           overwrite=FLAGS.overwrite)
  check = spec["check"]
  print(f"{FLAGS.out}: {spec['run']} (epoch {spec['checkpoint_epoch']}), input uint8 {tuple(spec['input_shape'])}, "
        f"{len(spec['class_names'])} classes; on its {check['num_examples']} test images the exported model's logits "
        f"differ from the run's by at most {check['max_abs_logit_difference']:.2e}")


if __name__ == "__main__":
  cli.run(main)
