"""Seed 000 (Lin & Ferreira): MSE vs rarity-weighted MSE at several λ, EfficientNet head.

The paper reports no numbers; its claims are qualitative (more saturated colours, "no
considerable progress on quantitative metrics").
"""

from koala.reproduce import reproduction
from koala.reproduce.reproduction import SEEDS_NOTE, Reproduction, Run, Sweep
from koala.reproduce.verdict import Claim

LAMBDAS = (0.25, 0.5, 0.75)
_IMAGENET = {"model.kwargs.weights": "imagenet"}
PLAIN = Run("MSE", "000_mse", "effnet_head_lite", {**_IMAGENET, "loss.name": "mse_ab"})
RARITY = tuple(Run(f"rarity λ={lam:g}", f"000_rarity_{lam:g}", "effnet_head_lite",
                   {**_IMAGENET, "loss.name": "rarity_weighted_mse", "loss.lam": lam})
               for lam in LAMBDAS)

SPEC = Reproduction(
    seed="000",
    title="MSE vs rarity-weighted MSE (EfficientNet head)",
    paper='Lin & Ferreira, "Automated Image Colorization Using Deep Learning" (Stanford)',
    runs=(PLAIN, *RARITY),
    prior=True,
    claims=(*(Claim(f"Rarity weighting ({run.method}) gives more saturated colours than MSE",
                    "colorfulness", run.method, ">", PLAIN.method) for run in RARITY),
            Claim("Rarity weighting brings no quantitative gain (tested: PSNR of MSE above "
                  "λ=0.5's)", "psnr", PLAIN.method, ">", "rarity λ=0.5")),
    setup=(
        "Model: `effnet_head` on the frozen offline EfficientNet-Lite0 (ImageNet weights), "
        "{budget.photo_size} px; loss MSE vs rarity-weighted MSE, v(a,b) ∝ 1/((1-λ) p~ + "
        "λ/Q) with E[v] = 1, p~ the smoothed ab prior of the training records.",
        "AuC: Zhang's area under the ab-accuracy curve over thresholds 0-150; rebalanced "
        "AuC weights pixels by 1/prior.",
    ),
    sweep=Sweep((PLAIN.method, *(run.method for run in RARITY)), (0.0, *LAMBDAS),
                "λ (0 = plain MSE)", ("colorfulness", "auc", "psnr"), "000_lambda_sweep.png",
                "colorfulness, AuC and PSNR against λ"),
    grid=("000_photos_grid.png", "photos val: gray | MSE | rarity λ | truth"),
    notes=SEEDS_NOTE + " The paper reports no numbers; its claims are qualitative (more "
    "saturated; 'no considerable progress on quantitative metrics').",
)


def measure(context):
    return reproduction.measure_trained(context, SPEC)
