"""Seed 001 (Baldassarre et al., Deep Koalarization): with vs without the fused global
embedding. The paper has no ablation; the claim is the premise of its design."""

from koala.evaluation import judge
from koala.reproduce import reproduction
from koala.reproduce.reproduction import PaperScale, Reproduction, Run
from koala.reproduce.verdict import Claim

FUSION = Run("fusion (Lite0 embedding)", "001_fusion", "koalarization_lite",
             {"model.kwargs.embedding_source": "input", "model.kwargs.embedding_dim": 1280},
             with_embedding=True)
NONE = Run("no fusion", "001_none", "koalarization_lite",
           {"model.kwargs.embedding_source": "none"})

SPEC = Reproduction(
    seed="001",
    title="Deep Koalarization: with vs without the global embedding",
    paper='Baldassarre, González Morín, Rodés-Guirao, "Deep Koalarization" (KTH)',
    runs=(FUSION, NONE),  # FUSION first: the comparison's val images carry its embedding
    photos="koalarization_photos",
    judge=True,
    claims=(
        Claim("Fusing a global classifier embedding lowers the val MSE", "mse",
              FUSION.method, "<", NONE.method),
        Claim("Fusion makes colorizations more semantically interpretable", "top1_agreement",
              FUSION.method, ">", NONE.method),
    ),
    setup=(
        "Model: `koalarization` (Table 1 encoder/decoder) at {budget.photo_size} px; the "
        "fusion layer tiles the 1280-d pooled EfficientNet-Lite0 embedding of the gray photo, "
        "precomputed into the records from the photo cut to Lite0's 224 px input, not from "
        "the small record blown up (the paper precomputes Inception-ResNet-v2's at 299 px), "
        "vs the same network with no fusion input (`embedding_source=none`).",
        "Semantic interpretability: % of images whose colorization the judge, the offline "
        f"ImageNet classifier `{judge.CLASSIFIER}` at {judge.CLASSIFIER_SIZE} px (not the "
        "Lite0 that the fusion model sees through), puts in the same top-1 class as the true "
        "photo.",
        "The paper has no ablation; the claim is the premise of its design.",
    ),
    grid=("001_photos_grid.png", "photos val: gray | fusion | no fusion | truth"),
    # The paper (sections 3-4): ~60,000 ImageNet images, 10% held out, rescaled to 224 px
    # with white padding, the Inception-ResNet-v2 embedding (at 299 px), batch 100, Adam
    # 1e-3 (the experiment's). It trained ~23 hours and gives no steps: koalarization's.
    paper_scale=PaperScale("tfds:imagenet2012", size=224, steps=100_000, batch=100,
                           images=60_000, resize="pad", backbone="inception_resnet_v2",
                           experiments={"koalarization_lite": "koalarization"}),
)


def measure(context):
    return reproduction.measure_trained(context, SPEC)
