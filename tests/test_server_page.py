"""The web page of `motif-lite serve` in headless Chromium (Debian's chromium + chromium-driver, which .ci/run
installs): enter the API key, submit a tiny job from the form, watch it finish and play in place, delete it; pick
LoRAs and advanced settings and check the job the server received; see the API's errors next to the form."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import pytest
import torch

pytest.importorskip("diffusers")
pytest.importorskip("fastapi")
from missing_tools import skip_here_fail_on_ci  # noqa: E402
from server_helpers import InProcessServer, PrefixProxy, wait_for  # noqa: E402
from tiny_pipeline import make_tiny_checkpoint  # noqa: E402

from motif_lite import load_pipeline  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:The Sora API:DeprecationWarning")

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture(scope="module")
def checkpoint(shared_checkpoint) -> Path:
    return shared_checkpoint[0]  # read only, as conftest's shared_checkpoint says


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
        skip_here_fail_on_ci("needs selenium and Debian's chromium + chromium-driver (see .ci/run)")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--autoplay-policy=no-user-gesture-required", "--window-size=1200,900"):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    driver.set_script_timeout(30)
    return driver


@pytest.fixture(scope="module")
def chromium():
    """One Chromium for the module, not one per test: 16 starts took 20 s of this file's 79 s on a busy 2-core
    machine. `driver` clears what a test leaves in it."""
    started = browser()
    try:
        yield started
    finally:
        started.quit()


@pytest.fixture
def driver(chromium):
    """The module's Chromium, left as a fresh one would be for the next test: no alert, the page's storage
    (localStorage: the API key and the form) and any cookies cleared, no phone emulation, a blank page."""
    from selenium.common.exceptions import NoAlertPresentException

    yield chromium
    with contextlib.suppress(NoAlertPresentException):
        chromium.switch_to.alert.dismiss()
    page = urlsplit(chromium.current_url)
    if page.scheme in ("http", "https"):  # each test's page is on its own server's origin
        origin = f"{page.scheme}://{page.netloc}"
        chromium.execute_cdp_cmd("Storage.clearDataForOrigin", {"origin": origin, "storageTypes": "all"})
    chromium.execute_cdp_cmd("Network.clearBrowserCookies", {})
    chromium.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    chromium.get("about:blank")


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
        # The API's 401 says "send Authorization: Bearer KEY", which a page's user cannot act on: the page says
        # where the key goes, and when the one typed is wrong.
        queue_error = lambda: driver.find_element(By.ID, "queue-error").text  # noqa: E731
        assert wait_for(queue_error, 30, "the missing key's message").startswith(
            "this server wants an API key: type the key motif-lite serve was started with (--api-key or "
            "$MOTIF_LITE_API_KEY) in the API key field at the top of the page"
        )
        key = driver.find_element(By.ID, "api-key")
        for typed in ("wrong-key", "page-key"):
            key.clear()
            key.send_keys(typed)
            driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", key)
            if typed == "wrong-key":
                wrong = "the API key typed at the top of the page is not the server's"
                wait_for(lambda: queue_error().startswith(wrong), 30, "the wrong key's message")  # noqa: B023
        wait_for(lambda: queue_error() == "", 30, "the queue to be read with the right key")
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
        # Delete removes the video and its file for good: the page asks first, and keeps it when told no.
        card.find_element(By.XPATH, ".//button[text()='Delete']").click()
        driver.switch_to.alert.dismiss()
        assert server.request("GET", f"/v1/videos/{video.id}", headers={"Authorization": "Bearer page-key"})[0] == 200
        card.find_element(By.XPATH, ".//button[text()='Delete']").click()
        driver.switch_to.alert.accept()
        wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, "li.job"), 30, "the card to go")
        assert server.request("GET", f"/v1/videos/{video.id}", headers={"Authorization": "Bearer page-key"})[0] == 404
        assert driver.find_element(By.ID, "form-error").text == ""


def test_the_page_and_its_api_calls_stay_under_the_path_it_is_served_at(pipe, tmp_path):
    # The page named /static/app.js and /v1/videos from the root: behind a reverse proxy that serves the server at
    # https://host/motif/ it loaded without its script and style, and would have called the proxy's own /v1.
    from motif_lite.server.app import STATIC

    page = "https://proxy.example/motif/"
    assets = re.findall(r'(?:href|src)="([^"]+)"', (STATIC / "index.html").read_text())
    calls = re.findall(r'(?:api|fetch)\("([^"]+)"', (STATIC / "app.js").read_text())  # fetch: /health's, no key
    assert len(assets) == 2 and len(calls) == 10
    outside = [url for url in assets + calls if not urljoin(page, url).startswith(page)]
    assert outside == []
    with InProcessServer(pipe, tmp_path / "data") as server:  # what the proxy forwards them to is served
        for url in assets + ["v1/videos", "v1/models", "v1/loras", "v1/info", "health"]:
            assert server.request("GET", "/" + urljoin(page, url).removeprefix(page))[0] == 200, url


def test_the_page_behind_a_proxy_with_nginx_defaults_says_what_the_proxy_answered(driver, pipe, tmp_path):
    # Behind a proxy the page met answers that are not the server's: opened without its final slash (Caddy's
    # `handle_path /motif*`) it named its script and the API from the host's root and stayed empty; an upload over
    # nginx's 1 MB default, under the server's limit, showed "413 " (HTTP/2 has no status text) with no hint of the
    # proxy's limit; the server stopped, the proxy's 502 showed "502 Bad Gateway", not that the server is down.
    from selenium.webdriver.common.by import By

    with InProcessServer(pipe, tmp_path / "data") as server, PrefixProxy(server.port) as proxy:
        driver.get(proxy.url + "/motif")
        wait_for(lambda: driver.find_element(By.ID, "model").text, 30, "the model's name, read through the proxy")
        assert urlsplit(driver.current_url).path == "/motif/"
        image = tmp_path / "photo.png"
        image.write_bytes(bytes(1536 * 1024))  # over the proxy's 1 MB, under the server's 20 MiB: the proxy refuses
        driver.find_element(By.ID, "prompt").send_keys("a red fox runs through snow")
        driver.find_element(By.ID, "image").send_keys(str(image))
        driver.find_element(By.ID, "submit").click()
        form_error = lambda: driver.find_element(By.ID, "form-error").text  # noqa: E731
        assert wait_for(form_error, 30, "the proxy's 413 said") == (
            "the request is larger than the proxy in front of the motif-lite server lets through (its answer was "
            "413, not the server's): raise the proxy's limit, e.g. nginx's client_max_body_size, to the server's "
            '(docs/server.md, "Behind a reverse proxy")'
        )
        assert server.request("GET", "/v1/videos")[1]["data"] == []
        proxy.down = True
        queue_error = lambda: driver.find_element(By.ID, "queue-error").text  # noqa: E731
        assert wait_for(queue_error, 30, "the proxy's 502 said").startswith("cannot reach the motif-lite server: ")
        proxy.down = False
        wait_for(lambda: queue_error() == "", 30, "the page to go on once the proxy reaches the server again")


def test_the_pages_copies_of_the_api_limits_and_official_settings_agree_with_the_server():
    # The page names a job's settings that differ from the official ones and stops at the API's LoRA limit: both
    # are copies in app.js, which must follow the Python they come from.
    from motif_lite.choices import SAMPLERS
    from motif_lite.io.video import default_crf
    from motif_lite.request import I2V_SHIFT, REQUEST_DEFAULTS, T2V_SHIFT
    from motif_lite.sampling.guidance import RECOMMENDED_APG
    from motif_lite.server.app import STATIC
    from motif_lite.server.schema import MAX_JOB_LORAS

    script = (STATIC / "app.js").read_text()
    official = json.loads(re.search(r"const OFFICIAL = (\{.*?\});", script, re.S)[1])
    assert official == {"guidance_method": "apg", "guidance_scale": RECOMMENDED_APG.scale,
                        "apg_eta": RECOMMENDED_APG.eta, "apg_norm_threshold": RECOMMENDED_APG.norm_threshold,
                        "apg_momentum": RECOMMENDED_APG.momentum, "sampling_method": "euler",
                        "fps": REQUEST_DEFAULTS.fps, "crf": default_crf("video.mp4")}  # fmt: skip
    shift = json.loads(re.search(r"const OFFICIAL_SHIFT = (\{.*?\});", script)[1])
    assert shift == {"text_to_video": T2V_SHIFT, "image_to_video": I2V_SHIFT}
    assert int(re.search(r"const MAX_JOB_LORAS = (\d+);", script)[1]) == MAX_JOB_LORAS
    page = (STATIC / "index.html").read_text()
    # Each advanced field's tooltip names the default an empty field gets, from the same values.
    titles = dict(re.findall(r'name="(\w+)"[^>]*title="([^"]*)"', page))
    for name, value in {**official, "flow_shift": f"{T2V_SHIFT:g} ({I2V_SHIFT:g} from a first frame)"}.items():
        value = f"{value:g}" if isinstance(value, float | int) else value
        assert re.search(rf"the official {re.escape(value)}(?![\d.])", titles[name]), name
    select = re.search(r'<select id="sampling-method".*?</select>', page, re.S)[0]
    assert re.findall(r'<option value="([^"]*)"', select) == ["", *SAMPLERS]  # "" = the checkpoint's or default


def type_into(driver, element_id: str, value: str) -> None:
    from selenium.webdriver.common.by import By

    element = driver.find_element(By.ID, element_id)
    element.clear()
    element.send_keys(value)


def tiny_job_in_the_form(driver, prompt: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    driver.find_element(By.ID, "prompt").send_keys(prompt)
    Select(driver.find_element(By.ID, "size")).select_by_value("custom")
    for field, value in (("width", "48"), ("height", "32"), ("frames", "5"), ("steps", "1"), ("seed", "3")):
        type_into(driver, field, value)


def lora_row(driver, name: str):
    from selenium.webdriver.common.by import By

    return driver.find_element(By.CSS_SELECTOR, f'#lora-list .lora[data-name="{name}"]')


def test_the_page_sends_the_loras_and_advanced_settings_picked(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select
    from test_server_ops import write_lora

    from motif_lite.preflight import meta_transformer
    from motif_lite.weights.lora import linear_shapes

    make_tiny_checkpoint(tmp_path / "ckpt")
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch")
    loras = tmp_path / "loras"
    loras.mkdir()
    shapes = linear_shapes(meta_transformer(tmp_path / "ckpt"))
    style = write_lora(loras / "style.safetensors", {n: s for n, s in shapes.items() if n.endswith("to_q")})
    for i in range(8):  # one more than a job may name with the file added below
        (loras / f"extra{i}.safetensors").write_bytes(style.read_bytes())
    with InProcessServer(pipe, tmp_path / "data", lora_dir=loras) as server:
        driver.get(server.url + "/")
        wait_for(lambda: driver.find_element(By.ID, "loras").is_displayed(), 30, "the LoRA picker")
        assert driver.find_element(By.ID, "advanced").get_attribute("open") is None  # collapsed
        (loras / "later.safetensors").write_bytes(style.read_bytes())  # named after a refresh of the list
        lora_row(driver, "style.safetensors").find_element(By.CLASS_NAME, "use").click()
        type_into_element = lora_row(driver, "style.safetensors").find_element(By.CLASS_NAME, "strength")
        type_into_element.clear()
        type_into_element.send_keys("0.5")
        driver.find_element(By.ID, "lora-refresh").click()
        later = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, '.lora[data-name="later.safetensors"]'), 30,
                         "the file added later to be listed")  # fmt: skip
        assert lora_row(driver, "style.safetensors").find_element(By.CLASS_NAME, "use").is_selected()  # kept
        later[0].find_element(By.CLASS_NAME, "use").click()
        for i in range(6):  # 8 chosen: the API's limit, so the last file cannot be ticked
            lora_row(driver, f"extra{i}.safetensors").find_element(By.CLASS_NAME, "use").click()
        assert not lora_row(driver, "extra7.safetensors").find_element(By.CLASS_NAME, "use").is_enabled()
        for i in range(6):
            lora_row(driver, f"extra{i}.safetensors").find_element(By.CLASS_NAME, "use").click()
        assert lora_row(driver, "extra7.safetensors").find_element(By.CLASS_NAME, "use").is_enabled()

        tiny_job_in_the_form(driver, "a fox in the page's own style")
        driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
        type_into(driver, "flow-shift", "7")
        Select(driver.find_element(By.ID, "sampling-method")).select_by_value("dpm++2m")
        type_into(driver, "crf", "28")
        strength = lora_row(driver, "style.safetensors").find_element(By.CLASS_NAME, "strength")  # its row redrawn
        strength.clear()  # a strength that is no number: said of the LoRAs, not of the video's size
        strength.send_keys("1e")
        driver.find_element(By.ID, "submit").click()
        error = wait_for(lambda: driver.find_element(By.ID, "form-error").text, 30, "the strength's error")
        assert error.startswith("strength of style.safetensors is not a number")
        assert driver.find_element(By.ID, "width").get_attribute("aria-invalid") is None
        strength.clear()
        strength.send_keys("0.5")
        driver.find_element(By.ID, "submit").click()

        card = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "li.job"), 30, "the job's card")[0]
        assert driver.find_element(By.ID, "form-error").text == ""
        (video,) = server.client().videos.list()
        assert video.settings["loras"] == [{"name": "later.safetensors", "strength": 1.0},  # the folder's order
                                           {"name": "style.safetensors", "strength": 0.5}]  # fmt: skip
        assert (video.settings["flow_shift"], video.settings["sampling_method"]) == (7.0, "dpm++2m")
        assert (video.settings["guidance_scale"], video.settings["fps"]) == (8.0, 24.0)  # empty: the defaults
        assert video.settings["crf"] == 28
        assert card.find_element(By.CLASS_NAME, "settings").text == "sampler dpm++2m · crf 28 · flow shift 7"
        assert card.find_element(By.CLASS_NAME, "loras").text == "LoRAs: later.safetensors ×1, style.safetensors ×0.5"


def test_without_a_lora_dir_there_is_no_picker_and_api_errors_stay_by_the_form(driver, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    make_tiny_checkpoint(tmp_path / "ckpt")
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch")
    with InProcessServer(pipe, tmp_path / "data") as server:
        driver.get(server.url + "/")
        # After the page has read /v1/loras (per_job false), the picker stays hidden.
        hidden = driver.execute_async_script(
            "const done = arguments[0]; loadLoras().then(() => done(document.getElementById('loras').hidden));"
        )
        assert hidden is True and not driver.find_element(By.ID, "loras").is_displayed()
        # A card names the settings that are not the official ones: guidance off once (its scale is then null), and an
        # image-to-video job's official shift 8 not at all.
        official = {"guidance_method": "apg", "guidance_scale": 8, "apg_eta": 1, "apg_norm_threshold": 12,
                    "apg_momentum": 0.1, "sampling_method": "euler", "flow_shift": 15, "fps": 24}  # fmt: skip
        off = {**official, "guidance_method": None, "guidance_scale": None, "apg_eta": None, "apg_norm_threshold": None,
               "apg_momentum": None, "fps": 12, "image_to_video": False}  # fmt: skip
        image = {**official, "flow_shift": 8, "image_to_video": True}
        named = driver.execute_script("return [...arguments].map((s) => unofficialSettings(s))", off, image)
        assert named == ["no guidance · fps 12", ""]

        tiny_job_in_the_form(driver, "a fox guided the wrong way")
        driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
        Select(driver.find_element(By.ID, "guidance-method")).select_by_value("cfg")
        type_into(driver, "apg-eta", "0.5")
        driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()  # collapsed again: the error opens it
        driver.find_element(By.ID, "submit").click()
        error = wait_for(lambda: driver.find_element(By.ID, "form-error").text, 30, "the API's error")
        code, body, _ = server.request("POST", "/v1/videos", {"prompt": "x", "guidance_method": "cfg", "apg_eta": 0.5})
        assert (code, body["error"]["param"]) == (400, "apg_eta") and error == body["error"]["message"]
        assert driver.find_element(By.ID, "apg-eta").get_attribute("aria-invalid") == "true"
        assert driver.find_element(By.ID, "advanced").get_attribute("open") is not None
        # The queue's refresh (every few seconds) used to clear the form's error before it could be read.
        driver.execute_async_script("refresh().then(arguments[0]);")
        assert driver.find_element(By.ID, "form-error").text == error
        assert server.client().videos.list().data == []


@pytest.fixture(scope="module")
def pipe(checkpoint):
    return load_pipeline(checkpoint, dtype=torch.float32, device="cpu", kernels="torch")


def field_values(driver, *ids: str) -> list[str]:
    return driver.execute_script("return [...arguments].map((id) => document.getElementById(id).value)", *ids)


def test_the_page_keeps_its_fields_across_a_reload_shows_a_jobs_notes_and_queues_on_ctrl_enter(driver, pipe, tmp_path):
    # A user of a web UI expects the settings of the last job to be there after a reload (they were lost), the
    # server's notes on a job (frames rounded to 4k+1, an image stretched: never shown) and Ctrl+Enter to queue.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    kept = ("prompt", "size", "width", "height", "frames", "steps", "seed", "flow-shift")
    with InProcessServer(pipe, tmp_path / "data") as server:
        driver.get(server.url + "/")
        tiny_job_in_the_form(driver, "a fox with 6 frames")
        type_into(driver, "frames", "6")  # not 4k+1: the server uses 5 and says so in a note
        driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
        type_into(driver, "flow-shift", "7")
        driver.find_element(By.ID, "prompt").send_keys(Keys.CONTROL, Keys.ENTER)

        card = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "li.job"), 30, "the job's card")[0]
        (video,) = server.client().videos.list()
        assert card.find_element(By.CLASS_NAME, "notes").text == "\n".join(video.notes) != ""
        assert "num_frames 6 is not 4k+1; using 5" in video.notes

        driver.refresh()
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "li.job"), 30, "the queue after the reload")
        assert field_values(driver, *kept) == ["a fox with 6 frames", "custom", "48", "32", "6", "1", "3", "7"]
        assert driver.find_element(By.ID, "width").is_displayed()  # the custom size's fields shown with it
        assert driver.find_element(By.ID, "advanced").get_attribute("open") is not None  # a kept setting is seen

        # Extend fixes the size to its video's; a new video after it had that size instead of the one chosen.
        Select(driver.find_element(By.ID, "size")).select_by_value("832x480")
        done = 'li.job[data-status="completed"] .actions button'
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, done), 60, "the job to finish")
        driver.find_element(By.XPATH, "//li[@data-status='completed']//button[text()='Extend']").click()
        assert field_values(driver, "size", "width", "height") == ["custom", "48", "32"]
        assert not driver.find_element(By.ID, "width").is_enabled()  # the video's size, not the user's to change
        driver.find_element(By.ID, "extend-stop").click()
        assert field_values(driver, "size") == ["832x480"] and not driver.find_element(By.ID, "width").is_displayed()
        # Remix sends the fields filled in, each replacing the video's value: those kept from earlier jobs replaced
        # its seed and frames. The form now shows the video's settings.
        type_into(driver, "seed", "11")
        driver.find_element(By.XPATH, "//li[@data-status='completed']//button[text()='Remix']").click()
        assert field_values(driver, *kept) == ["a fox with 6 frames", "custom", "48", "32", "5", "1", "3", "7"]
        assert field_values(driver, "fps", "crf", "guidance-method") == ["24", "18", "apg"]
        driver.find_element(By.ID, "remix-stop").click()

        driver.find_element(By.ID, "reset-form").click()
        assert field_values(driver, *kept) == ["", "", "832", "480", "", "", "", ""]
        driver.refresh()
        assert field_values(driver, *kept) == ["", "", "832", "480", "", "", "", ""]
        assert driver.find_element(By.ID, "advanced").get_attribute("open") is None


def test_a_server_that_stopped_is_said_in_words_not_the_browsers_failed_to_fetch(driver, tmp_path):
    from selenium.webdriver.common.by import By

    with InProcessServer(None, tmp_path / "data") as server:
        driver.get(server.url + "/")
        wait_for(lambda: driver.find_element(By.ID, "empty").is_displayed(), 30, "the empty queue")
    driver.execute_async_script("refresh().then(arguments[0]);")
    queue_error = driver.find_element(By.ID, "queue-error").text
    assert queue_error.startswith("cannot reach the motif-lite server: it has stopped or is restarting")
    assert "motif-lite serve" in queue_error
    driver.find_element(By.ID, "prompt").send_keys("a fox")
    driver.find_element(By.ID, "submit").click()
    assert wait_for(lambda: driver.find_element(By.ID, "form-error").text, 30, "the form's error") == queue_error


def test_the_page_fits_a_phones_width(driver, pipe, tmp_path):
    # On a 390-pixel-wide phone the header squeezed the title into two lines ("motif-" / "lite"), and a finished
    # video's Download link stuck out of its card.
    from selenium.webdriver.common.by import By
    from server_helpers import TINY

    with InProcessServer(pipe, tmp_path / "data") as server:
        server.client().videos.create_and_poll(prompt="a fox on a phone", poll_interval_ms=100, extra_body=TINY)
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True})  # fmt: skip
        driver.get(server.url + "/")
        link = wait_for(lambda: driver.find_elements(By.LINK_TEXT, "Download"), 60, "the finished video")[0]
        card = driver.find_element(By.CSS_SELECTOR, "li.job")
        overhang = driver.execute_script(
            "return arguments[0].getBoundingClientRect().right - arguments[1].getBoundingClientRect().right", link, card
        )
        assert overhang <= 0
        widths = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths == [390, 390]  # nothing sticks out sideways
        title_lines = driver.execute_script(
            "const range = document.createRange(); range.selectNodeContents(document.querySelector('header h1'));"
            "return range.getClientRects().length;"
        )
        assert title_lines == 1


def test_a_queued_job_says_how_many_jobs_run_before_it(driver, tmp_path):
    # A card said only "queued": in a queue of jobs minutes long each, a user could not tell when theirs would run.
    with InProcessServer(None, tmp_path / "data") as server:
        driver.get(server.url + "/")
        # The server counts them (the video object's `jobs_ahead`, tests/test_server_ops.py): the page says it.
        newest_first = [{"id": "video_c", "status": "queued", "jobs_ahead": 2},
                        {"id": "video_b", "status": "queued", "jobs_ahead": 1},
                        {"id": "video_x", "status": "completed", "jobs_ahead": None},
                        {"id": "video_a", "status": "in_progress", "progress": 40, "jobs_ahead": None}]  # fmt: skip
        script = "return arguments[0].map((video) => stateText(video));"
        states = driver.execute_script(script, newest_first)
        assert states == ["queued · 2 ahead of it", "queued · 1 ahead of it", "completed", "generating · 40%"]
        assert driver.execute_script(script, [{"id": "video_q", "status": "queued", "jobs_ahead": 0}]) == [
            "queued · next"
        ]


# A card outside the page's list (which each refresh redraws from the server's), held as `window.card`.
CARD = "window.card = newCard({id: arguments[0], prompt: 'a fox', settings: {}});"


def test_a_job_that_failed_or_went_back_to_the_queue_shows_no_preview(driver, tmp_path):
    # A job that failed (or was queued again after a crash) kept its card's moving preview beside "failed: ...",
    # which passed for the result. The preview goes, and its blob URL with it.
    with InProcessServer(None, tmp_path / "data") as server:
        driver.get(server.url + "/")
        for later in ({"status": "failed", "error": {"message": "the server stopped"}}, {"status": "queued"}):
            driver.execute_script(CARD, "video_x")
            driver.execute_script("updateCard(card, {id: 'video_x', status: 'in_progress', progress: 45})")
            assert driver.execute_script("return card.dataset.previewAt") == "45"
            url = driver.execute_script(  # what showPreview puts in the card (this server has no such job)
                "const image = Object.assign(document.createElement('img'), {className: 'preview',"
                "  src: URL.createObjectURL(new Blob(['gif']))});"
                "card.querySelector('.media').append(image); return image.src;"
            )
            driver.execute_script("updateCard(card, {id: 'video_x', progress: 45, ...arguments[0]})", later)
            assert driver.execute_script("return card.querySelector('img.preview') === null"), later
            assert driver.execute_script("return card.dataset.previewAt") is None
            revoked = "fetch(arguments[0]).then(() => arguments[1](false), () => arguments[1](true));"
            assert driver.execute_async_script(revoked, url), "the preview's blob URL is still held"


def test_a_finished_video_that_could_not_be_loaded_is_loaded_at_the_next_refresh(driver, tmp_path):
    # One failed download of a completed video (the server restarting just then) left "cannot load the video"
    # on its card until the page was reloaded: the status was kept, so each refresh left the card alone.
    with InProcessServer(None, tmp_path / "data") as server:
        driver.get(server.url + "/")
        driver.execute_script(CARD, "video_gone")  # not on this server: its download fails
        driver.execute_script(  # counts the page's requests for the video
            "window.asked = 0; const ask = api;"
            "api = (path, ...rest) => { asked += path.includes('video_gone/content'); return ask(path, ...rest); };"
        )
        # The page's clock stands still unless the test moves it: on the real one, a busy machine that took over 2 s
        # between the failure and the next refresh (three WebDriver round trips) failed the test.
        driver.execute_script("window.now = Date.now(); Date.now = () => window.now;")
        state = "return card.querySelector('.state').textContent"
        refresh = "updateCard(card, {id: 'video_gone', status: 'completed', progress: 100})"
        for tries in (1, 2):
            driver.execute_script(refresh)
            wait_for(lambda: driver.execute_script(state).startswith("cannot load the video"), 30, "the failure")
            assert driver.execute_script("return asked") == tries  # a later refresh asks for the video again
            assert driver.execute_script("return card.querySelector('video') === null")  # no empty player
            # Not at every refresh: one right after a failure keeps the error and waits (2 s, then 4 s, ...).
            driver.execute_script("window.now += arguments[0]", 2000 * tries - 100)  # just before the wait ends
            driver.execute_script(refresh)
            assert driver.execute_script("return asked") == tries
            assert driver.execute_script(state).startswith("cannot load the video")
            driver.execute_script("window.now += 100")  # the wait is over


def test_the_page_extends_a_video_file_and_says_what_is_wrong_with_one(driver, pipe, tmp_path):
    # The API extends an uploaded video; the page could only extend the server's own. Its errors: said before
    # anything is sent where the page can tell (an image, a file over the server's limit, which was uploaded whole
    # to be refused in bytes of the request), else the API's, by the field.
    import PIL.Image
    from selenium.webdriver.common.by import By
    from server_helpers import multipart
    from test_server import png
    from test_server_extend import write_clip

    (tmp_path / "photo.png").write_bytes(png())
    (tmp_path / "long.mp4").write_bytes(bytes(300_000))
    frames = [PIL.Image.new("RGB", (48, 32), color) for color in ("red", "blue")]
    frames[0].save(tmp_path / "anim.gif", save_all=True, append_images=frames[1:], duration=100)
    files = {name: str(tmp_path / name) for name in ("photo.png", "long.mp4", "anim.gif")}
    files["still.mp4"] = str(write_clip(tmp_path / "still.mp4", 48, 32, 1))  # one frame: nothing to go on from
    files["clip.mp4"] = str(write_clip(tmp_path / "clip.mp4", 48, 32, 9, fps=12))
    with InProcessServer(pipe, tmp_path / "data", max_video_upload_bytes=200_000, max_upload_bytes=2048) as server:
        driver.get(server.url + "/")
        wait_for(lambda: driver.execute_script("return serverInfo !== null"), 30, "the server's limits")
        tiny_job_in_the_form(driver, "the fox trots off")  # a custom size: the video's own is taken instead
        type_into(driver, "width", "64")
        clip = driver.find_element(By.ID, "clip")
        error = lambda: driver.find_element(By.ID, "form-error").text  # noqa: E731
        clip.send_keys(files["anim.gif"])  # an animated GIF (image/gif) is a video to go on from
        assert error() == "" and clip.get_attribute("aria-invalid") != "true"
        assert driver.execute_script("return [2048, 1.5 * 2 ** 20, 20 * 2 ** 20].map(sizeWords)") == [
            "2 KB", "1.5 MB", "20 MB"
        ]  # fmt: skip
        clip.send_keys(files["photo.png"])
        assert error().startswith("photo.png is an image, not a video: choose it as the first frame")
        assert clip.get_attribute("aria-invalid") == "true"
        clip.send_keys(files["long.mp4"])
        assert error().startswith("long.mp4 is 293 KB: this server takes videos to go on from up to 196 KB (its "
                                  "--max-video-upload-mb)")  # fmt: skip
        driver.find_element(By.ID, "submit").click()
        assert error().startswith("long.mp4 is 293 KB") and server.client().videos.list().data == []  # not sent

        clip.send_keys(files["still.mp4"])
        assert error() == "" and not driver.find_element(By.ID, "width").is_enabled()
        assert driver.find_element(By.ID, "clip-note").is_displayed()
        # The greyed-out dropdown read the size chosen before ("custom…", or "1280x736 (official)"): not the size
        # the job gets.
        shown = "return document.getElementById('size').selectedOptions[0].text"
        assert driver.execute_script(shown) == "the video's size"
        assert not driver.find_element(By.ID, "width").is_displayed()
        driver.find_element(By.ID, "submit").click()
        refused = wait_for(error, 30, "the API's error")
        body, headers = multipart({"prompt": "x"}, {"extend": ("still.mp4", (tmp_path / "still.mp4").read_bytes(),
                                                               "video/mp4")})  # fmt: skip
        code, expected, _ = server.request("POST", "/v1/videos", body, headers)
        assert (code, expected["error"]["param"]) == (400, "extend") and refused == expected["error"]["message"]
        assert "still.mp4" in refused and clip.get_attribute("aria-invalid") == "true"

        driver.find_element(By.ID, "image").send_keys(files["photo.png"])  # a first frame instead: the video goes
        assert driver.execute_script("return document.getElementById('clip').files.length") == 0
        assert error().startswith(f"photo.png is {-(-len(png()) // 1024)} KB: this server takes first-frame images up "
                                  "to 2 KB (its --max-upload-mb)")  # fmt: skip
        assert driver.find_element(By.ID, "width").is_enabled()
        assert field_values(driver, "size", "width", "height") == ["custom", "64", "32"]  # the size chosen, again
        clip.send_keys(files["clip.mp4"])
        assert driver.execute_script("return document.getElementById('image').files.length") == 0
        driver.find_element(By.ID, "submit").click()
        card = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "li.job"), 30, "the job's card")[0]
        assert error() == ""
        (video,) = server.client().videos.list()
        assert (video.size, video.settings["num_frames"], video.settings["fps"]) == ("48x32", 5, 12)
        assert video.settings["extend_file"]["name"] == "clip.mp4" and video.settings["extend_file"]["frames"] == 9
        assert card.find_element(By.CLASS_NAME, "extends").text == "extends clip.mp4 (uploaded)"
        # The file's frames, the clip's 9 and 4 new: 1 s at 12 fps.
        assert video.seconds == "1" and "5 new frames, 13 in all" in card.find_element(By.CLASS_NAME, "meta").text
        # The frames are the API's `frames`, not counted back from `seconds`: 9 frames at 1000 fps are "0.01" s
        # (0.008 to the hundredth), which counted back to 11, for a video of this server's as for an uploaded one.
        for extended in ({"extend": "video_" + "0" * 32}, {"extend_file": {"frames": 5}}):
            made = {
                "size": "48x32",
                "seconds": "0.01",
                "frames": 9,
                "settings": {"num_frames": 5, "fps": 1000, "steps": 1, "seed": 1, **extended},
            }
            assert "5 new frames, 9 in all" in driver.execute_script("return describe(arguments[0])", made)
        # The next job is a new video again, at the size chosen.
        assert driver.execute_script("return document.getElementById('clip').files.length") == 0
        assert driver.find_element(By.ID, "width").is_enabled()
        assert field_values(driver, "size", "width", "height") == ["custom", "64", "32"]
        server.wait_status(video.id, ("completed",))
        # Its remix needs the file again (the server keeps it only while the job runs): the page asks for it.
        remix_button = f"//li[@data-id='{video.id}']//button[text()='Remix']"
        clip.send_keys(files["clip.mp4"])  # chosen before the remix: the remix's size is still the video's
        wait_for(lambda: driver.find_elements(By.XPATH, remix_button), 30, "the finished card")[0].click()
        assert driver.execute_script(shown) == "the video's size"
        assert 'choose that file again in "Go on from a video file"' in driver.find_element(By.ID, "remixing").text
        clip.send_keys(files["clip.mp4"])
        driver.find_element(By.ID, "submit").click()
        wait_for(lambda: len(server.client().videos.list().data) == 2, 30, "the remix")
        remix = server.client().videos.list().data[0]
        assert remix.remixed_from_video_id == video.id
        assert remix.settings["extend_file"] == video.settings["extend_file"]  # the same file
        assert error() == ""


def test_the_advanced_fields_show_the_defaults_of_the_servers_checkpoint(driver, tmp_path):
    # The tooltips named the official values, but a checkpoint's guider and scheduler configs decide what an empty
    # field gets (as for `motif-lite run`): here guidance scale 5, norm threshold 7 and flow shift 9, and the
    # server's --crf 28.
    from selenium.webdriver.common.by import By
    from tiny_pipeline import official_apg

    make_tiny_checkpoint(tmp_path / "ckpt", guider=official_apg(guidance_scale=5.0,
                         adaptive_projected_guidance_rescale=7.0), shift=9.0)  # fmt: skip
    pipe = load_pipeline(tmp_path / "ckpt", dtype=torch.float32, device="cpu", kernels="torch")
    with InProcessServer(pipe, tmp_path / "data", crf=28, max_video=(640, 352, 65)) as server:
        code, info, _ = server.request("GET", "/v1/info")
        defaults = info["defaults"]["text_to_video"]
        assert code == 200 and info["limits"]["max_video"] == "640x352x65"
        assert (defaults["guidance_scale"], defaults["apg_norm_threshold"], defaults["flow_shift"]) == (5, 7, 9)
        assert (defaults["crf"], defaults["size"], defaults["num_frames"]) == (28, "640x352", 65)
        assert info["defaults"]["image_to_video"]["flow_shift"] == 9  # the config's, for both kinds
        # A job that leaves the fields empty gets exactly these.
        made = server.client().videos.create(prompt="a fox", extra_body={"size": "48x32", "num_frames": 5})
        assert {name: made.settings[name] for name in defaults if name != "size"} == {
            **{name: value for name, value in defaults.items() if name != "size"},
            "num_frames": 5,
        }
        server.client().videos.delete(made.id)

        driver.get(server.url + "/")
        scale = driver.find_element(By.ID, "guidance-scale")
        wait_for(lambda: scale.get_attribute("placeholder") == "5", 30, "the server's defaults in the fields")
        assert scale.get_attribute("title") == (
            "0 to 100; 0 switches the official guider off (1 a standard-formulation one); empty: this server's "
            "default, 5 (the official value is 8)"
        )
        shown = {
            field: driver.find_element(By.ID, field).get_attribute("placeholder")
            for field in ("apg-eta", "apg-norm-threshold", "flow-shift", "crf", "fps", "steps", "frames")
        }
        assert shown == {"apg-eta": "1", "apg-norm-threshold": "7", "flow-shift": "9", "crf": "28", "fps": "24",
                         "steps": "50", "frames": "65"}  # fmt: skip
        assert driver.find_element(By.ID, "apg-eta").get_attribute("title") == "empty: this server's default, 1"
        assert "this server's default, 9 (the official value is 15)" in driver.find_element(
            By.ID, "flow-shift"
        ).get_attribute("title")
        options = [f"#{field} option" for field in ("guidance-method", "sampling-method", "size")]
        assert [driver.find_element(By.CSS_SELECTOR, option).get_attribute("textContent") for option in options] == [
            "default (APG)",
            "default (euler)",
            "640x352 (this server's default)",
        ]


def test_a_job_cancelled_while_it_runs_is_said_to_stop_after_its_step(driver, pipe, tmp_path):
    # On a CPU a step takes minutes. Cancel took the card away at once, but the worker finished the step first:
    # meanwhile the next job said "queued · next" and nothing seemed to run.
    from selenium.webdriver.common.by import By
    from server_helpers import TINY, SlowStep

    slow = SlowStep(pipe)
    with InProcessServer(slow, tmp_path / "data") as server, slow:
        first, second = (server.client().videos.create(prompt=f"fox {i}", extra_body=TINY) for i in range(2))
        assert slow.in_step.wait(60)
        driver.get(server.url + "/")
        running = f'li.job[data-id="{first.id}"][data-status="in_progress"]'
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, running), 30, "the running job's card")
        state = lambda: driver.find_element(By.CSS_SELECTOR, f'li.job[data-id="{second.id}"] .state').text  # noqa: E731
        assert state() == "queued · 1 ahead of it"
        driver.find_element(By.CSS_SELECTOR, running).find_element(By.XPATH, ".//button[text()='Cancel']").click()
        stopping = driver.find_element(By.ID, "stopping")
        wait_for(stopping.is_displayed, 30, "the page to say the job is stopping")
        assert stopping.text == (f"Cancelled {first.id}: the server stops it after the step it is on (on a CPU a "
                                 "step can take minutes); the next job starts then.")  # fmt: skip
        wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, f'li.job[data-id="{first.id}"]'), 30, "the card")
        driver.execute_async_script("refresh().then(arguments[0]);")
        assert stopping.is_displayed() and state() == "queued · 1 ahead of it"  # not "next": it waits for the step
        slow.end_step.set()
        wait_for(lambda: not stopping.is_displayed(), 30, "the notice to go once the job has stopped")
        server.wait_status(second.id, ("completed",))


def test_a_failed_job_is_tried_again_with_its_settings_in_one_click(driver, pipe, tmp_path):
    # A failed job's card had only Delete: trying it again meant typing its prompt and every setting again.
    from selenium.webdriver.common.by import By
    from server_helpers import TINY, OutOfMemoryInAJob

    out_of_memory = OutOfMemoryInAJob(pipe)
    with InProcessServer(out_of_memory, tmp_path / "data") as server:
        failed = server.client().videos.create(prompt="a fox", extra_body={**TINY, "negative_prompt": "blurry",
                                                                          "flow_shift": 7})  # fmt: skip
        failed = server.wait_status(failed.id, ("failed",))
        driver.get(server.url + "/")
        again = f"//li[@data-id='{failed['id']}']//button[text()='Try again']"
        wait_for(lambda: driver.find_elements(By.XPATH, again), 30, "the failed job's card")[0].click()
        fields = ("prompt", "negative", "size", "width", "height", "frames", "steps", "seed", "flow-shift")
        assert field_values(driver, *fields) == ["a fox", "blurry", "custom", "48", "32", "5", "2", "7", "7"]
        assert driver.find_element(By.ID, "retrying").text.startswith(f"Trying {failed['id']} again: its prompt")
        out_of_memory.failing.clear()
        driver.find_element(By.ID, "submit").click()
        wait_for(lambda: len(server.client().videos.list().data) == 2, 30, "the job tried again")
        tried = server.wait_status(server.client().videos.list().data[0].id, ("completed",))
        assert (tried["prompt"], tried["settings"]) == (failed["prompt"], failed["settings"])
        assert not driver.find_element(By.ID, "retrying").is_displayed()  # the note was for that job
        # A failed extension goes on from the same video again (Extend's form), with its own prompt.
        out_of_memory.failing.set()
        part = server.client().videos.create(prompt="it jumps", extra_body={**TINY, "extend": tried["id"]})
        server.wait_status(part.id, ("failed",))
        again = f"//li[@data-id='{part.id}']//button[text()='Try again']"
        wait_for(lambda: driver.find_elements(By.XPATH, again), 30, "the failed extension's card")[0].click()
        assert driver.find_element(By.ID, "extending-text").text.startswith(f"Extending {tried['id']} (48x32): ")
        assert field_values(driver, "prompt", "frames") == ["it jumps", "5"]


def test_a_first_frame_with_an_empty_prompt_is_queued(driver, pipe, tmp_path):
    # "Animate this image" from the page: the form sends the empty prompt, which the server took for a missing one.
    from selenium.webdriver.common.by import By
    from test_server import png

    (tmp_path / "first.png").write_bytes(png())
    with InProcessServer(pipe, tmp_path / "data") as server:
        driver.get(server.url + "/")
        tiny_job_in_the_form(driver, "")
        type_into(driver, "prompt", "")  # whatever an earlier visit left in it
        driver.find_element(By.ID, "image").send_keys(str(tmp_path / "first.png"))
        driver.find_element(By.ID, "submit").click()
        (video,) = wait_for(lambda: server.client().videos.list().data, 30, "the job")
        assert video.prompt == "" and video.settings["image_to_video"] is True, video


def test_a_mistake_in_the_form_is_said_by_its_field_in_the_words_of_motif_lite_run(driver, pipe, tmp_path):
    # The browser's own checks of the fields (min, step, required) stopped the form with a bubble in its words
    # ("Value must be greater than or equal to 1."), gone in seconds, naming no field or range; and the API's
    # messages showed by the Generate button, a screen away from the field on a phone, tied to no field for a
    # screen reader.
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    phone = {"width": 400, "height": 700, "deviceScaleFactor": 1, "mobile": True}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", phone)
    where = """const error = document.getElementById('form-error'), field = document.getElementById(arguments[0]);
               return [error.previousElementSibling.contains(field), document.activeElement.id,
                       field.getAttribute('aria-describedby'), field.getAttribute('aria-invalid')];"""
    with InProcessServer(pipe, tmp_path / "data") as server:
        driver.get(server.url + "/")
        tiny_job_in_the_form(driver, "a fox")
        mistakes = {  # field, what is typed: what the API says of the same value (`size` for the width)
            ("steps", "0"): "steps must be an integer from 1 to 1000 (the official setting is 50), got 0",
            ("width", "50"): "size 50x32: its width is not a multiple of 16; nearest valid width: 48",
            ("seed", "-5"): "seed must be a whole number from 0 to 4294967295, or -1 for a random seed, got -5",
            ("steps", "1e"): "steps is not a number: type a number, or empty the field for the server's default",
            ("prompt", ""): "prompt is empty: text-to-video needs what the video shows; an empty prompt is taken "
            "only with a first frame (input_reference or extend), which it then animates with no text",
        }
        for (field, typed), message in mistakes.items():
            type_into(driver, field, typed)
            driver.find_element(By.ID, "submit").click()
            error = wait_for(lambda: driver.find_element(By.ID, "form-error").text, 30, f"the error of {field}")
            assert error == message, field
            assert driver.execute_script(where, field) == [True, field, "form-error", "true"], field
            assert driver.find_element(By.ID, "form-error").is_displayed()
            type_into(driver, field, {"steps": "1", "width": "48", "seed": "3", "prompt": "a fox"}[field])
        refused = {"prompt": "a fox", "size": "48x32", "num_frames": 5, "steps": 0}
        code, body, _ = server.request("POST", "/v1/videos", refused)
        assert (code, body["error"]["message"]) == (400, mistakes[("steps", "0")])  # the API's words are the same
        assert server.client().videos.list().data == []
        # A size of the list: what the hidden custom width holds is not sent, so it stops nothing.
        type_into(driver, "width", "1e")
        Select(driver.find_element(By.ID, "size")).select_by_value("832x480")
        driver.find_element(By.ID, "seed").send_keys(Keys.ENTER)  # all fixed: queued, the message gone from the page
        wait_for(lambda: server.client().videos.list().data, 30, "the job")
        assert server.client().videos.list().data[0].size == "832x480"
        home = "return document.getElementById('form-error').parentElement.id"
        assert driver.find_element(By.ID, "form-error").text == "" and driver.execute_script(home) == "form-actions"
        assert driver.execute_script("return document.querySelectorAll('[aria-describedby]').length") == 0


def test_long_file_names_wrap_on_a_phone(driver, pipe, tmp_path):
    # A long file name in a message (an image chosen as the video to go on from) or on a card (`extends NAME
    # (uploaded)`) is one word a browser does not break: the page was wider than a 400-pixel phone.
    from selenium.webdriver.common.by import By
    from server_helpers import multipart
    from test_server import png
    from test_server_extend import write_clip

    name = "holiday_at_the_beach_with_the_whole_family_summer_2026_final"
    (tmp_path / f"{name}.png").write_bytes(png())
    clip = write_clip(tmp_path / f"{name}.mp4", 48, 32, 9)
    with InProcessServer(pipe, tmp_path / "data") as server:
        body, headers = multipart({"prompt": "x", "num_frames": "5", "steps": "1"},
                                  {"extend": (clip.name, clip.read_bytes(), "video/mp4")})  # fmt: skip
        assert server.request("POST", "/v1/videos", body, headers)[0] == 200
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                               {"width": 400, "height": 800, "deviceScaleFactor": 1, "mobile": True})  # fmt: skip
        driver.get(server.url + "/")
        card = wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "li.job .extends"), 30, "the card")[0]
        assert card.text == f"extends {clip.name} (uploaded)"
        driver.find_element(By.ID, "clip").send_keys(str(tmp_path / f"{name}.png"))
        assert driver.find_element(By.ID, "form-error").text.startswith(f"{name}.png is an image, not a video")
        widths = driver.execute_script("return [document.documentElement.scrollWidth, window.innerWidth]")
        assert widths == [400, 400]


def test_the_page_reads_the_servers_settings_again_once_it_is_back_after_a_restart(driver, pipe, checkpoint, tmp_path):
    # The page read the server's model, defaults, limits and LoRA list only when it opened: after a restart with
    # --lora-dir it offered no LoRAs, and it kept checking uploads against the old limits, until reloaded by hand.
    from selenium.webdriver.common.by import By
    from test_server_ops import write_lora

    from motif_lite.preflight import meta_transformer
    from motif_lite.weights.lora import linear_shapes

    loras = tmp_path / "loras"
    loras.mkdir()
    shapes = linear_shapes(meta_transformer(checkpoint))
    write_lora(loras / "style.safetensors", {n: s for n, s in shapes.items() if n.endswith("to_q")})
    with InProcessServer(pipe, tmp_path / "data") as server:
        port = server.port
        driver.get(server.url + "/")
        wait_for(lambda: driver.execute_script("return serverInfo !== null"), 30, "the server's settings")
        assert not driver.find_element(By.ID, "loras").is_displayed()
    driver.execute_async_script("refresh().then(arguments[0]);")  # the server has stopped
    assert driver.find_element(By.ID, "queue-error").text.startswith("cannot reach the motif-lite server")
    with InProcessServer(pipe, tmp_path / "data", port=port, lora_dir=loras, crf=28) as server:
        wait_for(lambda: driver.find_element(By.ID, "loras").is_displayed(), 30, "the LoRA picker after the restart")
        assert driver.find_element(By.ID, "queue-error").text == ""
        assert driver.find_element(By.ID, "crf").get_attribute("placeholder") == "28"
        assert lora_row(driver, "style.safetensors").is_displayed()


def test_every_field_has_a_name_of_its_own_for_a_screen_reader(driver, pipe, checkpoint, tmp_path):
    # A screen reader announces a field by its accessible name: each LoRA's strength field was "strength", the same
    # for every file of the list.
    from selenium.webdriver.common.by import By
    from test_server_ops import write_lora

    from motif_lite.preflight import meta_transformer
    from motif_lite.weights.lora import linear_shapes

    loras = tmp_path / "loras"
    loras.mkdir()
    shapes = linear_shapes(meta_transformer(checkpoint))
    for name in ("style.safetensors", "motion.safetensors"):
        write_lora(loras / name, {n: s for n, s in shapes.items() if n.endswith("to_q")})
    with InProcessServer(pipe, tmp_path / "data", lora_dir=loras) as server:
        driver.get(server.url + "/")
        wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, "#lora-list .strength"), 30, "the LoRA list")
        driver.find_element(By.CSS_SELECTOR, "#advanced summary").click()
        fields = [field for field in driver.find_elements(By.CSS_SELECTOR, "input, select, textarea")
                  if field.is_displayed()]  # fmt: skip
        names = [field.accessible_name for field in fields]
        assert len(fields) >= 20 and "" not in names
        assert len(set(names)) == len(names), names
        strength = lora_row(driver, "motion.safetensors").find_element(By.CLASS_NAME, "strength")
        assert strength.accessible_name == "strength of motion.safetensors"
        # What is typed there that is no number is said by that name, not sent as the default strength.
        lora_row(driver, "motion.safetensors").find_element(By.CLASS_NAME, "use").click()
        strength.clear()
        strength.send_keys("1e")
        driver.find_element(By.ID, "prompt").send_keys("a fox")
        driver.find_element(By.ID, "submit").click()
        assert driver.find_element(By.ID, "form-error").text == (
            "strength of motion.safetensors is not a number: type a number, or empty the field for the server's default"
        )
        assert server.client().videos.list().data == []


def test_a_preview_that_comes_after_the_job_failed_is_dropped(driver, tmp_path):
    # The preview is asked for while the job runs; one that comes after the card said "failed" (or completed)
    # must not be put beside it, where it would pass for the result.
    with InProcessServer(None, tmp_path / "data") as server:
        driver.get(server.url + "/")
        driver.execute_script(CARD, "video_late")
        driver.execute_script(  # the preview's answer waits until the test lets it go
            "const ask = api; window.release = null;"
            "api = (path, ...rest) => !path.includes('variant=preview') ? ask(path, ...rest) : new Promise("
            "  (resolve) => { window.release = () => resolve(new Response(new Blob(['gif']))); });"
        )
        driver.execute_script("updateCard(card, {id: 'video_late', status: 'in_progress', progress: 45})")
        wait_for(lambda: driver.execute_script("return window.release !== null"), 30, "the preview's request")
        failed = "{id: 'video_late', status: 'failed', progress: 45, error: {message: 'out of memory'}}"
        driver.execute_script(f"updateCard(card, {failed})")
        late = "release(); setTimeout(() => arguments[0](card.querySelector('img.preview') === null), 200);"
        assert driver.execute_async_script(late), "the late preview was put beside the failed job"
