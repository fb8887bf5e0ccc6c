"""The vividness control: one number from 0 (most accurate) to 1 (most vivid).

Models that offer it (the default model) output three ab maps, three decodings of the same
two heads chosen on validation photos: "ab_accurate" (V = 0, best PSNR and AuC), "ab" (the
default V, the point nearest to all targets at once) and "ab_vivid" (V = 1, strongly
prior-corrected: rare, saturated colours boosted). V moves piecewise linearly accurate ->
default -> vivid, so the default V gives exactly the validated "ab", not a mix of the ends
(a mix of the ends lost ~0.2 dB at the same colourfulness on validation). The default V lives
in the bundle's meta ("vividness"). Costs nothing at training time and works on NumPy arrays
and TensorFlow tensors alike, so the LiteRT path needs no TensorFlow.
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


def _positive(x):
    return (x + abs(x)) / 2  # max(x, 0) for floats, arrays and tensors alike


def mix(accurate, default, vivid, vividness, default_vividness):
    """accurate (V 0) -> default (V default_vividness) -> vivid (V 1), piecewise linear."""
    d = float(default_vividness)
    to_default = 1 - _positive(1 - vividness / d) if d > 0 else 1.0
    to_vivid = _positive((vividness - d) / (1 - d)) if d < 1 else 0.0
    return accurate + to_default * (default - accurate) + to_vivid * (vivid - default)


def select(outputs, vividness=None, default_vividness=None):
    """The ab output of a model's `outputs` (a dict or one array) at `vividness`.

    A model without the control ignores vividness (its one output is returned); one with it
    needs its `default_vividness` (the bundle meta's "vividness").
    """
    if vividness is None or isinstance(vividness, (int, float)):
        vividness = check(vividness)  # a tensor (a graph input) is checked by its graph
    if not isinstance(outputs, dict):
        return outputs
    if vividness is None or not has_control(outputs):
        return outputs["ab"] if "ab" in outputs else next(iter(outputs.values()))
    if default_vividness is None:
        raise ValueError("a model with the vividness control needs its default vividness "
                         "(meta 'vividness')")
    return mix(outputs[ACCURATE], outputs["ab"], outputs[VIVID], vividness, default_vividness)
