"""Open a ``report.html`` of ``3dgl reproduce`` in a real headless browser and screenshot it.

    python benchmarks/report_screenshot.py runs/full/report.html --out runs/full/report.png

Runs Debian's chromium (``apt-get install -y chromium``) headless, writes one PNG per
viewport-sized slice of the page (``--out`` is the first; ``report-2.png`` ... the others) and
checks what a reader would see: the page rendered (not blank), the embedded plots drew
(matplotlib's default blue and orange are on the page), the tables are there. Exit code 0
when every check passes, 1 otherwise, 2 when no browser is installed.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from matplotlib.image import imread

BROWSERS = ("chromium", "chromium-browser", "google-chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--no-first-run", "--hide-scrollbars")
#: matplotlib's first two colours (the curves and bars of every plot in the report).
PLOT_COLOURS = {"blue": (0x1F, 0x77, 0xB4), "orange": (0xFF, 0x7F, 0x0E)}


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(browser: str, page: Path, out: Path, width: int, height: int) -> Path:
    """One PNG of the page's first ``height`` pixels at ``width``."""
    with tempfile.TemporaryDirectory(prefix="threedgl-chromium-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", f"--window-size={width},{height}",
               f"--screenshot={out}", page.resolve().as_uri()]
        run = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    if run.returncode != 0 or not out.exists():
        raise RuntimeError(f"chromium failed ({run.returncode}): {run.stderr[-500:]}")
    return out


def colour_share(image: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> float:
    pixels = (image[..., :3] * 255).astype(np.int16) if image.dtype != np.uint8 else image[..., :3]
    close = np.all(np.abs(pixels.astype(np.int16) - np.array(rgb)) <= tol, axis=-1)
    return float(close.mean())


def check(page: Path, images: list[Path]) -> list[tuple[str, bool, str]]:
    text = page.read_text(encoding="utf-8")
    results = []
    arrays = [imread(p) for p in images]
    first = arrays[0]
    grey = first[..., :3].mean(axis=-1)
    results.append(("page rendered (not blank)", float(grey.std()) > 0.02,
                    f"pixel std {float(grey.std()):.3f}"))
    for name, rgb in PLOT_COLOURS.items():
        share = max(colour_share(a, rgb) for a in arrays)
        results.append((f"embedded plots drew ({name} pixels)", share > 1e-4,
                        f"{100 * share:.3f}% of a slice"))
    embedded = len(re.findall(r'src="data:image/png;base64,', text))
    results.append(("plots embedded in the file", embedded > 0, f"{embedded} images"))
    external = re.findall(r'(?:src|href)="(?:https?:)?//', text)
    results.append(("self-contained (no external resources)", not external,
                    f"{len(external)} external"))
    for table in ("table_ii", "table_iii"):
        results.append((f"{table} present", f'id="{table}"' in text, ""))
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("report", type=Path, nargs="?", default=Path("runs/full/report.html"))
    parser.add_argument("--out", type=Path, default=None, help="PNG (default: beside the report)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=2400, help="height of one slice")
    parser.add_argument("--slices", type=int, default=1, help="screenshots down the page")
    args = parser.parse_args(argv)
    browser = find_browser()
    if browser is None:
        print("no chromium found: apt-get install -y chromium", file=sys.stderr)
        return 2
    if not args.report.exists():
        print(f"{args.report} does not exist (run 3dgl reproduce first)", file=sys.stderr)
        return 1
    out = args.out or args.report.with_suffix(".png")
    images = []
    for i in range(args.slices):
        # A taller window shows more of the page; slice i is the page's top (i+1) heights,
        # cropped to its last height (chromium has no scroll offset flag).
        path = out if i == 0 else out.with_name(f"{out.stem}-{i + 1}{out.suffix}")
        screenshot(browser, args.report, path, args.width, args.height * (i + 1))
        if i:
            from matplotlib.image import imsave

            imsave(path, imread(path)[args.height * i:])
        images.append(path)
    ok = True
    for name, passed, detail in check(args.report, images):
        ok &= passed
        print(f"[{'PASS' if passed else 'FAIL'}] {name}" + (f": {detail}" if detail else ""))
    print("screenshots: " + ", ".join(str(p) for p in images))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
