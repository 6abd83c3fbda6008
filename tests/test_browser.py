"""The page in a real headless Chromium (Debian's package, driven by Playwright)."""
from __future__ import annotations

import time

from app_calls import ARTIFACTS, chromium_page, wait_for_call


def test_sampler_tab_in_chromium(app_url, tmp_path):
    with chromium_page(tmp_path / "profile") as page:
        errors = page.errors
        # "load", not "networkidle": the page keeps a heartbeat stream open (Gradio's, for its per-visitor State)
        page.goto(app_url, wait_until="load")
        page.locator("#studio-header").wait_for(state="visible", timeout=30_000)
        assert "toy-sd" in page.locator("#studio-header").inner_text()
        page.get_by_role("tab", name="Guided generation", exact=True).click()
        page.get_by_role("tab", name="Sampler inspector").click()
        page.locator("#sampler-prompt textarea").fill("a yellow square on a black background")
        page.locator("#sampler-run").click()
        page.locator("#sampler-image img").wait_for(state="visible", timeout=120_000)
        src = page.locator("#sampler-image img").get_attribute("src")
        page.screenshot(path=str(ARTIFACTS / "sampler_tab.png"), full_page=True)
        # Stop cancels a long run: the engine stops within one step of the click
        page.locator("#sampler-steps input[type=number]").fill("200")
        page.locator("#sampler-steps input[type=number]").press("Enter")
        page.locator("#sampler-run-stop").scroll_into_view_if_needed()
        start = time.monotonic()
        page.locator("#sampler-run").click()
        running = wait_for_call("tabs.sampler.sample", start, steps=2)
        # pressed at once (no waiting for the page to settle: a loaded machine finishes 200 toy steps in seconds)
        page.locator("#sampler-run-stop").dispatch_event("click")
        assert running.finished.wait(60)
        assert running.steps_at_cancel is not None and running.steps <= running.steps_at_cancel + 1 < 200
        # every method by the navigation in two clicks: its group, then its tab
        import tabs
        for group, (_, members) in tabs.GROUPS.items():
            page.get_by_role("tab", name=group, exact=True).click()
            for tab in members:
                page.get_by_role("tab", name=tab.TITLE, exact=True).click()
                page.get_by_role("heading", name=tab.TITLE, exact=True).wait_for(state="visible", timeout=10_000)
                # what its first example makes, shown before any run
                page.locator(f"#example-result-{tabs.key(tab)}").scroll_into_view_if_needed(timeout=10_000)
                page.locator(f"#example-result-{tabs.key(tab)} :is(img, video)").first.wait_for(state="visible",
                                                                                              timeout=10_000)
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(ARTIFACTS / f"group_{group.lower().replace(' ', '_')}.png"))
        # a link opens a method
        page.goto(app_url + "?tab=dreamix", wait_until="load")
        page.get_by_role("heading", name="Dreamix", exact=True).wait_for(state="visible", timeout=10_000)
        page.get_by_role("button", name="Fine-tune and generate", exact=True).wait_for(state="visible", timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "dreamix_tab.png"), full_page=True)
    assert src
    assert not errors
