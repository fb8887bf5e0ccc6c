"""Koala's colorization models, one module per system, built by name.

    model = koala.models.build("koalarization", embedding_source="input", embedding_dim=1001)

Every model is a Keras functional model whose inputs are a dict ({"L": [H, W, 1]} plus
{"embedding": [D]} when the global embedding is precomputed in the records) and whose
layers are all named. Importing a model module registers it (see registry.py); a new
system adds its module to the import line below.
"""

from koala.models import registry
from koala.models import (  # noqa: F401  (importing a model module registers it)
    effnet_head, effnet_unet, iizuka, koalarization, unet, zhang_eccv16)


def build(name, **config):
    """Build the registered model `name` with keyword `config` (see each builder's docstring)."""
    return registry.entry(name).builder(**config)


def names():
    """Names of every registered model, sorted."""
    return registry.names()


def describe(name, **config):
    """{"name", "backbone", "output", "summary"} of a model, for its defaults or `config`.

    `output` is "regression", "classification" (Q ab bins) or "binned" (per-channel bins).
    """
    return {"name": name, **registry.entry(name).describe(config)}
