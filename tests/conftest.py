"""Shared fixtures: where the real photos live, and a quiet TensorFlow."""

import os
import pathlib
import sys

# Tests live in folders that mirror the package (tests/training/ for koala/training/, ...);
# their shared helpers (colorize_helpers, servers, hostile_corpus) stay here, importable from
# every folder.
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

REPO = pathlib.Path(__file__).resolve().parents[1]


def shared_data_dir():
    """../shared/data beside the checkout (or $KOALA_SHARED/data); None when absent."""
    root = pathlib.Path(os.environ.get("KOALA_SHARED", REPO.parent / "shared"))
    data = root / "data"
    return data if data.is_dir() else None


@pytest.fixture(scope="session")
def shared_data():
    """Path to ../shared/data; skips the test on a user's clone that lacks it."""
    data = shared_data_dir()
    if data is None:
        pytest.skip("../shared/data is absent (only CI and the dev machines have it)")
    return data


@pytest.fixture(scope="session")
def sample_photos(shared_data):
    """A function n -> n real colour photos (sorted paths) from the validation set."""
    paths = sorted((shared_data / "photos" / "val").rglob("*.jpg"))
    if not paths:
        pytest.skip("no photos in ../shared/data/photos/val")

    def take(n):
        step = max(1, len(paths) // n)
        return paths[::step][:n]

    return take
