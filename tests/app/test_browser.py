"""End to end in a real headless Chromium: start `streamlit run`, open every page, run a tiny decode.

Screenshots are test artefacts: they go to $CDX_APP_SCREENSHOTS (e.g. docs/img, for the README)
or, by default, to the test's tmp folder. $CDX_APP_E2E_MODEL picks the pair the decode and the
side-by-side page use (default tiny_random: seconds; `default` is the embedded pirate pair).
$CDX_APP_ANALYSIS_RUN, a finished analysis folder (e.g. one `task=analyze prompts.limit=40` on the
embedded pirate pair), replaces the fixture analysis, so the What changed, Findings and Paired shots
show a real experiment.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.app.app_fixtures import write_analysis_run, write_search_run, write_sweep, write_text_run

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--window-size=1400,1300")

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not (CHROMIUM and DRIVER), reason="needs chromium and chromedriver (make browser installs them)"),
]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path):
    """`streamlit run cdx/app/main.py` as `make app` runs it, on a free loopback port, over fixture runs."""
    root = tmp_path / "root"
    analysis = root / "outputs" / "2026-01-01" / "11-00-00"
    real = os.environ.get("CDX_APP_ANALYSIS_RUN")
    runs = {"text": write_text_run(root / "outputs" / "2026-01-01" / "10-00-00", 30),
            "analysis": shutil.copytree(real, analysis) if real else write_analysis_run(analysis),
            "search": write_search_run(root / "outputs" / "2026-01-01" / "12-00-00"),
            "sweep": write_sweep(root / "multirun" / "2026-01-01" / "13-00-00")}
    port = free_port()
    env = {**os.environ, "CDX_APP_ROOT": str(root), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    log = (tmp_path / "streamlit.log").open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "cdx/app/main.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
                             "--client.toolbarMode", "minimal"],
                            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(base, proc, tmp_path / "streamlit.log")
        yield base, runs
    finally:
        proc.terminate()
        proc.wait(30)
        log.close()


def _wait_healthy(base: str, proc, log: Path, timeout: float = 60) -> None:
    end = time.time() + timeout
    while time.time() < end:
        if proc.poll() is not None:
            raise AssertionError(f"streamlit exited: {log.read_text()[-2000:]}")
        try:
            if urllib.request.urlopen(f"{base}/_stcore/health", timeout=2).read() == b"ok":
                return
        except OSError:
            time.sleep(0.5)
    raise AssertionError("streamlit did not come up within a minute")


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = CHROMIUM
    for f in (*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"):
        opts.add_argument(f)
    driver = webdriver.Chrome(service=Service(DRIVER), options=opts)
    try:
        yield driver
    finally:
        driver.quit()


def shots_dir(tmp_path: Path) -> Path:
    out = Path(os.environ.get("CDX_APP_SCREENSHOTS") or tmp_path / "screenshots")
    out.mkdir(parents=True, exist_ok=True)
    return out


def wait_text(driver, text: str, timeout: float = 60):
    """The first element whose text contains `text`, once the app has drawn it; fails on an app exception."""
    from selenium.common.exceptions import TimeoutException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    xpath = f"//*[contains(normalize-space(.), {text!r}) and not(.//*[contains(normalize-space(.), {text!r})])]"
    try:
        el = WebDriverWait(driver, timeout, poll_frequency=0.5).until(lambda d: d.find_elements(By.XPATH, xpath))
    except TimeoutException:
        body = driver.find_element(By.TAG_NAME, "body").text[-3000:]
        raise AssertionError(f"{text!r} did not appear within {timeout} s; the page shows:\n{body}") from None
    assert not driver.find_elements(By.CSS_SELECTOR, "[data-testid='stException']"), "the app raised"
    return el[0]


def wait_count(driver, text: str, n: int, timeout: float = 60) -> None:
    from selenium.webdriver.common.by import By

    xpath = f"//*[contains(text(), {text!r})]"
    end = time.time() + timeout
    while len(driver.find_elements(By.XPATH, xpath)) < n:
        if time.time() > end:
            raise AssertionError(f"{n} x {text!r} did not appear within {timeout} s: "
                                 f"{driver.find_element(By.TAG_NAME, 'body').text[-2000:]}")
        time.sleep(0.5)


def settle(driver, timeout: float = 30) -> None:
    """Wait until the script run is over (Streamlit's running indicator is gone), so a screenshot is complete."""
    from selenium.webdriver.common.by import By

    end, calm = time.time() + timeout, 0
    while time.time() < end and calm < 3:
        busy = driver.find_elements(By.CSS_SELECTOR, "[data-testid='stStatusWidget']")
        calm = 0 if busy else calm + 1
        time.sleep(0.3)


def shot(driver, path: Path) -> None:
    settle(driver)
    time.sleep(1.0)  # tables are drawn on a canvas a moment after the script run ends
    driver.save_screenshot(str(path))


def click_button(driver, label: str) -> None:
    """Click a button once the page is idle (a click during a rerun can land on a replaced element)."""
    from selenium.webdriver.common.by import By

    wait_text(driver, label)
    settle(driver)
    driver.find_element(By.XPATH, f"//button[.//*[normalize-space(text())={label!r}]]").click()


def click_tab(driver, label: str) -> None:
    from selenium.webdriver.common.by import By

    wait_text(driver, label)
    settle(driver)
    driver.find_element(By.XPATH, f"//*[@data-testid='stTab'][contains(normalize-space(.), {label!r})]").click()


def test_every_page_and_a_decode_in_a_real_browser(server, browser, tmp_path):
    base, runs = server
    shots = shots_dir(tmp_path)
    model = os.environ.get("CDX_APP_E2E_MODEL", "tiny_random")
    t0 = time.time()

    # the default page, no click: the newest analysis' words chart, forest plot and paired examples
    browser.get(base)
    wait_text(browser, "validated finding")
    wait_text(browser, "Paired examples (same held-out prompt)")
    wait_count(browser, "favours (right) and avoids (left)", 1)  # the words chart's title, drawn by plotly
    wait_count(browser, "effect (rate_c − rate_s) with 95% CI", 1)  # the forest plot's
    wait_count(browser, "starting · v", 3)
    wait_count(browser, "comparison · v", 3)
    shot(browser, shots / "app-what-changed.png")
    browser.get(f"{base}/paired-samples?run={runs['analysis']}")
    wait_text(browser, "pairs shown")
    shot(browser, shots / "app-paired.png")

    # each browsing page with a run: the text that shows it loaded (the shaded text cards for the explorer)
    for page, run, texts, name in (("explorer", "text", ("decode run · 30 texts", "p00"), "app-explorer"),
                                   ("findings", "analysis", ("hypotheses ·", "CSV of these findings"), "app-findings"),
                                   ("search-and-sweeps", "sweep", ("sweep over model.interpolation",), "app-sweeps"),
                                   ("search-and-sweeps", "search", ("12 prompts in the bank",), "app-search")):
        browser.get(f"{base}/{page}?run={runs[run]}")
        for text in texts:
            wait_text(browser, text)
        shot(browser, shots / f"{name}.png")
    browser.get(f"{base}/explorer?run={runs['text']}")
    click_tab(browser, "Distributions")
    wait_count(browser, "by position over all texts", 1)
    wait_count(browser, "against perplexity", 1)
    shot(browser, shots / "app-explorer-plots.png")

    browser.get(f"{base}/side-by-side?model={model}")
    click_button(browser, "Generate")
    for title in ("Starting model alone", "Comparison model alone", "Contrastive"):
        wait_text(browser, title)
    wait_count(browser, "mean KL(s‖c)", 3, timeout=180)  # each column's closing line: all three are done
    shot(browser, shots / "app-side-by-side.png")

    browser.get(f"{base}/compare?model={model}")
    wait_text(browser, "Compare two models")
    click_button(browser, "Start run")
    wait_text(browser, "-decode · decode")  # the job is listed at once, running in the background
    wait_text(browser, "cdx generations:", timeout=240)  # the run's closing line: it finished
    shot(browser, shots / "app-compare.png")
    settle(browser)  # the job panel redraws the page once when the run ends
    click_button(browser, "Open in the Run explorer")
    wait_text(browser, "decode run · 8 texts")
    shot(browser, shots / "app-explorer-new-run.png")
    print(f"browser test: {time.time() - t0:.0f} s, screenshots in {shots}")
    assert {p.name for p in shots.glob("app-*.png")} >= {
        "app-what-changed.png", "app-paired.png", "app-explorer-plots.png", "app-explorer.png", "app-findings.png",
        "app-sweeps.png", "app-search.png", "app-side-by-side.png", "app-compare.png"}


def test_a_clicked_token_shows_both_models_top_tokens(server, browser, tmp_path):
    """A real decode with decoding.record_top_k=3, in the app's explorer and in its report.html: the
    alternatives box of a token is hidden until the token is clicked, then lists both models' top 3."""
    from selenium.webdriver.common.by import By

    from cdx.run import run
    from tests.conftest import compose

    base, runs = server
    out = Path(runs["text"]).parents[1] / "2026-01-02" / "10-00-00"
    run(compose(["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=6", "decoding.record_top_k=3",
                 "report.print_top=false"], out))
    for url in (f"{base}/explorer?run={out}", (out / "report.html").as_uri()):
        browser.get(url)
        if url.startswith("http"):
            wait_text(browser, "decode run · 4 texts")
            settle(browser)
        tok = browser.find_elements(By.CSS_SELECTOR, ".cdx-tok[tabindex]")[0]
        box = tok.find_element(By.CSS_SELECTOR, ".cdx-alt")
        assert not box.is_displayed()
        tok.click()
        assert box.is_displayed(), url
        assert "starting model, top 3 here" in box.text and "comparison model, top 3 here" in box.text
        assert len(box.text.splitlines()) == 2 + 2 * 3  # two headings, three tokens each
        if url.startswith("http"):
            shot(browser, shots_dir(tmp_path) / "app-explorer-top-tokens.png")
