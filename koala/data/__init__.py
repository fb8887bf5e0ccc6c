"""Koala data: the TFRecord schema, image sources, the records writer and the tf.data reader."""

from koala.data.pipeline import dataset

__all__ = ["dataset"]
