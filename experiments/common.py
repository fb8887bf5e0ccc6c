"""Defaults every Koala experiment shares, so each experiment file states only what differs.

An experiment is code (as in big_vision): `get_config(arg)` returns an ml_collections
ConfigDict in labelled sections, and `arg` picks a scale variant of the same experiment:

  "tpu"  the paper's settings at pod/TPU scale (bfloat16, large batch, records on GCS)
  "gpu"  the paper's settings on one or a few GPUs (float16 with loss scaling)
  "cpu"  what runs here in minutes-to-hours: small images, small batch, float32
  "tiny" a smoke test: 32 px, batch 4, a handful of steps (tests use it)

None means the paper's settings with the precision chosen from the hardware.
"""

import ml_collections

PHOTOS = "../shared/data/photos/train"  # the training photos beside a checkout (make DATASET=)
TINY_IMAGES = 48  # images in a tiny variant's records: seconds to build, real photos
VARIANTS = (None, "tpu", "gpu", "cpu", "tiny")


def base(name, model, arg=None, own_variants=()):
    """The full default config of experiment `name` training registry model `model`;
    `own_variants` are variants the experiment applies itself, besides VARIANTS."""
    if arg not in VARIANTS + tuple(own_variants):
        raise ValueError(f"unknown variant {arg!r}; choose one of "
                         f"{VARIANTS[1:] + tuple(own_variants)}")
    config = ml_collections.ConfigDict()
    config.experiment = name
    config.variant = arg or ""

    config.data = ml_collections.ConfigDict(dict(
        pipeline="records",          # "records", or "photo_crops" (random crops from folders)
        records="",                  # {train,val}-*.tfrecord + manifest.json; "": named after
                                     # what is declared here (koala.training.records.records_dir)
        source=PHOTOS,               # folder, list or "tfds:NAME" the records are built from
                                     # (on first use, or by `make records MODEL=NAME`)
        size=224,                    # working size (square) the records are written at
        color_space="lab",           # "lab"; "yuv" converts the Lab records on the fly (seed 004)
        with_embedding=False,        # read a precomputed global embedding from the records
        embedding_backbone="",       # backbone that embeds the records (with_embedding); its
                                     # weights are model.kwargs.weights
        limit=0,                     # records built here: at most this many images (0 = all)
        val_fraction=0.1,            # records built here from one folder: held-out share
    ))
    config.model = ml_collections.ConfigDict(dict(
        name=model,
        kwargs=ml_collections.ConfigDict(),  # keyword arguments of koala.models.build(name)
        output_kind="",  # "" asks the registry; set it for a model passed to train(model=...)
        init="",         # a bundle ("default" or a path) whose weights start a fresh run
    ))
    config.loss = ml_collections.ConfigDict(dict(name="mse_ab", lam=0.5))
    config.optimizer = ml_collections.ConfigDict(dict(
        name="adam", learning_rate=1e-3, beta_1=0.9, beta_2=0.999, weight_decay=0.0,
        clipnorm=0.0))
    config.schedule = ml_collections.ConfigDict(dict(name="constant", warmup_steps=0))
    config.train = ml_collections.ConfigDict(dict(
        batch_size=100, steps=100_000, seed=0, steps_per_loop=1, jit_compile=False))
    config.eval = ml_collections.ConfigDict(dict(every_steps=1000, max_batches=50, images=8))
    config.checkpoint = ml_collections.ConfigDict(dict(every_steps=1000, keep=3))
    config.precision = "auto"  # auto | float32 | mixed_float16 | mixed_bfloat16
    return config


def apply_variant(config, arg):
    """Shrinks or precisions `config` for the hardware variant `arg` (in place; returns it)."""
    if arg == "tpu":
        config.precision = "mixed_bfloat16"
        config.train.batch_size = max(config.train.batch_size, 256)
        config.train.steps_per_loop = 100  # one host round trip per 100 steps
    elif arg == "gpu":
        config.precision = "mixed_float16"
    elif arg == "cpu":
        config.precision = "float32"
        config.data.size = min(config.data.size, 128)
        config.train.batch_size = min(config.train.batch_size, 16)
        config.train.steps = 2000
        config.eval.every_steps = config.checkpoint.every_steps = 200
        config.eval.max_batches = 10
    elif arg == "tiny":
        config.precision = "float32"
        config.data.size = 32
        config.train.batch_size = 4
        config.train.steps = 4
        config.eval.every_steps = config.checkpoint.every_steps = 2
        config.eval.max_batches = 2
        config.eval.images = 2
        config.data.limit = TINY_IMAGES
    return config
