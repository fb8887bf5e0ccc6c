"""Shipping the default model (`koala ship`): the decoding chosen on validation photos
(selection), then the blended bundle with its selection and training history (release).

Above inference and evaluation: the selection colorizes through koala.inference.colorizer
and scores with koala.evaluation.metrics; nothing below imports this package.
"""
