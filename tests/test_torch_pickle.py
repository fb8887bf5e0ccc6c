"""torch_pickle refuses every malformed or crafted file with a clear error, reading nothing
outside the data: a corpus of broken files plus random byte flips of a valid one.

Files are written byte-for-byte in torch.save's formats by a pure-Python Pickler that emits
the torch globals by name (no torch, no fake torch modules needed)."""

import collections
import io
import pathlib
import pickle
import struct
import zipfile

import numpy as np
import pytest

from koala.models import torch_pickle

MAGIC, PROTOCOL = 0x1950A86A20F9469CFC6C, 1001


class Global:
    """Pickles as the global module.name (the opcode only; nothing is imported)."""

    def __init__(self, module, name):
        self.module, self.name = module, name

    def __call__(self):  # save_reduce wants a callable
        raise AssertionError("never called")


class Storage:
    def __init__(self, key, numel, kind="FloatStorage"):
        self.pid = ("storage", Global("torch", kind), key, "cpu", numel)


class Tensor:
    def __init__(self, storage, offset, size, stride):
        self.args = (storage, offset, tuple(size), tuple(stride), False,
                     collections.OrderedDict())

    def __reduce__(self):
        return Global("torch._utils", "_rebuild_tensor_v2"), self.args


class Call:
    """Any global called with arguments: what an attack pickles."""

    def __init__(self, module, name, *args):
        self.func, self.args = Global(module, name), args

    def __reduce__(self):
        return self.func, self.args


class TorchPickler(pickle._Pickler):  # the pure-Python Pickler: its dispatch can be extended
    dispatch = pickle._Pickler.dispatch.copy()

    def save_named_global(self, obj):
        self.write(pickle.GLOBAL + f"{obj.module}\n{obj.name}\n".encode())

    dispatch[Global] = save_named_global

    def persistent_id(self, obj):
        return obj.pid if isinstance(obj, Storage) else None


def dumps(obj):
    buffer = io.BytesIO()
    TorchPickler(buffer, protocol=2).dump(obj)
    return buffer.getvalue()


def legacy_bytes(state, data, keys=("0",), magic=MAGIC, count=None):
    """torch < 1.6 format: magic, protocol, sys info, state, keys, then count + raw data."""
    out = b"".join(pickle.dumps(h, protocol=2) for h in (magic, PROTOCOL, {"little_endian": 1}))
    out += dumps(state) + pickle.dumps(list(keys), protocol=2)
    data = np.asarray(data, "<f4")
    return out + struct.pack("<q", data.size if count is None else count) + data.tobytes()


def zip_bytes(state, data):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("archive/data.pkl", dumps(state))
        archive.writestr("archive/data/0", np.asarray(data, "<f4").tobytes())
    return buffer.getvalue()


DATA = np.arange(12, dtype=np.float32)


def state_of(*tensors, numel=12):
    storage = Storage("0", numel)
    return collections.OrderedDict((f"t{i}", Tensor(storage, *t)) for i, t in enumerate(tensors))


def load(tmp_path, payload, name="w.pth"):
    path = tmp_path / name
    path.write_bytes(payload)
    return torch_pickle.load_state_dict(path)


@pytest.mark.parametrize("write", [legacy_bytes, zip_bytes], ids=["legacy", "zip"])
def test_valid_files_read_views_exactly(tmp_path, write):
    state = state_of((0, (3, 4), (4, 1)), (0, (4, 3), (1, 4)), (10, (2,), (1,)),
                     (11, (), ()), (5, (0, 7), (7, 1)))
    loaded = load(tmp_path, write(state, DATA))
    np.testing.assert_array_equal(loaded["t0"], DATA.reshape(3, 4))
    np.testing.assert_array_equal(loaded["t1"], DATA.reshape(3, 4).T)
    np.testing.assert_array_equal(loaded["t2"], [10, 11])
    assert loaded["t3"].shape == () and loaded["t3"] == 11  # a scalar at the last element
    assert loaded["t4"].shape == (0, 7)  # empty tensors touch no element


def _valid():
    return legacy_bytes(state_of((0, (3, 4), (4, 1))), DATA)


MALFORMED = {
    # the case: 64 floats read out of a 12-float storage
    "extent_beyond_storage": (legacy_bytes(state_of((0, (8, 8), (8, 1))), DATA), "reaches"),
    "offset_out_of_range": (legacy_bytes(state_of((12, (1,), (1,))), DATA), "reaches"),
    "offset_plus_extent": (legacy_bytes(state_of((9, (2, 2), (2, 1))), DATA), "reaches"),
    "negative_offset": (legacy_bytes(state_of((-4, (2,), (1,))), DATA), "offset"),
    "negative_stride": (legacy_bytes(state_of((11, (3,), (-1,))), DATA), "negative"),
    "negative_size": (legacy_bytes(state_of((0, (-1, 4), (4, 1))), DATA), "negative"),
    "float_size": (legacy_bytes(state_of((0, (2.5,), (1,))), DATA), "integer"),
    "size_stride_mismatch": (legacy_bytes(state_of((0, (3, 4), (1,))), DATA), "match"),
    "oversized_storage_count": (legacy_bytes(state_of((0, (4,), (1,)), numel=10**12), DATA),
                                "more than the file"),
    "count_field_larger_than_data": (legacy_bytes(state_of((0, (4,), (1,))), DATA, count=13),
                                     "promised"),
    "wrong_magic": (legacy_bytes(state_of((0, (4,), (1,))), DATA, magic=12345), "magic"),
    "keys_do_not_match": (legacy_bytes(state_of((0, (4,), (1,))), DATA, keys=("1",)), "keys"),
    "unknown_global": (legacy_bytes({"x": Call("os", "system", "true")}, DATA), "os.system"),
    "builtin_eval": (legacy_bytes({"x": Call("builtins", "eval", "1")}, DATA), "builtins.eval"),
    "dtype_not_allowed": (legacy_bytes(
        {"t": Tensor(Storage("0", 12, "ComplexFloatStorage"), 0, (1,), (1,))}, DATA),
        "ComplexFloatStorage"),
    "not_a_dict": (legacy_bytes([Tensor(Storage("0", 12), 0, (1,), (1,))], DATA), "state dict"),
    "text_file": (b"this is not a weights file\n", ""),
    "empty_file": (b"", ""),
    "zip_storage_too_short": (zip_bytes(state_of((0, (3, 4), (4, 1))), DATA[:6]), "hold"),
    "zip_extent_beyond_storage": (zip_bytes(state_of((0, (8, 8), (8, 1))), DATA), "reaches"),
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_file_is_refused_with_a_clear_error(tmp_path, name):
    payload, message = MALFORMED[name]
    with pytest.raises(torch_pickle.MalformedTorchFile) as refused:
        load(tmp_path, payload, f"{name}.pth")
    text = str(refused.value)
    assert text.startswith(str(tmp_path / f"{name}.pth")) and message in text
    assert "\n" not in text


def test_every_truncation_is_refused(tmp_path):
    payload = _valid()
    for length in range(len(payload)):
        with pytest.raises(torch_pickle.MalformedTorchFile):
            load(tmp_path, payload[:length])


def test_random_byte_flips_never_crash_or_overread(tmp_path):
    payload = bytearray(_valid())
    rng = np.random.default_rng(0)
    loaded_count = 0
    for _ in range(400):
        mutated = bytearray(payload)
        for position in rng.integers(0, len(payload), 3):
            mutated[position] = int(rng.integers(0, 256))
        try:
            state = load(tmp_path, bytes(mutated))
        except torch_pickle.MalformedTorchFile:
            continue
        loaded_count += 1
        stored = np.frombuffer(bytes(mutated[-DATA.nbytes:]), "<u4")  # the file's own floats
        for value in state.values():  # whatever loads holds only those, bit for bit
            if isinstance(value, np.ndarray) and value.dtype == np.float32:
                assert np.isin(value.view("<u4"), stored).all()
    assert loaded_count < 400  # flips do break files; those must be refused, not crash


def test_real_weights_file_truncated_is_refused(tmp_path):
    from koala.models import backbones  # noqa: PLC0415

    real = pathlib.Path(backbones._torch_weights_file("efficientnet_lite0")).read_bytes()
    for fraction in (0.001, 0.3, 0.999):
        with pytest.raises(torch_pickle.MalformedTorchFile,
                           match="truncated|promised|EOF|more than the file"):
            load(tmp_path, real[:int(len(real) * fraction)])
