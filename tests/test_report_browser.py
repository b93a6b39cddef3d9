"""The report as a reader sees it: headless Chromium opens ``report.html`` (three models, one with two
seeds, four scores, two signals, physics observables) in a 1366 × 768 window, and the heatmap must be
on the first screen, loaded, large, and coloured. The layout is read from the page itself: the test
opens a copy of the report with a small probe script added (the report carries no script) that writes
the bounding boxes of the key elements into ``<html data-layout>``, which ``--dump-dom`` prints.
``REPORT_SCREENSHOT=FILE`` keeps the first-screen screenshot."""
import json
import os
import shutil
import subprocess
import warnings

import numpy as np
import pytest

from report_runs import demo_like_runs

CHROMIUM = shutil.which("chromium")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="headless Chromium not installed (Debian: apt install chromium)")

SCREEN = (1366, 768)
#: headless, as root, offline: no sandbox, GPU, QUIC, first-run page, background networking or sync
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         f"--window-size={SCREEN[0]},{SCREEN[1]}"]
#: writes each key element's box, the image's load state and the viewport into <html data-layout>
PROBE = """<script>addEventListener('load', () => {
  const box = e => { if (!e) return null; const r = e.getBoundingClientRect();
    return {top: r.top, left: r.left, width: r.width, height: r.height, bottom: r.bottom}; };
  const heatmap = document.getElementById('heatmap');
  const roc = [...document.querySelectorAll('h2')].find(h => h.textContent.startsWith('ROC'));
  document.documentElement.dataset.layout = JSON.stringify({
    viewport: {width: innerWidth, height: innerHeight}, title: box(document.querySelector('h1')),
    heatmap: {...box(heatmap), complete: heatmap.complete, naturalWidth: heatmap.naturalWidth},
    roc: box(roc), script_free: document.scripts.length === 1});
});</script>"""


def _chromium(tmp_path, *args) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", *args],
                          capture_output=True, text=True, timeout=60, check=True)


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    from tfp_anomaly.report import write_report

    out = tmp_path_factory.mktemp("report")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        write_report(demo_like_runs(n_background=2000, n_signal=300), out, bootstrap=2,
                     title="tfp-anomaly demo: synthetic runs")
    return out / "report.html"


@pytest.fixture(scope="module")
def layout(report, tmp_path_factory) -> dict:
    """The page's layout in the 1366 × 768 window, as the probe script measured it."""
    import html

    tmp_path = tmp_path_factory.mktemp("layout")
    probed = tmp_path / "probed.html"
    probed.write_text(report.read_text().replace("</body>", PROBE + "</body>"))
    dom = _chromium(tmp_path, "--virtual-time-budget=2000", "--dump-dom", probed.as_uri()).stdout
    start = dom.index('data-layout="') + len('data-layout="')
    return json.loads(html.unescape(dom[start:dom.index('"', start)]))


def test_the_heatmap_fills_the_first_screen(layout):
    heatmap, viewport = layout["heatmap"], layout["viewport"]
    assert layout["script_free"]  # the probe is the only script: the report has none of its own
    assert heatmap["complete"] and heatmap["naturalWidth"] > 0  # the data-URI image decoded
    assert heatmap["top"] < SCREEN[1] and heatmap["height"] > 200, heatmap
    assert heatmap["bottom"] <= viewport["height"] + 1, (heatmap, viewport)  # all of it, without scrolling
    assert heatmap["left"] >= 0 and heatmap["left"] + heatmap["width"] <= viewport["width"], heatmap
    assert layout["title"]["bottom"] <= heatmap["top"] < layout["roc"]["top"]


def test_the_first_screen_shows_a_coloured_heatmap(report, layout, tmp_path):
    import matplotlib.image

    shot = tmp_path / "first_screen.png"
    _chromium(tmp_path, f"--screenshot={shot}", report.as_uri())
    pixels = matplotlib.image.imread(shot)[..., :3]
    assert pixels.shape[:2] == (SCREEN[1], SCREEN[0])
    box = layout["heatmap"]
    region = pixels[int(box["top"]):int(min(box["bottom"], SCREEN[1])), int(box["left"]):int(box["left"] + box["width"])]
    colourful = (region.max(axis=-1) - region.min(axis=-1)) > 0.25  # viridis cells, not grey or white
    assert colourful.mean() > 0.15, colourful.mean()
    above = pixels[:int(box["top"])]
    assert ((above.max(axis=-1) - above.min(axis=-1)) > 0.25).mean() < 0.01  # only the title and note above it
    assert np.isfinite(pixels).all()
    if os.environ.get("REPORT_SCREENSHOT"):  # keep it to look at
        shutil.copy(shot, os.environ["REPORT_SCREENSHOT"])
