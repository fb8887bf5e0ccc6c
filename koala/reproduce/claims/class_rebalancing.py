"""Seed 002 (Zhang et al. via Akash et al.): class rebalancing on/off, and the annealed
mean's temperature swept over the rebalanced model's logits."""

from koala import color
from koala.reproduce import reproduction
from koala.reproduce.budget import FromBudget
from koala.reproduce.reproduction import PaperScale, Reproduction, Run, Sweep
from koala.reproduce.runs import decode
from koala.reproduce.verdict import Claim

TEMPERATURES = (0.01, 0.2, 0.38, 0.6, 1.0)
_ZHANG = {"model.kwargs.width": FromBudget("zhang_width"), "optimizer.weight_decay": 0.0}
REBALANCED = Run("rebalanced (λ=0.5)", "002_rebalanced", "zhang_eccv16",
                 {**_ZHANG, "loss.lam": 0.5})
PLAIN = Run("no rebalancing", "002_plain", "zhang_eccv16", {**_ZHANG, "loss.lam": 1.0})
SWEEP = tuple(f"rebalanced, T={t:g}" for t in TEMPERATURES)  # methods: REBALANCED at each T
MODE, ANNEALED, MEAN = SWEEP[0], SWEEP[2], SWEEP[-1]

SPEC = Reproduction(
    seed="002",
    title="Zhang et al.: class rebalancing and the annealed mean",
    paper='Akash, Prajapati, Pandey, "Image Colourization (using Machine Learning)", after '
          'Zhang, Isola, Efros, "Colorful Image Colorization" (ECCV 2016)',
    runs=(REBALANCED, PLAIN),
    steps="zhang_steps",
    size="zhang_photo_size",
    temperature=0.38,
    prior=True,
    claims=(
        Claim("Rebalancing lowers plain AuC (Zhang: 91.6 → 89.5)", "auc",
              PLAIN.method, ">", REBALANCED.method),
        Claim("Rebalancing raises rebalanced AuC (Zhang: 65.1 → 67.3)", "auc_rebalanced",
              REBALANCED.method, ">", PLAIN.method),
        Claim("Rebalancing gives more vivid colours", "colorfulness",
              REBALANCED.method, ">", PLAIN.method),
        Claim("Annealed mean T=0.38 is more vivid than the mean (T=1)", "colorfulness",
              ANNEALED, ">", MEAN),
        Claim("Annealed mean T=0.38 is more accurate than the mode (T→0)", "auc",
              ANNEALED, ">", MODE),
    ),
    setup=(
        "Model: `zhang_eccv16` at width x{budget.zhang_width:g}, {budget.zhang_photo_size} px, "
        "logits over Q = {bins} ab bins at 1/4 resolution; loss: soft-encoded cross-entropy "
        "with class rebalancing λ = 0.5 vs none (λ = 1: uniform weights); no weight decay.",
        "Both decoded by the annealed mean at T = 0.38; the sweep re-decodes the rebalanced "
        "model's logits at each T.",
    ),
    sweep=Sweep(SWEEP, TEMPERATURES, "temperature T", ("auc", "auc_rebalanced", "colorfulness"),
                "002_temperature_sweep.png",
                "AuC, rebalanced AuC and colorfulness against T (rebalanced model)"),
    grid=("002_photos_grid.png", "photos val: gray | no rebalancing | rebalanced | truth"),
    # Zhang et al.: "over a million colour images" (all of ImageNet's training set), 176 px,
    # batch 40 (experiments/zhang_eccv16.py: their Adam and rate; the runs keep no weight
    # decay). The text gives no steps: the experiment's. Full width: the budget's 1.0.
    paper_scale=PaperScale("tfds:imagenet2012", size=176, steps=100_000, batch=40),
)


def measure(context):
    """The trained comparison, plus the rebalanced logits decoded at every temperature."""
    def temperatures(comparison, method, outputs):
        if method == REBALANCED.method:
            for swept, temperature in zip(SWEEP, TEMPERATURES):
                comparison.add(swept, decode(outputs, "classification", comparison.size,
                                             temperature))

    directory, comparison, trained = reproduction.measure_runs(context, SPEC, temperatures)
    return reproduction.section(context, SPEC, directory, comparison, trained,
                                bins=len(color.ab_bins()))
