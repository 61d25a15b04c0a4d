"""Stops a :class:`~threedgl.federation.flower.superlink.LocalSuperLink`'s processes when
the process that started it dies without closing it (SIGKILL, the OOM killer).

``python -m threedgl.federation.flower.reaper DRIVER DRIVER_START LINK LINK_START`` runs in a
session of its own beside the SuperLink: every half second it records the SuperLink's process
tree; once the driver (process id and start time) is gone it stops the SuperLink and kills
what the tree held, as ``LocalSuperLink.close`` would have. It exits when the SuperLink has
stopped while the driver lives (a normal close), or after cleaning up.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time

from threedgl.federation.flower.superlink import STOP_GRACE, _alive, _tree

#: Seconds between two looks at the driver and the SuperLink's tree.
PERIOD = 0.5


def reap(seen: dict[int, int], link: int, link_start: int) -> None:
    """SIGTERM to the SuperLink, then SIGKILL to every recorded process still running."""
    if _alive(link, link_start):
        with contextlib.suppress(OSError):
            os.kill(link, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE
        while _alive(link, link_start) and time.monotonic() < deadline:
            time.sleep(0.1)
    for pid, start in seen.items():
        if _alive(pid, start):
            with contextlib.suppress(OSError):  # it ended meanwhile
                os.kill(pid, signal.SIGKILL)


def main(argv: list[str]) -> int:
    driver, driver_start, link, link_start = (int(a) for a in argv)
    seen: dict[int, int] = {}
    while True:
        if _alive(link, link_start):
            seen.update(_tree(link))
        driver_alive = _alive(driver, driver_start)
        if not driver_alive:
            reap(seen, link, link_start)
            return 0
        if not _alive(link, link_start):
            return 0  # closed by the driver, which stops the rest itself
        time.sleep(PERIOD)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
