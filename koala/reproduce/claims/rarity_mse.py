"""Seed 000 (Lin & Ferreira): MSE vs rarity-weighted MSE, EfficientNet head.

The paper reports no numbers; its claims are qualitative (more saturated colours, "no
considerable progress on quantitative metrics"), and it gives no λ, so the report trains
Zhang et al.'s λ = 0.5 only: three seeds of one λ say more than one seed of three.
"""

from koala.reproduce import reproduction
from koala.reproduce.reproduction import SEEDS_NOTE, PaperScale, Reproduction, Run
from koala.reproduce.verdict import Claim

_IMAGENET = {"model.kwargs.weights": "imagenet"}
PLAIN = Run("MSE", "000_mse", "effnet_head_lite", {**_IMAGENET, "loss.name": "mse_ab"})
RARITY = Run("rarity λ=0.5", "000_rarity_0.5", "effnet_head_lite",
             {**_IMAGENET, "loss.name": "rarity_weighted_mse", "loss.lam": 0.5})

SPEC = Reproduction(
    seed="000",
    title="MSE vs rarity-weighted MSE (EfficientNet head)",
    paper='Lin & Ferreira, "Automated Image Colorization Using Deep Learning" (Stanford)',
    runs=(PLAIN, RARITY),
    steps="head_steps",
    size="head_photo_size",
    prior=True,
    claims=(Claim("Rarity weighting gives more saturated colours than MSE", "colorfulness",
                  RARITY.method, ">", PLAIN.method),
            Claim("Rarity weighting brings no quantitative gain (tested: PSNR of MSE above "
                  "rarity's)", "psnr", PLAIN.method, ">", RARITY.method)),
    setup=(
        "Model: `effnet_head` on the frozen offline EfficientNet-Lite0 (ImageNet weights), "
        "{budget.head_photo_size} px; loss MSE vs rarity-weighted MSE, v(a,b) ∝ 1/((1-λ) p~ + "
        "λ/Q) with E[v] = 1, p~ the smoothed ab prior of the training records.",
        "AuC: Zhang's area under the ab-accuracy curve over thresholds 0-150; rebalanced "
        "AuC weights pixels by 1/prior.",
    ),
    grid=("000_photos_grid.png", "photos val: gray | MSE | rarity λ=0.5 | truth"),
    notes=SEEDS_NOTE + " The paper reports no numbers; its claims are qualitative (more "
    "saturated; 'no considerable progress on quantitative metrics').",
    # The paper: the small Places dataset (~2M 256x256 images, all used), EfficientNet-B7,
    # "the original 224x224 image is recovered". It gives no batch or steps: effnet_head's.
    paper_scale=PaperScale("tfds:places365_small", size=224, steps=100_000, batch=32,
                           experiments={"effnet_head_lite": "effnet_head"}),
)


def measure(context):
    return reproduction.measure_trained(context, SPEC)
