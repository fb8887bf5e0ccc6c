"""Experiments as code: one module per experiment, each with `get_config(arg=None)`."""
