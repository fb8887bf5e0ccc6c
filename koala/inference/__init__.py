"""Running a bundle's model: LiteRT (no TensorFlow) or Keras, behind one interface."""
