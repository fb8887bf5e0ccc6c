"""`koala app` in a real headless Chromium: upload, see, download; bad uploads; concurrency.

The server is the app `koala app` serves, on the shipped default model (LiteRT; its copy
is built once into a private cache here), in a thread on a free loopback port. Chromium
comes from tests/install_chromium.sh, as for the study (tests/test_study_browser.py).
"""

import concurrent.futures
import http.client
import ipaddress
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import cv2
import numpy as np
import pytest
import servers
from colorize_helpers import tiny_bundle  # noqa: F401 (fixture)
from test_study_browser import CHROMEDRIVER, FLAGS, chromium  # noqa: F401 (fixture)

from koala import image_io
from koala.inference import colorizer as colorizer_lib

MAX_BYTES = 8 << 20
MAX_PIXELS = 2_000_000


@pytest.fixture(scope="module")
def colorizer(tmp_path_factory):
    """The default model through LiteRT, its .tflite built into a private cache."""
    previous = os.environ.get("KOALA_CACHE")
    os.environ["KOALA_CACHE"] = str(tmp_path_factory.mktemp("koala_cache"))
    try:
        loaded = colorizer_lib.Colorizer("default")
    finally:
        os.environ.pop("KOALA_CACHE") if previous is None else os.environ.update(
            KOALA_CACHE=previous)
    assert loaded.runtime.engine == "LiteRT"
    return loaded


@pytest.fixture(scope="module")
def server(colorizer):
    from koala.app.server import create_colorize_app

    with servers.running(create_colorize_app(colorizer, max_bytes=MAX_BYTES,
                                             max_pixels=MAX_PIXELS)) as url:
        yield url


@pytest.fixture
def browser(chromium, tmp_path):  # noqa: F811
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in FLAGS + (f"--user-data-dir={tmp_path / 'chromium-profile'}",):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {
        "download.default_directory": str(tmp_path / "downloads"),
        "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def upload(driver, base, *paths):
    """Opens the page and picks `paths` in its file input; returns the WebDriverWait."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(f"{base}/")
    driver.find_element(By.ID, "files").send_keys("\n".join(str(p) for p in paths))
    wait = WebDriverWait(driver, 60)
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, ".card[data-state]")) == len(paths))
    return wait


def test_upload_shows_the_photo_colorized_at_its_size_and_downloads_a_png(
        browser, server, colorizer, shared_data, tmp_path):
    from selenium.webdriver.common.by import By

    photo = shared_data / "benchmark" / "bsds500_val" / "103070.jpg"  # portrait, 321x481
    upload(browser, server, photo)
    card = browser.find_element(By.CSS_SELECTOR, ".card")
    assert card.get_attribute("data-state") == "done", card.text
    image = card.find_element(By.CSS_SELECTOR, "img.colorized")
    size = browser.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]",
                                  image)
    original = image_io.read_image(photo)
    assert size == [original.shape[1], original.shape[0]]
    assert card.find_element(By.CSS_SELECTOR, ".compare").is_displayed()
    card.find_element(By.CSS_SELECTOR, "a.download").click()
    target = tmp_path / "downloads" / "103070-colorized.png"
    deadline = time.monotonic() + 20
    while not target.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert target.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    downloaded = image_io.read_image(target)
    assert downloaded.shape == original.shape[:2] + (3,)
    assert np.array_equal(downloaded, colorizer_lib.colorize(original, colorizer))


def test_bad_uploads_show_a_clear_message_in_the_page(browser, server, tmp_path):
    from selenium.webdriver.common.by import By

    text = tmp_path / "notes.jpg"
    text.write_text("shopping list: eucalyptus\n")
    wide = tmp_path / "wide.png"  # 3 MP of flat gray: a small file above the pixel limit
    cv2.imwrite(str(wide), np.full((1000, 3000), 128, np.uint8))
    big = tmp_path / "big.png"
    big.write_bytes(os.urandom(MAX_BYTES + 1))
    upload(browser, server, text, wide, big)
    messages = {card.find_element(By.CSS_SELECTOR, ".name").text:
                (card.get_attribute("data-state"), card.find_element(By.CSS_SELECTOR, ".status"))
                for card in browser.find_elements(By.CSS_SELECTOR, ".card")}
    for name, expected in (("notes.jpg", "not an image"), ("wide.png", "exceeds the limit"),
                           ("big.png", "larger than the upload limit")):
        state, status = messages[name]
        assert state == "error" and status.is_displayed()
        assert name in status.text and expected in status.text, status.text
        assert "error" in status.get_attribute("class")


def post(base, path, data=None):
    """POSTs a photo's bytes as the page does; returns (status, body, headers)."""
    request = urllib.request.Request(
        f"{base}/api/colorize", data=path.read_bytes() if data is None else data,
        headers={"Content-Type": "application/octet-stream",
                 "X-Filename": urllib.parse.quote(path.name)})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read(), response.headers
    except urllib.error.HTTPError as error:
        return error.code, error.read(), error.headers


def test_twenty_concurrent_uploads_are_each_answered_with_their_own_photo(
        server, colorizer, shared_data):
    photos = sorted((shared_data / "benchmark" / "bsds500_val").glob("*.jpg"))[:12]
    photos += sorted((shared_data / "benchmark" / "kodak24").glob("*.png"))[:8]
    assert len(photos) == 20
    start = time.perf_counter()
    with concurrent.futures.ThreadPoolExecutor(len(photos)) as pool:
        answers = list(pool.map(lambda photo: post(server, photo), photos))
    wall = time.perf_counter() - start
    for photo, (status, body, headers) in zip(photos, answers):
        assert status == 200, body[:200]
        expected = colorizer_lib.colorize(image_io.read_image(photo), colorizer)
        received = image_io.decode(body, photo.name)
        assert np.array_equal(received, expected), photo.name  # its own photo, not another's
        assert headers["Cache-Control"] == "no-store"
    print(f"\n20 concurrent uploads answered in {wall:.2f} s ({20 / wall:.1f} photos/s)")


def test_api_refuses_oversized_and_undecodable_bodies_with_json(server, tmp_path):
    photo = tmp_path / "x.jpg"
    photo.write_bytes(b"")
    status, body, _ = post(server, photo, b"\xff\xd8\xff" + b"\0" * 100)
    assert status == 422 and b"x.jpg" in body
    connection = http.client.HTTPConnection(urllib.parse.urlsplit(server).netloc, timeout=30)
    connection.putrequest("POST", "/api/colorize")
    connection.putheader("Content-Length", str(MAX_BYTES + 1))  # refused before it is sent
    connection.putheader("X-Filename", "huge.tif")
    connection.endheaders()
    answer = connection.getresponse()
    assert answer.status == 413 and b"huge.tif: larger than the upload limit" in answer.read()
    connection.close()
    request = urllib.request.Request(f"{server}/api/colorize?vividness=2", data=b"x")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=30)
    assert refused.value.code == 422


def test_app_binds_loopback_by_default(tiny_bundle, tmp_path):  # noqa: F811
    """`koala app` without --host: the socket it listens on is a loopback one, reachable
    through 127.0.0.1 and refused through this machine's other addresses."""
    import psutil  # noqa: PLC0415 (installed with ipykernel and tensorflow-datasets)

    process = subprocess.Popen(
        [sys.executable, "-m", "koala.cli", "app", "--model", str(tiny_bundle), "--port", "0"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "KOALA_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"})
    try:
        listening, deadline = [], time.monotonic() + 120
        while not listening:
            assert process.poll() is None, process.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "koala app did not listen within 120 s"
            time.sleep(0.2)
            listening = [c.laddr for c in psutil.Process(process.pid).net_connections("all")
                         if c.status == psutil.CONN_LISTEN]
        assert all(ipaddress.ip_address(address.ip).is_loopback for address in listening), \
            listening
        port = listening[0].port
        socket.create_connection(("127.0.0.1", port), timeout=10).close()
        others = [address.address for addresses in psutil.net_if_addrs().values()
                  for address in addresses if address.family in (socket.AF_INET, socket.AF_INET6)
                  and not ipaddress.ip_address(address.address.split("%")[0]).is_loopback]
        for address in others:
            with pytest.raises(OSError):  # refused: nothing listens there
                socket.create_connection((address, port), timeout=5).close()
    finally:
        process.terminate()
        process.wait(30)



def _shown_png(driver, image):
    """The bytes of what an <img> shows (its blob URL), read inside the page."""
    import base64

    encoded = driver.execute_async_script("""
        const done = arguments[arguments.length - 1];
        fetch(arguments[0].src).then((r) => r.arrayBuffer()).then((buffer) => {
          let text = "";
          new Uint8Array(buffer).forEach((byte) => { text += String.fromCharCode(byte); });
          done(btoa(text));
        });""", image)
    return base64.b64decode(encoded)


def test_vividness_slider_recolorizes_the_photo(browser, server, colorizer, shared_data):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    default = colorizer.bundle.meta.get("vividness")
    if default is None:
        pytest.skip("the model has no vividness control")
    photo = shared_data / "benchmark" / "kodak24" / "kodim23.png"
    # The page's CSP (connect-src 'self') rightly forbids fetch(blob:); only the test reads
    # the shown bytes back, so only the test's browser bypasses it.
    browser.execute_cdp_cmd("Page.setBypassCSP", {"enabled": True})
    upload(browser, server, photo)
    card = browser.find_element(By.CSS_SELECTOR, ".card")
    slider = card.find_element(By.CSS_SELECTOR, "input.vividness")
    assert slider.is_displayed() and int(slider.get_attribute("value")) == round(100 * default)
    original = image_io.read_image(photo)
    shown = card.find_element(By.CSS_SELECTOR, "img.colorized")
    before = image_io.decode(_shown_png(browser, shown))
    assert np.array_equal(before, colorizer_lib.colorize(original, colorizer))
    browser.execute_script(
        "arguments[0].value = 100; arguments[0].dispatchEvent(new Event('change'))", slider)
    WebDriverWait(browser, 60).until(lambda d: card.get_attribute("data-state") == "done")
    after = image_io.decode(_shown_png(browser, shown))
    assert np.array_equal(after, colorizer_lib.colorize(original, colorizer, vividness=1.0))
    assert np.abs(after.astype(int) - before).mean() > 0.5
