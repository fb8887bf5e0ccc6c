"""The independent judge of semantic interpretability: an offline ImageNet classifier.

EfficientNet-Lite2 at its own 260 px: the default model and the report's fusion models see
through EfficientNet-Lite0's features, and a judge that shares the model's eyes would reward
colours that only those features like. Lite0 is no longer used as a judge.
"""

import functools

import cv2
import numpy as np

CLASSIFIER = "efficientnet_lite2"  # not a backbone of any evaluated model (see above)
CLASSIFIER_SIZE = 260  # Lite2's training resolution


@functools.lru_cache(maxsize=1)
def _classifier():
    from koala.models import backbones, efficientnet_lite  # noqa: PLC0415 (heavy, optional)

    model = backbones.imagenet_classifier(CLASSIFIER, CLASSIFIER_SIZE)
    return model, efficientnet_lite.preprocess_rgb


@functools.lru_cache(maxsize=1)
def imagenet_wnids():
    """The 1000 ImageNet wnids in class-index order (sorted), from the tfds package."""
    import importlib.resources  # noqa: PLC0415

    text = (importlib.resources.files("tensorflow_datasets") / "image_classification"
            / "imagenet_resized_labels.txt").read_text()
    return sorted(text.split())


def classifier_or_reason():
    """(classify function, None) or (None, why the metric is skipped)."""
    try:
        model, preprocess = _classifier()
    except Exception as error:  # noqa: BLE001 (any failure only skips this one metric)
        return None, f"{CLASSIFIER} classifier unavailable: {type(error).__name__}: {error}"

    def classify(images):
        batch = np.stack([cv2.resize(image, (CLASSIFIER_SIZE, CLASSIFIER_SIZE),
                                     interpolation=cv2.INTER_AREA) for image in images])
        logits = model(preprocess(batch.astype(np.float32)), training=False)
        return np.argmax(np.asarray(logits), axis=-1)

    return classify, None
