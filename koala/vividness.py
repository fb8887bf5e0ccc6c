"""The vividness control: one number from 0 (most accurate) to 1 (most vivid).

Models that offer it (the default model) output two ab maps besides "ab": "ab_accurate", the
head blend that scored best on validation PSNR and AuC, and "ab_vivid", a strongly
prior-corrected bin decoding (rare, saturated colours boosted). Vividness V mixes them
linearly, ab = ab_accurate + V * (ab_vivid - ab_accurate); "ab" is that mix at the default V
chosen on validation photos. Costs nothing at training time and works on NumPy arrays and
TensorFlow tensors alike, so the LiteRT path needs no TensorFlow.
"""

ACCURATE, VIVID = "ab_accurate", "ab_vivid"


def check(vividness):
    """None (the model's default) or a float in [0, 1]; anything else is a user error."""
    if vividness is None:
        return None
    value = float(vividness)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"vividness must be between 0 and 1, got {vividness}")
    return value


def has_control(outputs):
    return isinstance(outputs, dict) and ACCURATE in outputs and VIVID in outputs


def select(outputs, vividness=None):
    """The ab output of a model's `outputs` (a dict or one array) at `vividness`.

    A model without the control ignores vividness (its one output is returned).
    """
    if vividness is None or isinstance(vividness, (int, float)):
        vividness = check(vividness)  # a tensor (a graph input) is checked by its graph
    if not isinstance(outputs, dict):
        return outputs
    if vividness is None or not has_control(outputs):
        return outputs["ab"] if "ab" in outputs else next(iter(outputs.values()))
    return outputs[ACCURATE] + vividness * (outputs[VIVID] - outputs[ACCURATE])
