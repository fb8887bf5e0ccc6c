"""The semantic-interpretability judge: independent of the evaluated models, and it sees
what colour adds (real photos are classified better than their gray versions)."""

import json

import numpy as np
import pytest

from koala import bundle, image_io
from koala.evaluation import judge
from koala.models import registry
from koala.photo import gray_version

PER_CLASS = 10  # validation photos per Imagenette class: 100 in all


def test_judge_is_no_backbone_of_any_model():
    import koala.models  # noqa: F401, PLC0415 (registers every model)

    backbones = {registry.entry(name).describe({})["backbone"] for name in registry.names()}
    assert judge.CLASSIFIER not in backbones  # lite0 is, for the default model
    default = json.loads((bundle.DEFAULT_DIR / "koala.json").read_text())
    assert registry.entry(default["model"]).describe(default["config"])["backbone"] \
        != judge.CLASSIFIER


@pytest.mark.slow  # ~80 s here: Lite2 at 260 px on 200 photos
def test_judge_classifies_real_photos_better_than_gray_ones(shared_data):
    folders = sorted((shared_data / "photos" / "val" / "imagenette").glob("n*"))
    if not folders:
        pytest.skip("no Imagenette validation photos in ../shared/data/photos/val")
    classify, reason = judge.classifier_or_reason()
    assert classify is not None, reason
    index = {wnid: i for i, wnid in enumerate(judge.imagenet_wnids())}
    photos, labels = [], []
    for folder in folders:
        for path in sorted(folder.glob("*.jpg"))[:PER_CLASS]:
            photos.append(image_io.to_rgb8(image_io.read_image(path)))
            labels.append(index[folder.name])
    real = np.mean(classify(photos) == labels) * 100
    gray = np.mean(classify([gray_version(p) for p in photos]) == labels) * 100
    print(f"\n{judge.CLASSIFIER} top-1 on {len(photos)} validation photos: "
          f"real {real:.1f}%, gray {gray:.1f}%")
    assert real >= 70 and real > gray + 5  # measured 83.0% vs 71.0%
