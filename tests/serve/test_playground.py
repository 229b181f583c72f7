"""The playground at ``/`` in a real headless browser (Debian's chromium, driven by Playwright)
over a real ``rnnkit serve`` process: generation streams into the page in increments and equals
the API's answer for the same seed, Stop aborts the stream and frees its slot on the server, the
seq2seq translation's attention heatmap has a cell per (output, input) token pair, the training
curves are drawn, and an API error is shown in the page."""
import json
import os
import shutil

import httpx
import pytest

sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright: pip install 'rnnkit[test]'")

from tests.serve.test_server import start  # noqa: E402


def chromium() -> str | None:
    """The browser binary: $RNNKIT_CHROMIUM, else chromium on PATH (Debian's package)."""
    given = os.environ.get("RNNKIT_CHROMIUM")
    return given if given and os.access(given, os.X_OK) else shutil.which("chromium") or shutil.which("chromium-browser")


pytestmark = pytest.mark.skipif(chromium() is None, reason="no chromium binary (apt-get install chromium, or set "
                                                           "RNNKIT_CHROMIUM)")

# Records the generated text's length each time the page changes it (a MutationObserver, so
# every increment is seen however fast the stream runs).
WATCH = """() => { window.lengths = []; const out = document.getElementById('generated');
  new MutationObserver(() => window.lengths.push(out.textContent.length))
    .observe(out, {childList: true, characterData: true, subtree: true}); }"""


@pytest.fixture(scope="module")
def served(runs):
    proc, url = start(runs, "--max-tokens", "100000")
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except Exception:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
def page(served):
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium())
        pg = browser.new_page(viewport={"width": 900, "height": 900})
        errors = []
        pg.on("pageerror", lambda e: errors.append(str(e)))
        pg.goto(served + "/")
        pg.wait_for_selector("#model option", state="attached")
        yield pg
        browser.close()
        assert errors == [], errors  # no script error in the page during the whole module


def idle(page) -> None:
    page.wait_for_function("!document.getElementById('generate').disabled", timeout=15_000)


def test_generation_streams_and_equals_the_api(page, served):
    page.select_option("#model", "char")
    assert page.is_visible("#lm-panel") and not page.is_visible("#s2s-panel")
    page.fill("#prompt", "ROMEO:")
    page.fill("#temperature", "0.9")
    page.fill("#top-k", "12")
    page.fill("#max-tokens", "1500")
    page.fill("#seed", "7")
    page.evaluate(WATCH)
    page.click("#generate")
    idle(page)
    text = page.text_content("#generated")
    lengths = page.evaluate("window.lengths")
    growths = sum(b > a for a, b in zip([0, *lengths], lengths))
    assert growths >= 2, lengths  # the text arrived in several pieces, not at once
    answer = httpx.post(f"{served}/v1/completions", timeout=30, json={
        "model": "char", "prompt": "ROMEO:", "max_tokens": 1500, "temperature": 0.9, "top_k": 12, "seed": 7}).json()
    assert text == answer["choices"][0]["text"] and len(text) == 1500
    assert page.text_content("#prime-echo") == "ROMEO:"
    assert page.text_content("#lm-status") == "1500 tokens, seed 7, ended by length"
    assert page.is_hidden("#error")


def test_stop_aborts_the_stream(page, served):
    page.select_option("#model", "char")
    page.fill("#seed", "")
    page.fill("#max-tokens", "100000")
    page.click("#generate")
    page.wait_for_function("document.getElementById('generated').textContent.length > 50", timeout=10_000)
    page.click("#stop")
    idle(page)
    assert page.text_content("#lm-status") == "stopped"
    assert len(page.text_content("#generated")) < 100000
    # the aborted fetch closed the connection: the server freed the stream's slot
    for _ in range(50):
        if "rnnkit_active_streams 0" in httpx.get(f"{served}/metrics").text:
            break
        page.wait_for_timeout(100)
    else:
        raise AssertionError("the stopped stream still holds a slot on the server")


def test_translation_heatmap(page, served):
    page.select_option("#model", "dates")
    assert page.is_visible("#s2s-panel") and not page.is_visible("#lm-panel")
    page.fill("#source", "21 March 2009")
    page.click("#translate")
    page.wait_for_selector("#heatmap svg")
    answer = httpx.post(f"{served}/v1/translate", timeout=30,
                        json={"model": "dates", "texts": ["21 March 2009"], "attention": True}).json()["outputs"][0]
    rows, cols = len(answer["output_tokens"]), len(answer["input_tokens"])
    assert rows > 0 and cols == len("21 march 2009")
    assert page.locator("#heatmap rect.cell").count() == rows * cols
    assert page.locator("#heatmap text.tok").count() == rows + cols
    assert page.text_content("#translation") == answer["output"]
    # the largest weight is drawn in the scale's top color, and each cell's tooltip gives its weight
    peak = max(max(r) for r in answer["attention"])
    tips = page.eval_on_selector_all("#heatmap rect.cell title", "ts => ts.map(t => t.textContent)")
    assert tips[0].endswith(f"{answer['attention'][0][0]:.3f}") and len(tips) == rows * cols
    fills = page.eval_on_selector_all("#heatmap rect.cell", "rs => rs.map(r => r.getAttribute('fill'))")
    flat = [w for r in answer["attention"] for w in r]
    assert fills[flat.index(peak)] == "rgb(253,231,37)"


def test_training_curves(page, served, runs):
    page.select_option("#model", "char")
    page.wait_for_selector("#curves figure[data-metric='train_loss']")
    records = [json.loads(line) for line in (runs / "char" / "metrics.jsonl").read_text().splitlines()]
    logged = [r for r in records if "train_loss" in r]
    points = page.get_attribute("#curves figure[data-metric='train_loss'] polyline", "points").split()
    assert len(points) == len(logged) >= 1
    assert page.locator("#curves figure[data-metric='train_loss'] circle.dot").count() == len(logged)
    plural = "" if len(records) == 1 else "s"
    assert page.text_content("#curves-info") == f"{len(records)} record{plural} from metrics.jsonl, against step"
    page.select_option("#model", "dates")  # a seq2seq run: its curves are per epoch, from config.json
    page.wait_for_selector("#curves figure[data-metric='loss']")
    assert page.text_content("#curves-info").endswith("from config.json, against epoch")


def test_api_error_shown(page):
    page.select_option("#model", "char")
    page.fill("#temperature", "-1")
    page.click("#generate")
    idle(page)
    page.wait_for_selector("#error:not([hidden])")
    assert page.text_content("#error") == "temperature must be >= 0 (0 = greedy), got -1"
    page.fill("#temperature", "1")
    page.fill("#top-p", "1.5")
    page.click("#generate")
    idle(page)
    assert "top_p must be in (0, 1], got 1.5" in page.text_content("#error")
    page.fill("#top-p", "")
    page.fill("#max-tokens", "20")
    page.click("#generate")
    idle(page)
    assert page.is_hidden("#error") and len(page.text_content("#generated")) == 20  # cleared on success
