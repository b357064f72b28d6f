"""Headless chromium for the tests that open a page popmix wrote (``popmix report``'s, the
documentation site's): the probe injected into a copy of the page, and what it counted."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None,
    reason="chromium is not installed (apt-get install chromium); the browser check needs it",
)

# Injected into a copy of the page: counts the images the browser decoded in full (drawn to a
# canvas, their last row opaque: matplotlib's PNGs are opaque, and a truncated PNG still has a
# size but leaves its lower rows empty) and every error event (a script's, a resource that
# failed to load, console.error), into the title --dump-dom shows.
PROBE = """<script>
window.__errors = 0;
window.addEventListener("error", () => { window.__errors += 1; }, true);
const _err = console.error; console.error = (...a) => { window.__errors += 1; _err(...a); };
function whole(img) {
  if (!img.complete || img.naturalWidth === 0) return false;
  const c = document.createElement("canvas");
  c.width = img.naturalWidth; c.height = img.naturalHeight;
  const g = c.getContext("2d"); g.drawImage(img, 0, 0);
  const row = g.getImageData(0, c.height - 1, c.width, 1).data;
  for (let i = 3; i < row.length; i += 4) if (row[i] !== 255) return false;
  return true;
}
window.addEventListener("load", async () => {
  const imgs = [...document.images];
  // a decode that never settles (a truncated image) must not keep the title unset
  const settled = Promise.all(imgs.map(i => i.decode().catch(() => null)));
  await Promise.race([settled, new Promise(r => setTimeout(r, 2000))]);
  const ok = imgs.filter(i => { try { return whole(i); } catch (e) { return false; } }).length;
  document.title = `probe decoded=${ok} images=${imgs.length} errors=${window.__errors}`;
});
</script>"""


def with_probe(html: str) -> str:
    """``html`` with :data:`PROBE` first in its head."""
    return html.replace("<head>", "<head>" + PROBE, 1)


def chromium(*args: str, tmp: Path) -> subprocess.CompletedProcess[str]:
    """Headless chromium with its own profile under ``tmp``, its console on stderr."""
    assert CHROMIUM is not None
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--disable-gpu",
            "--no-sandbox",
            "--hide-scrollbars",
            f"--user-data-dir={tmp / 'chromium-profile'}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def probed(url: str, tmp: Path) -> tuple[dict[str, int], list[str]]:
    """(the probe's counts, the console lines chromium logged) of the probed page at ``url``."""
    dom = chromium("--virtual-time-budget=5000", "--dump-dom", url, tmp=tmp)
    found = re.search(r"<title>probe decoded=(\d+) images=(\d+) errors=(\d+)</title>", dom.stdout)
    assert found, f"{url} did not finish loading: {dom.stdout[:300]!r} {dom.stderr[-800:]!r}"
    counts = dict(zip(("decoded", "images", "errors"), map(int, found.groups())))
    return counts, [ln for ln in dom.stderr.splitlines() if ":CONSOLE" in ln]
