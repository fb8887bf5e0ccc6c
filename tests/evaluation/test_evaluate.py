"""`koala evaluate` end to end on a few tiny photos: files written, baselines computed."""

import json

import numpy as np
import pytest
from colorize_helpers import tiny_bundle  # noqa: F401 (fixture)

from koala import color, image_io
from koala.evaluation import evaluate
from koala.evaluation import metrics


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for index in range(3):
        (folder / "scene").mkdir(exist_ok=True)
        image = rng.integers(0, 256, (40 + index, 56, 3), dtype=np.uint8)
        image_io.write_image(folder / "scene" / f"p{index}.png", image)
    return folder


def test_evaluate_writes_metrics_report_and_figures(photos, tiny_bundle, tmp_path):  # noqa: F811
    results = evaluate.run([str(tiny_bundle)], photos, tmp_path, semantic=False,
                           reference_source=photos)
    stored = json.loads((tmp_path / "metrics.json").read_text())
    assert stored["images"] == 3
    assert set(stored["methods"]) == {evaluate.GRAY, evaluate.MEAN_AB, tiny_bundle.name}
    for name in ("report.md", "comparison.png", "accuracy_curve.png", "ab_histograms.png"):
        assert (tmp_path / name).stat().st_size > 0
    gray = results["methods"][evaluate.GRAY]
    assert gray["colorfulness"] < 0.5 and 0 < gray["auc"] < 100
    assert len(gray["accuracy_curve"]) == len(metrics.CURVE_THRESHOLDS)
    assert "semantic interpretability skipped" in (tmp_path / "report.md").read_text()
    assert stored["reference_study"]["pairs"] == 3


def test_gray_baseline_auc_is_the_formula_on_true_ab(photos):
    evaluation = evaluate.Evaluation({}, None, (0.0, 0.0), semantic=False)
    samples = list(evaluate.load_samples(photos))
    for sample in samples:
        evaluation.add(sample)
    true_ab = np.concatenate([color.rgb_to_lab_cv2(s.rgb)[..., 1:].reshape(-1, 2)
                              for s in samples])
    # gray output is recombined with the photo's own L, so its ab is ~0 (rounding only)
    expected = metrics.auc(np.zeros_like(true_ab), true_ab)
    assert evaluation.results()["methods"][evaluate.GRAY]["auc"] == pytest.approx(expected, abs=0.3)
