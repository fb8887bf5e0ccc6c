"""The shipped default model: EfficientNet-Lite0 (ImageNet, last stages fine-tuned) + U-Net.

Trained from photo folders with random-scale crops (koala.data.photo_crops), Huber on ab plus
the soft-encoded bin cross-entropy (koala.training.losses.huber_bins); how the two heads are
blended, and the vividness range, are chosen afterwards on photos/val by `koala ship`
(`make default-model` runs both). A long schedule is several runs: rerunning the same command
resumes from the workdir's checkpoint; on a fresh machine `--config.model.init=default`
starts from the committed bundle with a fresh optimizer (README, "Retrain the default model").

Each variant below is a run of the model's history (what it changed, which runs made v2 and
v3, which did not ship and why, with their times and figures): MODEL_CARD.md, "Training".
"""

import ml_collections
from ml_collections import config_dict

from experiments import common

SHARED_PHOTOS = "../shared/data/photos"
FEATURE_WEIGHT = 1.0  # v3 on val crops: feature distance 0.83 (gray 1.09), Huber term 0.46
STAGES_5_TO_7 = "block5,block6,block7,top"
STAGES_4_TO_7 = "block4," + STAGES_5_TO_7
# Variants that start from the shipped model, at a lower peak rate than from ImageNet: the
# start they share, then what each changes (config paths; their runs are in MODEL_CARD.md).
BUNDLE_START = {"model.init": "default", "schedule.warmup_steps": 200, "train.steps": 3000,
                "optimizer.learning_rate": 3e-4}
FROM_BUNDLE = {
    "continue": {"train.steps": 4500},
    "rebalanced": {"loss.rebalance": True},  # Zhang's class rebalancing in training
    "unfrozen": {"optimizer.learning_rate": 2e-4, "model.kwargs.finetune": STAGES_5_TO_7},
    "deeper": {"train.steps": 5000, "optimizer.learning_rate": 1.5e-4,
               "model.kwargs.finetune": STAGES_4_TO_7},
    "crop192": {"optimizer.learning_rate": 2e-4, "model.kwargs.finetune": STAGES_5_TO_7,
                "data.size": 192},
    "features": {"train.steps": 1500, "optimizer.learning_rate": 1e-4,
                 "model.kwargs.finetune": STAGES_5_TO_7,
                 "loss.feature_weight": FEATURE_WEIGHT},  # losses.feature_distance
    "deeper192": {"train.steps": 2000, "optimizer.learning_rate": 1.5e-4,
                  "model.kwargs.finetune": STAGES_4_TO_7, "data.size": 192},
    # colour hints (Zhang et al. 2017): v3 plus zero-initialised hint inputs at every decoder
    # level, trained with simulated hints (koala.data.simulated_hints); the backbone frozen,
    # the decoder and heads training (propagating a hint is the decoder's job)
    "hints": {"model.kwargs.hints": True, "data.hints": True, "model.kwargs.finetune": "",
              "train.steps": 4000, "optimizer.learning_rate": 3e-4},
    # v4 plus hint propagation (koala.models.hint_propagation): only the propagation trains
    "hints_propagation": {"model.kwargs.hints": True, "model.kwargs.propagation": True,
                          "model.kwargs.propagation_only": True, "data.hints": True,
                          "model.kwargs.finetune": "", "train.steps": 1500,
                          "schedule.warmup_steps": 100, "optimizer.learning_rate": 1e-3},
}


def get_config(arg=None):
    config = common.base("default", "effnet_unet", arg, own_variants=(*FROM_BUNDLE, "lite2"))
    config.data.pipeline = "photo_crops"
    config.data.train_photos = f"{SHARED_PHOTOS}/train"
    config.data.val_photos = f"{SHARED_PHOTOS}/val"
    config.data.val_every = 3  # 267 of the 800 validation photos: a quick, fixed val set
    config.data.hints = False  # simulated colour hints as a second input (variant "hints")
    config.data.size = 160
    config.model.kwargs.backbone = "efficientnet_lite0"
    config.model.kwargs.weights = "imagenet"
    config.model.kwargs.finetune = "block7,top"
    config.model.kwargs.hints = False
    config.model.kwargs.propagation = False
    config.model.kwargs.propagation_only = False
    config.loss = ml_collections.ConfigDict(dict(name="huber_bins", lam=0.5,
                                                 logit_weight=1.0, rebalance=False,
                                                 feature_weight=0.0))
    config.schedule.name = "cosine"
    config.schedule.warmup_steps = 300
    config.train.batch_size = 24
    config.train.steps = 6500
    config.eval.every_steps = config.checkpoint.every_steps = 500
    config.eval.max_batches = 12
    config.precision = "float32"  # mixed_bfloat16 is slower on CPUs without AMX (39 vs 50 img/s)
    if arg == "tiny":
        config.model.kwargs.weights = config_dict.placeholder(str)  # random init, overridable
        config.model.kwargs.finetune = ""
        config.data.val_every = 100
        common.apply_variant(config, arg)
        config.data.size = 64  # the model's stride is 32
        return config
    if arg == "lite2":  # run 1's recipe on the larger backbone, a schedule of several runs
        config.model.kwargs.backbone = "efficientnet_lite2"
        config.train.steps = 10_000
        return config
    if arg in FROM_BUNDLE:
        config.update_from_flattened_dict({**BUNDLE_START, **FROM_BUNDLE[arg]})
        return config
    return common.apply_variant(config, arg) if arg else config
