"""The one image reader: pixel limit before decoding, ICC to sRGB, depth by mode, no TF."""

import json
import subprocess
import sys

import cv2
import hostile_corpus
import numpy as np
import pytest
from PIL import Image

from koala import image_io
from koala.data import images

BOMB_PROBE = """
import json, resource, sys, time
from koala import image_io
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
try:
    image_io.read_image(sys.argv[1])
    outcome = "decoded"
except image_io.ImageTooLarge as error:
    outcome = str(error)
seconds = time.perf_counter() - start
growth_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
print(json.dumps({"outcome": outcome, "seconds": seconds, "rss_growth_mb": growth_mb}))
"""


@pytest.fixture(scope="module")
def bomb(tmp_path_factory):
    return hostile_corpus.write_png_bomb(tmp_path_factory.mktemp("bomb") / "huge.png")


def test_png_bomb_is_refused_fast_with_bounded_memory(bomb):
    assert bomb.stat().st_size < 1_000_000  # a small file that declares 400 MP
    result = subprocess.run([sys.executable, "-c", BOMB_PROBE, str(bomb)], check=True,
                            capture_output=True, text=True)
    figures = json.loads(result.stdout.strip().splitlines()[-1])
    assert str(bomb) in figures["outcome"] and "--max_pixels" in figures["outcome"]
    assert figures["seconds"] < 1.0, figures
    assert figures["rss_growth_mb"] < 200, figures


def test_limit_names_file_size_and_flag(tmp_path):
    path = tmp_path / "wide.png"
    cv2.imwrite(str(path), np.zeros((100, 300), np.uint8))
    with pytest.raises(image_io.ImageTooLarge) as refused:
        image_io.read_image(path, max_pixels=29_999)
    assert str(refused.value) == (f"{path}: 300x100 pixels exceeds the limit of 29999 pixels "
                                  "(raise it with --max_pixels)")
    assert image_io.read_image(path, max_pixels=30_000).shape == (100, 300)


def test_records_reader_uses_the_same_limit(bomb):
    with pytest.raises(images.Skip) as skip:
        images.decode(bomb.read_bytes())
    assert skip.value.reason == images.TOO_LARGE and "--max_pixels" in skip.value.detail


def test_display_p3_photo_is_converted_to_srgb(tmp_path):
    base = hostile_corpus.base_photo()
    p3_image, profile = hostile_corpus.to_display_p3(base)
    p3_image.save(tmp_path / "p3.png", icc_profile=profile)
    p3_image.save(tmp_path / "p3.jpg", quality=98, subsampling=0, icc_profile=profile)
    stored = np.asarray(p3_image).astype(np.float64)
    assert np.abs(stored - base).mean() > 5  # P3 numbers are not sRGB numbers
    for name, tolerance in (("p3.png", 0.5), ("p3.jpg", 2.0)):
        read = image_io.read_image(tmp_path / name)
        assert np.abs(read.astype(np.float64) - base).mean() < tolerance, name
        rgb = images.decode((tmp_path / name).read_bytes())  # records read the same way
        assert np.abs(rgb.astype(np.float64) - base).mean() < tolerance, name


def test_srgb_tagged_photo_is_left_untouched(tmp_path):
    from PIL import ImageCms  # noqa: PLC0415

    base = hostile_corpus.base_photo()
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.fromarray(base).save(tmp_path / "s.png", icc_profile=srgb)
    assert np.array_equal(image_io.read_image(tmp_path / "s.png"), base)


def test_sixteen_bit_gray_is_scaled_by_its_mode_not_its_values(tmp_path):
    dark = np.tile(np.arange(0, 256, 4, dtype=np.uint16), (8, 1))  # all values <= 255
    cv2.imwrite(str(tmp_path / "dark16.png"), dark)
    read = image_io.read_image(tmp_path / "dark16.png")
    assert read.dtype == np.uint16 and np.array_equal(read, dark)
    rgb = images.decode((tmp_path / "dark16.png").read_bytes())
    assert rgb.max() <= 1  # 252 / 65535 of white is black, not 252 / 255


def test_gray_alpha_and_rgba_composite_on_white_for_records(tmp_path):
    gray = np.full((4, 6), 100, np.uint8)
    alpha = np.zeros_like(gray)
    alpha[:, 3:] = 255
    Image.fromarray(np.dstack([gray, alpha]), "LA").save(tmp_path / "la.png")
    rgb = images.decode((tmp_path / "la.png").read_bytes())
    assert (rgb[:, :3] == 255).all() and (rgb[:, 3:] == 100).all()


def test_corpus_reads_as_expected(tmp_path):
    entries = hostile_corpus.build(tmp_path)
    for name, entry in entries.items():
        if entry.outcome == "ok":
            hostile_corpus.check(entry, image_io.to_rgb8(image_io.read_image(tmp_path / name)))
        else:
            with pytest.raises(image_io.UnreadableImage) as refused:
                image_io.read_image(tmp_path / name)
            assert str(tmp_path / name) in str(refused.value), name
            assert entry.message in str(refused.value), name


def test_import_stays_free_of_tensorflow():
    code = "import sys, koala.image_io; print('tensorflow' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                            text=True)
    assert result.stdout.strip() == "False"


def test_gray_write_round_trip(tmp_path):
    gray = np.arange(48, dtype=np.uint8).reshape(6, 8)
    image_io.write_image(tmp_path / "g.png", gray)
    assert np.array_equal(image_io.read_image(tmp_path / "g.png"), gray)


def test_limit_above_pillows_own_is_honoured(bomb):
    """Pillow refuses above 179 MP by itself; the user's --max_pixels decides instead."""
    with open(bomb, "rb") as file:
        assert image_io.open_header(file, bomb, max_pixels=400_000_000).size == (20000, 20000)
    with open(bomb, "rb") as file, pytest.raises(image_io.ImageTooLarge, match="20000x20000"):
        image_io.open_header(file, bomb, max_pixels=399_999_999)
