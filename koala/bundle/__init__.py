"""What a trained model is on disk: koala.json, model.keras and perhaps model.tflite.

files: the names, resolving "default" or a run directory, koala.json, which LiteRT copy is
current (no TensorFlow); keras_bundle: saving and loading with Keras; conversion: the
TFLite flatbuffer, also built once on first use for the shipped model. Inference, serving
and training import this room; it imports none of them.
"""
