"""A tour of `lctk serve` in a real browser: sample, edit, listen and inspect, with a screenshot of each page.

    python examples/explorer_tour.py runs/fashion-mnist --shots docs/img/explorer --attr sandal
    python examples/explorer_tour.py runs/essen --shots docs/img/explorer-melody --rule key=C

Drives Debian's headless Chromium (packages ``chromium`` and ``chromium-driver``) with Selenium, against an
explorer started in this process on a free loopback port. The test suite runs the same tour on tiny runs.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import socket
import threading
import time
from pathlib import Path
from typing import Iterator

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
WAIT_S = 60


@contextlib.contextmanager
def explorer(run: str | Path) -> Iterator[str]:
    """Serve ``run`` on a free 127.0.0.1 port in a background thread; yields the page's URL."""
    import uvicorn

    from lctk.serve.app import create_app

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(run), host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_S
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the explorer did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def browser(width: int = 1280, height: int = 900):
    """A headless Chromium driven by Selenium, using the system's browser and driver (nothing downloaded)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                 f"--window-size={width},{height}", "--autoplay-policy=no-user-gesture-required"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver, script: str, timeout: float = WAIT_S):
    """Poll the page until the JavaScript expression ``script`` is truthy; return its value."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = driver.execute_script(f"return ({script});")
        if value:
            return value
        time.sleep(0.1)
    raise TimeoutError(f"the page never satisfied: {script}")


def choose(driver, panel: str, attrs=(), rules=()) -> None:
    """Set attribute pickers (``name`` wants it, ``name=0`` does not) and tick rules in a panel."""
    for spec in attrs:
        name, _, value = spec.partition("=")
        driver.execute_script(
            "const s = document.querySelector(`#${arguments[0]}-attrs select[data-name='${arguments[1]}']`);"
            "s.value = arguments[2];", panel, name, "0" if value == "0" else "1")
    for rule in rules:
        driver.execute_script(
            "document.querySelector(`#${arguments[0]}-rules input[data-name='${arguments[1]}']`).checked = true;",
            panel, rule)


def tour(url: str, shots: Path | None = None, attrs=(), rules=()) -> dict:
    """Open the explorer, sample with ``attrs``/``rules``, edit a test example towards them, open Inspect.
    Returns what the page showed (counts, image sizes, audio facts); writes screenshots into ``shots``."""
    seen: dict = {}
    with browser() as driver:
        driver.get(url)
        wait_for(driver, "document.body.dataset.ready === '1'")
        choose(driver, "sample", attrs, rules)
        driver.find_element("id", "sample-go").click()
        wait_for(driver, "document.querySelectorAll('#sample-grid .item').length > 0 || "
                         "document.querySelector('#sample-status').classList.contains('error')")
        seen["sample_status"] = driver.find_element("id", "sample-status").text
        wait_for(driver, "Array.from(document.querySelectorAll('#sample-grid img')).every(i => i.complete)")
        seen["sample_items"] = driver.execute_script("return document.querySelectorAll('#sample-grid .item').length;")
        seen["sample_image_sizes"] = driver.execute_script(
            "return Array.from(document.querySelectorAll('#sample-grid img')).map(i => [i.naturalWidth, i.naturalHeight]);")
        audio = driver.execute_script("return document.querySelectorAll('#sample-grid audio').length;")
        seen["sample_audio"] = audio
        if audio:
            seen["audio_duration_s"] = wait_for(
                driver, "(() => { const a = document.querySelector('#sample-grid audio');"
                        " return a.readyState >= 1 && isFinite(a.duration) ? a.duration : 0; })()")
            src = driver.execute_script("return document.querySelector('#sample-grid audio').src;")
            seen["audio_header"] = base64.b64decode(src.split(",", 1)[1])[:4].decode("latin-1")
        if shots:
            shots.mkdir(parents=True, exist_ok=True)
            driver.save_screenshot(str(shots / "sample.png"))

        driver.find_element("id", "tab-edit").click()
        driver.find_element("id", "edit-strip").click()
        wait_for(driver, "document.querySelectorAll('#edit-strip-items .item').length > 0")
        driver.find_elements("css selector", "#edit-strip-items .item")[0].click()
        choose(driver, "edit", attrs, rules)
        driver.find_element("id", "edit-go").click()
        wait_for(driver, "document.querySelector('#edit-result .edit-after img') !== null || "
                         "document.querySelector('#edit-status').classList.contains('error')")
        seen["edit_status"] = driver.find_element("id", "edit-status").text
        seen["edit_images"] = driver.execute_script("return document.querySelectorAll('#edit-result img').length;")
        if shots:
            driver.save_screenshot(str(shots / "edit.png"))

        driver.find_element("id", "tab-inspect").click()
        seen["inspect_tables"] = driver.execute_script("return document.querySelectorAll('#inspect table').length;")
        if shots:
            driver.save_screenshot(str(shots / "inspect.png"))
    return seen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    parser.add_argument("--shots", type=Path, help="folder for the screenshots")
    parser.add_argument("--attr", action="append", default=[], help="attribute to sample and edit towards")
    parser.add_argument("--rule", action="append", default=[], help="rule to sample and edit towards")
    args = parser.parse_args()
    with explorer(args.run) as url:
        for key, value in tour(url, args.shots, args.attr, args.rule).items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
