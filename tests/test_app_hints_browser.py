"""`koala app` with a hint model in a real headless Chromium: a click with a chosen colour
changes the colour there and not far away; the downloaded PNG equals `koala colorize
--hints` of the saved points; undo; bad hint requests get a JSON error.

The model is a hint model as `koala train` makes it and as the default ships (tests/
hint_helpers.py), run through LiteRT like the shipped default.
"""

import json
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
import pytest
import servers
from hint_helpers import PHOTO, hint_bundle, shipped_hint_bundle  # noqa: F401 (fixtures)
from test_app_browser import browser  # noqa: F401 (fixture)
from test_study_browser import chromium  # noqa: F401 (fixture)

from koala import image_io
from koala.inference import colorizer as colorizer_lib


@pytest.fixture(scope="module")
def hint_server(shipped_hint_bundle):  # noqa: F811
    from koala.app.server import create_colorize_app

    colorizer = colorizer_lib.Colorizer(str(shipped_hint_bundle))
    assert colorizer.runtime.engine == "LiteRT" and colorizer.takes_hints
    with servers.running(create_colorize_app(colorizer)) as url:
        yield url


def _pixels(driver, image):
    """The RGB pixels of an <img> as the page shows them (decoded by Chromium)."""
    data = driver.execute_script("""
        const image = arguments[0], canvas = document.createElement("canvas");
        canvas.width = image.naturalWidth; canvas.height = image.naturalHeight;
        const context = canvas.getContext("2d");
        context.drawImage(image, 0, 0);
        return Array.from(context.getImageData(0, 0, canvas.width, canvas.height).data);""",
                                  image)
    height, width = driver.execute_script(
        "return [arguments[0].naturalHeight, arguments[0].naturalWidth]", image)
    return np.array(data, np.uint8).reshape(height, width, 4)[..., :3].astype(int)


def _wait_for_new_image(wait, image, previous_src):
    wait.until(lambda d: image.get_attribute("src") != previous_src
               and d.execute_script("return arguments[0].complete", image)
               and image.find_element("xpath", "./ancestor::article").get_attribute(
                   "data-state") == "done")


def _wait_for_file(path, seconds=20):
    deadline = time.monotonic() + seconds
    while not path.is_file() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert path.is_file(), f"{path.name} was not downloaded"


def test_a_click_with_a_chosen_colour_colours_there_and_the_png_equals_the_cli(
        browser, hint_server, shipped_hint_bundle, shared_data, tmp_path):  # noqa: F811
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    photo = shared_data / PHOTO  # 768 x 512
    browser.set_window_size(1400, 1200)
    browser.get(f"{hint_server}/")
    browser.find_element(By.ID, "files").send_keys(str(photo))
    wait = WebDriverWait(browser, 60)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, ".card[data-state=done]"))
    card = browser.find_element(By.CSS_SELECTOR, ".card")
    assert card.find_element(By.CSS_SELECTOR, ".hint-tools").is_displayed()
    image = card.find_element(By.CSS_SELECTOR, "img.colorized")
    automatic = _pixels(browser, image)

    # choose a colour and a size, then click at photo pixel (600, 100)
    browser.execute_script("arguments[0].value = '#1030ff';",
                           card.find_element(By.CSS_SELECTOR, ".hint-color"))
    size = card.find_element(By.CSS_SELECTOR, ".hint-size")
    size.clear()
    size.send_keys("40")
    shown_width = image.size["width"]
    scale = shown_width / 768
    before = image.get_attribute("src")
    ActionChains(browser).move_to_element_with_offset(
        image, int(600.5 * scale - image.size["width"] / 2),
        int(100.5 * scale - image.size["height"] / 2)).click().perform()
    _wait_for_new_image(wait, image, before)
    hinted = _pixels(browser, image)
    change = np.abs(hinted - automatic).max(-1)
    near, far = change[80:121, 580:621].mean(), change[400:, :200].mean()
    assert near > 2 * max(far, 0.05), (near, far)
    assert card.find_element(By.CSS_SELECTOR, ".hint-count").text == "1 point"
    wait.until(lambda d: card.find_elements(By.CSS_SELECTOR, ".palette .swatch"))

    # save the points and the PNG; the CLI with the saved JSON gives the same pixels
    card.find_element(By.CSS_SELECTOR, ".hint-save").click()
    card.find_element(By.CSS_SELECTOR, "a.download").click()
    saved, png = tmp_path / "downloads" / "kodim23-hints.json", \
        tmp_path / "downloads" / "kodim23-colorized.png"
    _wait_for_file(saved)
    _wait_for_file(png)
    hints = json.loads(saved.read_text())
    (point,) = hints["kodim23.png"]
    assert point["rgb"] == "#1030ff" and point["size"] == 40
    assert abs(point["x"] - 600) <= 1.5 and abs(point["y"] - 100) <= 1.5
    subprocess.run([sys.executable, "-m", "koala.cli", "colorize", str(photo), "--output",
                    str(tmp_path / "cli"), "--model", str(shipped_hint_bundle), "--hints",
                    str(saved)], check=True, capture_output=True, timeout=300)
    assert np.array_equal(image_io.read_image(png),
                          image_io.read_image(tmp_path / "cli" / "kodim23.png"))

    # undo brings back the automatic result
    before = image.get_attribute("src")
    card.find_element(By.CSS_SELECTOR, ".hint-undo").click()
    _wait_for_new_image(wait, image, before)
    assert np.abs(_pixels(browser, image) - automatic).max() <= 1
    assert card.find_element(By.CSS_SELECTOR, ".hint-count").text == "0 points"


def _post(url, path, data, headers):
    request = urllib.request.Request(url, data=data, headers={
        "Content-Type": "application/octet-stream", "X-Filename": path, **headers})
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def test_bad_hint_requests_get_a_json_error(hint_server, shared_data):
    data = (shared_data / PHOTO).read_bytes()
    cases = [("/api/colorize", {"X-Hints": urllib.parse.quote("[{")}, "not JSON"),
             ("/api/colorize", {"X-Hints": urllib.parse.quote(json.dumps(
                 [{"x": 5000, "y": 1, "ab": [0, 0]}]))}, "outside the 768x512 image"),
             ("/api/colorize", {"X-Hints": urllib.parse.quote(json.dumps(
                 [{"x": 5, "y": 1, "rgb": "teal"}]))}, "is not a colour"),
             ("/api/palette?x=1", {}, "needs numbers x and y"),
             ("/api/palette?x=1&y=9999", {}, "outside")]
    for route, headers, message in cases:
        status, body = _post(hint_server + route, "kodim23.png", data, headers)
        assert status == 422, (route, body[:200])
        error = json.loads(body)["error"]
        assert "kodim23.png" in error and message in error, error
