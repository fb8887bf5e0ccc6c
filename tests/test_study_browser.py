"""The study page in a real headless Chromium: answer every photo, see the end and the results.

Chromium and its WebDriver are Debian packages; tests/install_chromium.sh installs them
where missing (CI runs as root); elsewhere the test skips with the reason, except when
CI=true: there a browser that cannot be installed fails the tests instead.
"""

import os
import pathlib
import shutil
import subprocess

import cv2
import pytest
import servers

from koala.study.server import create_study_app
from koala.study.catalog import Catalog
from koala.study.db import StudyDB

CHROMIUM = pathlib.Path("/usr/bin/chromium")
CHROMEDRIVER = pathlib.Path("/usr/bin/chromedriver")
INSTALLER = pathlib.Path(__file__).with_name("install_chromium.sh")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--window-size=1000,800")
RESULTS_KEY = "browser-test-key"


def browser_unavailable(reason):
    """Skips a browser test, except in CI (CI=true), where a missing browser is a failure:
    there the browser tests must run, not vanish into a skip."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"CI=true, and the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium():
    """Installs Chromium + chromedriver when missing and possible, else skips (fails in CI)."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        if os.geteuid() != 0 or shutil.which("apt-get") is None:
            browser_unavailable("chromium/chromium-driver missing and not root to apt-get "
                                "install them")
        result = subprocess.run(["sh", str(INSTALLER)], capture_output=True, text=True,
                                timeout=900)
        if result.returncode != 0:
            browser_unavailable(f"could not install chromium: {result.stderr[-500:]}")
    try:
        import selenium  # noqa: F401, PLC0415
    except ImportError as error:
        browser_unavailable(f"selenium is not installed: {error}")
    return CHROMIUM


@pytest.fixture
def browser(chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(chromium)
    for flag in FLAGS + (f"--user-data-dir={tmp_path / 'chromium-profile'}",):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture
def study(tmp_path, shared_data):
    """The app on 3 benchmark photos and 3 'colorized' (desaturated) ones, in a thread."""
    photos = sorted((shared_data / "benchmark" / "kodak24").glob("*.png"))[:6]
    if len(photos) < 6:
        pytest.skip("fewer than 6 Kodak photos in ../shared/data/benchmark/kodak24")
    (tmp_path / "real").mkdir()
    (tmp_path / "colorized").mkdir()
    for index, photo in enumerate(photos):
        small = cv2.resize(cv2.imread(str(photo)), (192, 128), interpolation=cv2.INTER_AREA)
        if index >= 3:  # a crude fake: half the saturation
            hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
            hsv[..., 1] //= 2
            small = cv2.cvtColor(hsv, cv2.COLOR_HSV2BGR)
        cv2.imwrite(str(tmp_path / ("real" if index < 3 else "colorized") / photo.name), small)
    catalog = Catalog.from_folders(tmp_path / "real", tmp_path / "colorized")
    app = create_study_app(catalog, StudyDB(tmp_path / "study.sqlite"), RESULTS_KEY)
    with servers.running(app) as url:
        yield url, catalog


def answer_every_photo(driver, base, catalog, respond):
    """Answer each photo shown with respond(driver, answer); returns {kind: [answers]}."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 15)
    driver.get(f"{base}/")
    answers = {"real": [], "colorized": []}
    for step in range(len(catalog)):
        wait.until(lambda d: d.find_element(By.ID, "real").is_enabled())
        assert driver.find_element(By.ID, "progress").text == f"Photo {step + 1} of {len(catalog)}"
        image_id = driver.find_element(By.ID, "photo").get_attribute("src").rsplit("/", 1)[-1]
        answer = "real" if step % 3 else "fake"
        answers[catalog.get(image_id).kind].append(answer)
        respond(driver, answer)
    wait.until(lambda d: d.find_element(By.ID, "done").is_displayed())
    assert driver.find_element(By.ID, "done-count").text == f"{len(catalog)} of {len(catalog)}"
    assert not driver.find_element(By.ID, "question").is_displayed()
    return answers


def test_participants_answer_every_photo_and_results_count_them(browser, study):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.action_chains import ActionChains

    base, catalog = study
    def click(driver, answer):
        driver.find_element(By.ID, answer).click()

    def press_key(driver, answer):
        ActionChains(driver).send_keys(answer[0]).perform()

    by_click = answer_every_photo(browser, base, catalog, click)
    browser.delete_all_cookies()  # a second participant, answering with the R / F keys
    by_key = answer_every_photo(browser, base, catalog, press_key)
    assert sorted(len(answers) for answers in by_click.values()) == [3, 3]

    browser.get(f"{base}/results?key={RESULTS_KEY}")
    cell = {key: browser.find_element(By.ID, key).text
            for key in ("participants", "answers", "fooled", "real")}
    fooled = by_click["colorized"].count("real") + by_key["colorized"].count("real")
    control = by_click["real"].count("real") + by_key["real"].count("real")
    assert cell["participants"] == "2" and cell["answers"] == "12"
    assert cell["fooled"].startswith(f"{100 * fooled / 6:.1f}%")
    assert cell["real"].startswith(f"{100 * control / 6:.1f}%")
    rows = browser.find_elements(By.CSS_SELECTOR, "#per-image tr")[1:]
    answer_counts = [int(row.find_elements(By.TAG_NAME, "td")[2].text) for row in rows]
    assert len(rows) == 6 and sum(answer_counts) == 12
