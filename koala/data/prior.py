"""The ab prior: Zhang et al.'s p(ab bin) of the training data, smoothed (sigma 5).

What class rebalancing weighs by, in training (the rebalanced losses) and in decoding (the
default model's prior correction, koala.shipping). One function for either kind of training
data, so the loss and the decoding of one run read the same prior:
- records (a directory with manifest.json): the histogram `koala records` counted over the
  training examples as it wrote them;
- a photo folder (photo_crops' training photos): PRIOR_PHOTOS photos taken evenly over the
  sorted list, each shrunk to PRIOR_SIZE (the prior needs colours, not detail).
"""

import json
import posixpath

import cv2
import numpy as np
import tensorflow as tf

from koala import color, image_io
from koala.data import sources

PRIOR_PHOTOS = 2000  # photos sampled (evenly over the sorted list) for a folder's prior
PRIOR_SIZE = 64  # each is shrunk to this square first


def ab_prior(source, count=PRIOR_PHOTOS):
    """Smoothed p(ab bin) [Q] of `source`: a records directory or a photo folder (any
    tf.io.gfile path for records). `count`: photos sampled from a folder."""
    manifest = posixpath.join(str(source), "manifest.json")
    if tf.io.gfile.exists(manifest):
        with tf.io.gfile.GFile(manifest) as stream:
            counts = json.load(stream).get("prior", {}).get("counts")
        if counts is None:
            raise ValueError(f"{manifest} has no ab histogram: rebuild the records with "
                             f"`koala records` to use a prior-weighted loss")
        return color.smoothed_prior(np.asarray(counts, np.float64))
    return color.smoothed_prior(_photo_counts(source, count))


def _photo_counts(folder, count):
    paths = sources.folder_source(folder).paths
    if not paths:
        raise FileNotFoundError(f"{folder}: neither records (manifest.json) nor photos")
    counts = np.zeros(len(color.ab_bins()), np.int64)
    for path in paths[::max(1, len(paths) // count)]:
        rgb = cv2.resize(image_io.read_image(path), (PRIOR_SIZE, PRIOR_SIZE),
                         interpolation=cv2.INTER_AREA)
        counts += color.histogram_counts(color.rgb_to_lab_cv2(rgb)[..., 1:])
    return counts
