"""Point-and-click editing in a real headless Chromium at 1280×800 (a laptop): draw, paint, click motion, click
words, and send results between tabs, on the embedded models. Each test checks what the engine received through
what the page shows back, and leaves a screenshot in test-artifacts/."""
from __future__ import annotations

import io
import re
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
from gradio_client import handle_file
from PIL import Image

from app_calls import ARTIFACTS, chromium_page
from core import config
from core.shapes import reader
from core.video import read_video

EXAMPLE_VIDEO = str(config.EXAMPLES_DIR / "red_circle_moving_right.mp4")
SIDE = config.TOY_IMAGE_SIZE  # the embedded model's pictures (and so its canvases)
RUN_TIMEOUT_MS = 240_000


@pytest.fixture(scope="module")
def page(app_url, tmp_path_factory):
    with chromium_page(tmp_path_factory.mktemp("profile")) as page:
        yield page
    assert not page.errors


def open_tab(page, app_url: str, key: str, title: str) -> None:
    page.goto(f"{app_url}?tab={key}", wait_until="load")
    page.get_by_role("heading", name=title, exact=True).wait_for(state="visible", timeout=30_000)


def image_source(page, selector: str) -> str | None:
    locator = page.locator(f"{selector} img")
    return locator.first.get_attribute("src") if locator.count() else None


def fetch_image(page, selector: str, replacing: str | None = None) -> np.ndarray:
    """The picture an <img> under `selector` shows, as the server sent it (once it is no longer `replacing`)."""
    locator = page.locator(f"{selector} img").first
    locator.wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    if replacing is not None:
        page.wait_for_function("([e, old]) => e.getAttribute('src') !== old", arg=[locator.element_handle(), replacing],
                               timeout=RUN_TIMEOUT_MS)
    return np.asarray(Image.open(io.BytesIO(httpx.get(locator.get_attribute("src"), timeout=60).content)).convert("RGB"))


def fetch_video(page, selector: str, tmp_path: Path) -> np.ndarray:
    locator = page.locator(f"{selector} video").first
    locator.wait_for(state="attached", timeout=RUN_TIMEOUT_MS)
    path = tmp_path / f"{selector.strip('#')}.mp4"
    path.write_bytes(httpx.get(locator.get_attribute("src"), timeout=60).content)
    return read_video(str(path))[0]


def picture_box(page, editor: str, natural: int) -> tuple[float, float, float]:
    """Where an image editor shows its `natural`-px square picture: (left, top, side) on the page. The editor draws
    it centred in its canvas at the zoom its toolbar states."""
    box = page.locator(f"#{editor} canvas").first.bounding_box()
    zoom = float(re.search(r"(\d+)%", page.locator(f"#{editor}").inner_text()).group(1)) / 100
    side = natural * zoom
    return box["x"] + (box["width"] - side) / 2, box["y"] + (box["height"] - side) / 2, side


def brush_stroke(page, editor: str, natural: int, points) -> None:
    """Drag the brush through `points` (fractions of the picture)."""
    page.locator(f"#{editor}").scroll_into_view_if_needed()
    page.locator(f"#{editor} button[aria-label='Brush']").first.click()
    left, top, side = picture_box(page, editor, natural)
    where = [(left + x * side, top + y * side) for x, y in points]
    page.mouse.move(*where[0])
    page.mouse.down()
    for point in where[1:]:
        page.mouse.move(*point, steps=16)
    page.mouse.up()


def click_on(page, selector: str, x: float, y: float) -> None:
    """Click at (x, y) fractions of the element."""
    page.locator(selector).scroll_into_view_if_needed()
    box = page.locator(selector).bounding_box()
    page.mouse.click(box["x"] + x * box["width"], box["y"] + y * box["height"])


def set_number(page, selector: str, value) -> None:
    field = page.locator(f"{selector} input[type=number]")
    field.fill(str(value))
    field.press("Enter")


def choose_option(page, selector: str, option: str) -> None:
    page.locator(f"{selector} input").first.click()
    page.get_by_role("option", name=option, exact=True).click()


def test_a_drawn_stroke_is_the_t2i_adapter_condition(page, app_url, client, tmp_path):
    open_tab(page, app_url, "t2i_adapter", "T2I-Adapter")
    brush_stroke(page, "t2i-canvas", SIDE, [(0.2, 0.5), (0.8, 0.5)])
    page.locator("#t2i-conditions").get_by_text(".png").first.wait_for(timeout=30_000)
    page.locator("#t2i-run").click()
    condition = fetch_image(page, "#t2i-maps")
    result = fetch_image(page, "#t2i-result")
    page.screenshot(path=str(ARTIFACTS / "pointing_t2i_sketch.png"), full_page=True)
    # the map the engine read is the stroke: lit exactly along the dragged line (within the brush), dark elsewhere
    lit = np.argwhere(condition.max(-1) > 127)
    assert len(lit) > 0
    rows, cols = lit[:, 0], lit[:, 1]
    brush = max(2, SIDE // 24)
    assert abs(rows.mean() - 0.5 * SIDE) <= 2 and rows.max() - rows.min() <= 2 * brush, (rows.min(), rows.max())
    assert cols.min() <= 0.2 * SIDE + brush and cols.max() >= 0.8 * SIDE - brush, (cols.min(), cols.max())
    # and the result is not what an empty canvas (an all-black map) gives with the same settings
    empty = tmp_path / "empty.png"
    Image.fromarray(np.zeros((SIDE, SIDE, 3), np.uint8)).save(empty)
    blank = client.predict(conditions=[handle_file(str(empty))], condition_types=["canny"], extract=False,
                           api_name="/t2i_adapter")[0]
    difference = np.abs(result.astype(int) - np.asarray(Image.open(blank).convert("RGB"), int))
    assert difference.max() > 20, difference.max()


def test_clicked_motion_sets_t2v_zero_motion_and_moves_the_object(page, app_url, tmp_path):
    open_tab(page, app_url, "t2v_zero", "Text2Video-Zero")
    page.get_by_label("prompt", exact=True).locator("visible=true").first.fill("a red circle on a white background")
    click_on(page, "#t2v-motion img", 0.35, 0.5)  # start …
    time.sleep(0.5)
    click_on(page, "#t2v-motion img", 0.6, 0.5)  # … end: to the right
    motion_x = page.locator("#t2v-motion-x input[type=number]")
    page.wait_for_function("e => parseFloat(e.value) < 0", arg=motion_x.element_handle(), timeout=30_000)
    # the content travels a quarter of the frame over 8 frames: 0.25·512/7 px of a 512-px frame per frame, and a
    # positive motion_x moves content left (the official's sign), so the slider shows the negative
    assert float(motion_x.input_value()) == pytest.approx(-0.25 * 512 / 7, abs=1.0)
    assert float(page.locator("#t2v-motion-y input[type=number]").input_value()) == pytest.approx(0, abs=1.0)
    page.locator("#t2v-run").click()
    frames = fetch_video(page, "#t2v-video", tmp_path)
    page.screenshot(path=str(ARTIFACTS / "pointing_t2v_motion.png"), full_page=True)
    blobs = [reader.read_single(frame) for frame in frames]
    assert all(blob is not None for blob in blobs)
    print(f"T2V-Zero centroids after the clicked arrow: {[round(b.cx, 1) for b in blobs]}")
    assert blobs[-1].cx - blobs[0].cx >= 3  # moved right, the way of the arrow


def test_a_clicked_word_is_the_one_reweighted(page, app_url):
    open_tab(page, app_url, "p2p", "Prompt-to-Prompt")
    choose_option(page, "#p2p-edit-mode", "reweight")
    page.locator("#p2p-words").get_by_text("circle", exact=True).click()
    reweight = page.locator("#p2p-reweight-words textarea")
    page.wait_for_function("e => e.value === 'circle'", arg=reweight.element_handle(), timeout=30_000)
    page.locator("#p2p-words").get_by_text("circle", exact=True).wait_for()
    page.locator("#p2p-run").click()
    page.locator("#p2p-shares table").wait_for(state="visible", timeout=RUN_TIMEOUT_MS)
    page.screenshot(path=str(ARTIFACTS / "pointing_p2p_words.png"), full_page=True)
    rows = [row.inner_text().split("\t") for row in page.locator("#p2p-shares table tbody tr").all()]
    ratios = {}
    for source_word, source_share, edited_word, edited_share in rows:
        ratios.setdefault(edited_word.strip(), []).append(float(edited_share.strip("% ")) / float(source_share.strip("% ")))
    print(f"P2P reweight of the clicked word, edited ÷ source attention share per word: {ratios}")
    # reweight_value 2 (the default): the clicked word gains attention, and it alone
    assert min(ratios["circle"]) > 1.2
    assert all(max(r) < min(ratios["circle"]) for word, r in ratios.items() if word != "circle")


def test_results_go_into_null_text_and_fatezero_and_run(page, app_url, tmp_path):
    # a generated picture into Null-text inversion
    open_tab(page, app_url, "p2p", "Prompt-to-Prompt")
    page.locator("#p2p-run").click()
    edited = fetch_image(page, "#p2p-edited")
    choose_option(page, "#p2p-edited-send-to", "Null-text inversion")
    page.locator("#p2p-edited-send").click()
    page.get_by_role("heading", name="Null-text inversion", exact=True).wait_for(state="visible", timeout=30_000)
    received = fetch_image(page, "#nt-image")
    assert np.abs(received.astype(int) - edited.astype(int)).max() <= 1
    choose_option(page, "#nt-inversion", "negative-prompt")  # the fast inversion: this is about the hand-over
    page.locator("#nt-run").click()
    fetch_image(page, "#nt-reconstruction")
    page.screenshot(path=str(ARTIFACTS / "pointing_send_image.png"), full_page=True)
    # a generated video into FateZero
    open_tab(page, app_url, "t2v_zero", "Text2Video-Zero")
    page.locator("#t2v-run").click()
    made = fetch_video(page, "#t2v-video", tmp_path)
    choose_option(page, "#t2v-video-send-to", "FateZero")
    page.locator("#t2v-video-send").click()
    page.get_by_role("heading", name="FateZero", exact=True).wait_for(state="visible", timeout=30_000)
    set_number(page, "#fatezero-frames", 2)
    set_number(page, "#fatezero-steps", 2)
    page.locator("#fatezero-run").click()
    edited_video = fetch_video(page, "#fatezero-edited", tmp_path)
    page.screenshot(path=str(ARTIFACTS / "pointing_send_video.png"), full_page=True)
    assert len(made) == config.T2VZeroDefaults.frames and len(edited_video) == 2


def test_a_painted_mask_is_videocomposers_mask_condition(page, app_url, tmp_path):
    open_tab(page, app_url, "videocomposer", "VideoComposer")
    page.locator("#vc-reference input[type=file]").set_input_files(EXAMPLE_VIDEO)
    page.get_by_text("draw, paint or click conditions").click()
    time.sleep(2)  # the reference's first frame becomes the canvas's picture
    brush_stroke(page, "vc-mask", SIDE, [(0.3, 0.3), (0.7, 0.3), (0.7, 0.7), (0.3, 0.7), (0.3, 0.3)])
    mask = fetch_image(page, "#vc-mask-image").mean(-1) > 127  # what the page sends as mask_image
    checked = page.locator("#vc-conditions input:checked")
    page.wait_for_function("n => document.querySelectorAll('#vc-conditions input:checked').length === 2", arg=None,
                           timeout=30_000)
    assert [c.get_attribute("name") or c.evaluate("e => e.parentElement.innerText") for c in checked.all()] \
        == ["motion", "mask"]  # painting the hole chose the mask condition
    set_number(page, "#vc-frames", 2)
    set_number(page, "#vc-steps", 2)
    page.locator("#vc-run").click()
    views = fetch_video(page, "#vc-views", tmp_path)
    page.screenshot(path=str(ARTIFACTS / "pointing_videocomposer_mask.png"), full_page=True)
    # conditions shown left to right: motion, then the mask; the hole is shown as 0 → mid-grey
    mask_view = views[0][:, -SIDE:]  # the last panel (side_by_side puts a seam between them)
    hole = (np.abs(mask_view.astype(int) - 127) < 24).all(-1)
    painted = mask
    assert painted.shape == hole.shape and painted.any() and hole.any()
    overlap = (hole & painted).sum() / max((hole | painted).sum(), 1)
    assert overlap >= 0.8, overlap
    # the painted stroke went round a square in the middle of the frame
    rows, cols = np.nonzero(hole)
    assert abs(rows.mean() - SIDE / 2) < 6 and abs(cols.mean() - SIDE / 2) < 6


def test_a_painted_region_confines_the_p2p_edit(page, app_url):
    open_tab(page, app_url, "p2p", "Prompt-to-Prompt")
    page.locator("#p2p-run").click()  # a source picture to paint over
    fetch_image(page, "#p2p-source-image")
    page.get_by_text("paint the region the edit may change").click()
    time.sleep(2)
    brush_stroke(page, "p2p-region-canvas", SIDE, [(0.1, 0.25), (0.45, 0.25), (0.45, 0.75), (0.1, 0.75)])
    region = fetch_image(page, "#p2p-region").mean(-1) > 127
    before = image_source(page, "#p2p-edited")
    page.locator("#p2p-run").click()
    edited = fetch_image(page, "#p2p-edited", replacing=before)
    source = fetch_image(page, "#p2p-source-image")
    page.screenshot(path=str(ARTIFACTS / "pointing_p2p_region.png"), full_page=True)
    print(f"painted region: {region.mean():.2f} of the picture")
    assert region.shape == source.shape[:2] and 0 < region.mean() < 0.6
    changed = np.abs(edited.astype(int) - source.astype(int)).max(-1)
    assert changed[~region].max() == 0  # outside the painted region: the source, exactly
    assert changed[region].max() > 20  # inside it the edit happened (red → blue)
