"""Seed 004 (Sun & Shen): U-Net regression vs 20-bin classification on CIFAR-10 in YUV.

The proposal states no result; its claims are the trade-off it sets out to measure.
"""

from koala.reproduce import reproduction
from koala.reproduce.budget import FromBudget
from koala.reproduce.reproduction import PaperScale, Reproduction, Run
from koala.reproduce.verdict import Claim

_WIDTH = {"model.kwargs.base_width": FromBudget("unet_width")}

SPEC = Reproduction(
    seed="004",
    title="U-Net regression vs classification (CIFAR-10, YUV)",
    paper='Sun & Shen, "Discriminative Models on Image Colorization" (proposal)',
    records="cifar10",
    steps="cifar_steps",
    runs=(Run("regression", "004_regression", "cifar10_unet_regression", _WIDTH),
          Run("classification", "004_classification", "cifar10_unet_classification", _WIDTH)),
    baseline="gray (U = V = 0)",
    claims=(
        Claim("Regression (MSE on UV) gives the lower per-pixel chrominance loss",
              "chroma_se", "regression", "<", "classification"),
        Claim("Classification (20 bins per channel) gives more colourful results",
              "colorfulness", "classification", ">", "regression"),
    ),
    setup=(
        "Models: `unet` (depth 3, base width {budget.unet_width}), regression head (tanh, "
        "MSE on scaled UV) vs classification head (20 equal bins per channel, cross-entropy, "
        "decoded by the softmax-weighted mean of the bin centres).",
        "Colour space YUV (BT.601), 32 x 32; chroma SE = mean over pixels of dU^2 + dV^2, "
        "U and V in their BT.601 units (the paper's eq. 2).",
        "The proposal states no result; its claims are the trade-off it sets out to measure "
        "(ColorUNet, Zhang et al.): regression is accurate but dull, classification vivid.",
    ),
    grid=("004_cifar_grid.png", "CIFAR-10 val: gray | regression | classification | truth"),
    # The proposal: CIFAR-10 at 32 px (split 50k/5k/5k of all 60k; here tfds' 50k train
    # split, 10% held out). It gives no batch, steps or width: the experiments' defaults.
    paper_scale=PaperScale("tfds:cifar10", size=32, steps=20_000, batch=64),
)


def measure(context):
    return reproduction.measure_trained(context, SPEC)
