"""The web demo (app.py) in a real browser: Debian's headless Chromium driven by Playwright, against the
app served on 127.0.0.1 from a fresh process. Skipped when Gradio, Playwright or Chromium is missing,
unless BGW_REQUIRE_BROWSER=1 (set by .ci/run), which makes their absence a failure."""

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from tensorboardX import SummaryWriter

import segment
from demo.assets import DEMO_UNET_PATH

REPO = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("BGW_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
# Nothing leaves the machine: no component updates, no background requests, no first-run pages.
CHROMIUM_FLAGS = ["--disable-background-networking", "--disable-component-update", "--no-first-run"]
ARTIFACTS = Path(os.environ.get("BGW_TEST_ARTIFACTS", REPO / "results" / "test_artifacts"))
START_TIMEOUT_S = 180


def require(available: bool, what: str) -> None:
    if not available:
        if os.environ.get("BGW_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{what} is missing (BGW_REQUIRE_BROWSER=1)")
        pytest.skip(f"{what} is missing: pip install -r requirements-app.txt, apt-get install chromium")


def importable(name: str) -> bool:
    try:
        __import__(name)
    except ImportError:
        return False
    return True


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def fake_run(folder: Path) -> Path:
    """A run folder of the layout train_segmentation.py writes: score.json, a picture, two curves."""
    folder.mkdir()
    score = {"heldout": {"id": {"F_max": 0.9443}, "thr": {"IoU": 0.8517, "accuracy": 0.9606}}}
    (folder / "score.json").write_text(json.dumps(score))
    Image.new("RGB", (64, 32), (200, 30, 30)).save(folder / "predictions_heldout.png")
    with SummaryWriter(str(folder / "tensorboard")) as writer:
        for step, (loss, iou) in enumerate([(0.5, 0.6), (0.3, 0.8), (0.2, 0.85)]):
            writer.add_scalar("train/loss", loss, step)
            writer.add_scalar("val/heldout/IoU", iou, step)
    return folder


@pytest.fixture(scope="module")
def app_url(tmp_path_factory):
    require(importable("gradio"), "gradio")
    run = fake_run(tmp_path_factory.mktemp("app") / "run")
    port = free_port()
    command = [sys.executable, "app.py", "--port", str(port), "--run", str(run), "--device", "cpu"]
    env = {**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"}
    log = tmp_path_factory.mktemp("app_log") / "app.log"
    with open(log, "w") as out:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            urllib.request.urlopen(url, timeout=5)
            break
        except OSError:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"app.py did not serve {url}:\n{log.read_text()}")
            time.sleep(0.5)
    yield url
    server.terminate()
    server.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    require(importable("playwright"), "playwright")
    require(CHROMIUM is not None, "chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, app_url):
    context = browser.new_context(viewport={"width": 1280, "height": 1000}, accept_downloads=True)
    page = context.new_page()
    page.goto(app_url)
    yield page
    context.close()


def image_source(page, elem_id: str, previous: str | None = None) -> str:
    """The `src` of the picture shown in component `elem_id`, once it is there (and not `previous`)."""
    image = page.locator(f"#{elem_id} img").first
    image.wait_for(timeout=60_000)
    deadline = time.monotonic() + 60
    while (source := image.get_attribute("src")) in (None, "", previous):
        assert time.monotonic() < deadline, f"#{elem_id} kept showing {previous}"
        time.sleep(0.2)
    return source


def shown_pixels(page, source: str) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(page.request.get(source).body())))


def test_moving_the_slider_changes_the_mask(page):
    before = image_source(page, "explorer-mask")
    verdict = page.locator("#explorer-verdict textarea")
    assert verdict.input_value().startswith(("kept", "rejected"))
    page.locator("#explorer-radius input[type=number]").fill("-6")
    page.locator("#explorer-radius input[type=number]").press("Enter")
    after = image_source(page, "explorer-mask", previous=before)
    assert not np.array_equal(shown_pixels(page, before), shown_pixels(page, after))


def test_the_mask_shown_and_downloaded_is_the_one_segment_py_writes(page, tmp_path):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    picture = np.full((60, 80, 3), (40, 70, 160), np.uint8)
    picture[15:45, 25:60] = (220, 170, 40)
    picture = (picture + rng.normal(0, 6, picture.shape)).clip(0, 255).astype(np.uint8)
    Image.fromarray(picture).save(images / "photo.png")
    segment.main(
        [
            "--weights",
            str(DEMO_UNET_PATH),
            "--images",
            str(images),
            "--out",
            str(tmp_path / "out"),
            "--resize_to",
            "32",
            "--device",
            "cpu",
        ]
    )
    expected = np.asarray(Image.open(tmp_path / "out" / "photo.png"))

    page.get_by_role("tab", name="Segment an image").click()
    page.locator("#segment-upload input[type=file]").set_input_files(str(images / "photo.png"))
    shown = shown_pixels(page, image_source(page, "segment-mask"))
    assert shown.shape[:2] == expected.shape and 0 < (expected > 0).mean() < 1
    assert np.array_equal(shown[..., 0] if shown.ndim == 3 else shown, expected)
    with page.expect_download() as download:
        page.locator("#segment-download a").first.click()
    downloaded = tmp_path / "downloaded.png"
    download.value.save_as(downloaded)
    assert np.array_equal(np.asarray(Image.open(downloaded)), expected)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_segment.png"), full_page=True)


def test_a_text_file_uploaded_as_an_image_gets_a_message(page, tmp_path):
    text = tmp_path / "notes.txt"
    text.write_text("not an image\n")
    page.get_by_role("tab", name="Segment an image").click()
    page.locator("#segment-upload input[type=file]").set_input_files(str(text))
    message = page.get_by_text("notes.txt is not an image that can be read")
    message.wait_for(timeout=60_000)
    assert "upload a PNG, JPEG" in message.inner_text()


def test_a_run_shows_its_scores_and_curves_and_a_missing_one_a_message(page, tmp_path):
    page.get_by_role("tab", name="Inspect a run").click()
    page.locator("#run-show").click()
    page.locator("#run-scores").get_by_text("0.852").wait_for(timeout=60_000)
    page.locator("#run-pictures img").first.wait_for(timeout=60_000)
    page.locator("#run-curves svg").get_by_text("val/heldout/IoU").wait_for(timeout=60_000)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_run.png"), full_page=True)
    page.locator("#run-folder textarea").fill(str(tmp_path / "nowhere"))
    page.locator("#run-show").click()
    page.get_by_text("does not exist: give the --out folder of a training run").wait_for(timeout=60_000)


def test_the_explorer_screenshot(page):
    image_source(page, "explorer-shifted")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "app_explorer.png"), full_page=True)
    assert (ARTIFACTS / "app_explorer.png").stat().st_size > 10_000
