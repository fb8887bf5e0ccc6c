"""Colorizing photos and videos with a bundle: the Colorizer (LiteRT or Keras runtime), video,
reference guidance."""
