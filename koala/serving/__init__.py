"""Serving a bundle outside Python's colorize path: the SavedModel graph for TF Serving
(graph, saved_model), the TFLite file for phones and LiteRT (tflite), and a TF Serving REST
client (client)."""
