"""The web page of `motif-lite serve` in headless Chromium (Debian's chromium + chromium-driver, which .ci/run
installs): enter the API key, submit a tiny job from the form, watch it finish and play in place, delete it."""

from __future__ import annotations

import os
import re
import shutil
from urllib.parse import urljoin

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from server_helpers import InProcessServer, wait_for  # noqa: E402
from tiny_pipeline import make_tiny_checkpoint  # noqa: E402

from motif_lite import load_pipeline  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


def browser():
    """Headless Chromium, or a skip on a machine without it (CI has it: there a missing browser fails)."""
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        selenium = None
    else:
        selenium = webdriver
    if selenium is None or CHROMIUM is None or CHROMEDRIVER is None:
        message = "needs selenium and Debian's chromium + chromium-driver (see .ci/run)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture
def driver():
    chromium = browser()
    try:
        yield chromium
    finally:
        chromium.quit()


PLAYING = """
const video = document.querySelector('li.job[data-status="completed"] video.result');
return video !== null && video.readyState >= 2 && !video.paused && video.currentTime > 0 && video.videoWidth;
"""


def test_page_submits_a_job_and_plays_it(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    make_tiny_checkpoint(tmp_path / "ckpt")
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch")
    with InProcessServer(pipe, tmp_path / "data", api_key="page-key") as server:
        driver.get(server.url + "/")
        key = driver.find_element(By.ID, "api-key")
        key.send_keys("page-key")
        driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
        driver.find_element(By.ID, "prompt").send_keys("a red fox runs through snow")
        Select(driver.find_element(By.ID, "size")).select_by_value("custom")
        for field, value in (("width", "48"), ("height", "32"), ("frames", "5"), ("steps", "1"), ("seed", "3")):
            element = driver.find_element(By.ID, field)
            element.clear()
            element.send_keys(value)
        driver.find_element(By.ID, "submit").click()

        width = wait_for(lambda: driver.execute_script(PLAYING), 180, "the video to play in the page", interval=0.5)
        assert width == 48
        driver.save_screenshot(str(tmp_path / "page.png"))
        (video,) = server.client(api_key="page-key").videos.list()
        assert (video.status, video.size, video.settings["num_frames"], video.settings["seed"]) == (
            "completed", "48x32", 5, 3)  # fmt: skip
        card = driver.find_element(By.CSS_SELECTOR, f'li.job[data-id="{video.id}"]')
        assert card.find_element(By.LINK_TEXT, "Download").get_attribute("download") == f"{video.id}.mp4"
        card.find_element(By.XPATH, ".//button[text()='Delete']").click()
        wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, "li.job"), 30, "the card to go")
        assert server.request("GET", f"/v1/videos/{video.id}", headers={"Authorization": "Bearer page-key"})[0] == 404
        assert driver.find_element(By.ID, "form-error").text == ""


def test_the_page_and_its_api_calls_stay_under_the_path_it_is_served_at(tmp_path):
    # The page named /static/app.js and /v1/videos from the root: behind a reverse proxy that serves the server at
    # https://host/motif/ it loaded without its script and style, and would have called the proxy's own /v1.
    from motif_lite.server.app import STATIC

    page = "https://proxy.example/motif/"
    assets = re.findall(r'(?:href|src)="([^"]+)"', (STATIC / "index.html").read_text())
    calls = re.findall(r'api\("([^"]+)"', (STATIC / "app.js").read_text())
    assert len(assets) == 2 and len(calls) == 6
    outside = [url for url in assets + calls if not urljoin(page, url).startswith(page)]
    assert outside == []
    with InProcessServer(None, tmp_path / "data") as server:  # what the proxy forwards them to is served
        for url in assets + ["v1/videos", "v1/models"]:
            assert server.request("GET", "/" + urljoin(page, url).removeprefix(page))[0] == 200, url
