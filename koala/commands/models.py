"""`koala models`: every registered model with its parameter count, backbone and output.

Models are built with their paper defaults but random backbone weights (weights=None), so
the listing runs offline and needs no download; parameter counts do not depend on weights.
"""

import inspect
import json

from absl import flags

from koala.errors import UserError

FLAGS = flags.FLAGS
flags.DEFINE_multi_string("model", None, "List only these models (repeatable).")
flags.DEFINE_boolean("json", False, "One JSON object per line instead of a table.")


def rows(names):
    """One dict per model: name, backbone, output, params, trainable_params, summary."""
    from koala import models  # late: `koala models --help` should not import TensorFlow

    for name in names:
        builder = models.registry.entry(name).builder
        config = {"weights": None} if "weights" in inspect.signature(builder).parameters else {}
        model = models.build(name, **config)
        trainable = sum(int(w.numpy().size) for w in model.trainable_weights)
        yield {**models.describe(name), "params": model.count_params(),
               "trainable_params": trainable}


def main(argv):
    if len(argv) > 1:
        raise UserError(f"unexpected arguments: {argv[1:]} (name models with --model)")
    from koala import models

    unknown = [name for name in FLAGS.model or () if name not in models.names()]
    if unknown:
        raise UserError(f"unknown model {', '.join(unknown)}; known: {', '.join(models.names())}")
    names = FLAGS.model or models.names()
    if FLAGS.json:
        for row in rows(names):
            print(json.dumps(row))
        return
    print(f"{'model':<14} {'params':>12} {'trainable':>12}  {'backbone':<20} "
          f"{'output':<14} summary")
    for row in rows(names):
        print(f"{row['name']:<14} {row['params']:>12,} {row['trainable_params']:>12,}  "
              f"{row['backbone']:<20} {row['output']:<14} {row['summary']}")
