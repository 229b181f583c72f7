"""Makes docs/playground.png: the playground of a real ``rnnkit serve`` in headless chromium, a
language model's streamed text beside a seq2seq run's translation and attention heatmap.

    python docs/make_screenshot.py LM_RUN SEQ2SEQ_RUN [--out docs/playground.png]

Needs the serve extra, playwright (the test extra), Pillow (with matplotlib) and Debian's
chromium (or ``--chromium PATH``). The README's image came from a 128-unit char LM trained 600
steps on tiny Shakespeare and a dates run trained 1.5 minutes.
"""
from __future__ import annotations

import argparse
import io
import shutil
import sys
from pathlib import Path

from rnnkit.serve.server import spawn


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("lm", help="a language-model run folder")
    ap.add_argument("seq2seq", help="a seq2seq run folder")
    ap.add_argument("--out", default=str(Path(__file__).with_name("playground.png")))
    ap.add_argument("--prime", default="ROMEO:")
    ap.add_argument("--source", default="Saturday 21 March 2009")
    ap.add_argument("--chromium", default=shutil.which("chromium"))
    args = ap.parse_args(argv)
    if not args.chromium:
        ap.error("no chromium found: apt-get install chromium, or give --chromium PATH")
    from PIL import Image
    from playwright.sync_api import sync_playwright

    proc, url = spawn([args.lm, args.seq2seq, "--port", "0"])
    lm_id, s2s_id = Path(args.lm).name, Path(args.seq2seq).name
    shots = []
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium)
            page = browser.new_page(viewport={"width": 640, "height": 1000}, device_scale_factor=1)
            page.goto(url + "/")
            page.wait_for_selector("#model option", state="attached")
            page.select_option("#model", lm_id)
            page.fill("#prompt", args.prime)
            page.fill("#max-tokens", "400")
            page.fill("#seed", "1")
            page.click("#generate")
            page.wait_for_function("!document.getElementById('generate').disabled", timeout=60_000)
            page.wait_for_selector("#curves figure")
            shots.append(page.screenshot(full_page=True))
            page.select_option("#model", s2s_id)
            page.fill("#source", args.source)
            page.click("#translate")
            page.wait_for_selector("#heatmap svg")
            page.wait_for_selector("#curves figure")
            shots.append(page.screenshot(full_page=True))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(15)
    images = [Image.open(io.BytesIO(s)).convert("RGB") for s in shots]
    out = Image.new("RGB", (sum(i.width for i in images), max(i.height for i in images)), (250, 250, 250))
    x = 0
    for im in images:
        out.paste(im, (x, 0))
        x += im.width
    out.save(args.out, optimize=True)
    print(f"wrote {args.out} ({out.width}x{out.height})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
