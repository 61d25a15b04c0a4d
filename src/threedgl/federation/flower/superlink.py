"""A SuperLink of our own on loopback: Flower's simulation runtime as ``flwr run`` uses it.

:class:`LocalSuperLink` starts ``flower-superlink --simulation`` (the process ``flwr run``
starts for a ``:local:`` connection) on a free port of 127.0.0.1, with a private
``FLWR_HOME`` and Ray's files under a temporary directory, and names it ``threedgl`` in
that home's ``config.toml``. :meth:`LocalSuperLink.run` submits an app with the ``flwr``
command line (``flwr run APP threedgl --stream``) and returns once the run has ended.

The SuperLink starts a SuperExec in a session of its own, which starts ``flwr-simulation``
(the ServerApp and Ray's processes). A thread records that process tree while it runs;
:meth:`LocalSuperLink.close` (on leaving the ``with`` block: after the run, an error or
Ctrl-C) stops the SuperLink and kills whatever the tree still holds, by process id and
start time. If this process dies without closing it (SIGKILL), a reaper process started
beside the SuperLink does the same (:mod:`threedgl.federation.flower.reaper`). Linux (it
reads ``/proc``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threedgl.errors import ThreedglError
from threedgl.federation.flower.flwr_run import run_id_of, run_status, venv_bin

#: The connection's name in ``FLWR_HOME/config.toml``.
CONNECTION = "threedgl"
START_TIMEOUT = 120.0  # seconds for the SuperLink to answer (a loaded 2-core machine)
STOP_GRACE = 5.0  # seconds the SuperLink gets to stop before its tree is killed


@dataclass(frozen=True)
class FlwrRun:
    """How a ``flwr run`` ended: its exit code (``None``: not waited for), the run id and
    the last lines it printed."""

    returncode: int | None
    run_id: int | None
    lines: list[str]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _stat(pid: int) -> tuple[int, int, str] | None:
    """(parent id, start time, state) of a process, ``None`` when it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text.rsplit(")", 1)[1].split()
    return int(fields[1]), int(fields[19]), fields[0]


def _tree(root: int) -> dict[int, int]:
    """Every live descendant of ``root`` (and ``root``): process id → start time."""
    children: dict[int, list[int]] = {}
    starts: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            st = _stat(int(entry))
            if st is not None and st[2] != "Z":
                children.setdefault(st[0], []).append(int(entry))
                starts[int(entry)] = st[1]
    out, todo = {}, [root]
    while todo:
        pid = todo.pop()
        if pid in starts:
            out[pid] = starts[pid]
        todo += children.get(pid, [])
    return out


def _alive(pid: int, start: int) -> bool:
    st = _stat(pid)
    return st is not None and st[1] == start and st[2] != "Z"


class LocalSuperLink:
    """Flower's simulation runtime behind a SuperLink that this process owns (see the
    module docstring). ``root`` is a private directory for Flower's and Ray's files;
    ``pythonpath`` is prepended to the runtime's import path (a ClientApp of the caller's)."""

    def __init__(self, root: Path, *, pythonpath: list[str] | None = None) -> None:
        self.root = root
        self.home = root / "flwr-home"
        self.log = root / "superlink.log"
        self.port = 0
        # Ray's socket paths must fit in 107 bytes: a short directory of its own if need be
        self.ray_tmp = root / "ray"
        self._own_ray_tmp = len(str(self.ray_tmp)) > 40
        if self._own_ray_tmp:
            self.ray_tmp = Path(tempfile.mkdtemp(prefix="3dgl-ray-", dir="/tmp"))
        self.env = self._env(pythonpath or [])
        self._superlink: subprocess.Popen[bytes] | None = None
        self._reaper: subprocess.Popen[bytes] | None = None
        self._children: list[subprocess.Popen[Any]] = []
        self._seen: dict[int, int] = {}
        self._stop = threading.Event()
        self._watcher: threading.Thread | None = None

    def _env(self, pythonpath: list[str]) -> dict[str, str]:
        env = dict(os.environ)
        bindir = str(Path(sys.executable).parent)
        env.update({
            "FLWR_HOME": str(self.home),
            "FLWR_TELEMETRY_ENABLED": "0",
            "FLWR_DISABLE_UPDATE_CHECK": "1",
            "RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO": "0",
            "PATH": bindir + os.pathsep + env.get("PATH", ""),
        })
        env["RAY_TMPDIR"] = str(self.ray_tmp)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(
                [*pythonpath, *filter(None, [env.get("PYTHONPATH")])])
        return env

    # -- start and stop ------------------------------------------------------------------------
    def __enter__(self) -> LocalSuperLink:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.home.mkdir(parents=True, exist_ok=True)
        for _ in range(3):  # a port taken between choosing it and binding it: another one
            self.port = _free_port()
            self._superlink = subprocess.Popen(
                [venv_bin("flower-superlink"), "--insecure", "--simulation",
                 "--isolation", "subprocess", "--host", "127.0.0.1", "--port", str(self.port),
                 "--disable-runtime-dependency-installation", "--log-file", str(self.log)],
                env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                start_new_session=True,  # Ctrl-C reaches this process, which stops it
            )
            if self._wait_until_up():
                break
        else:
            raise ThreedglError(f"the Flower SuperLink did not start: see {self.log}")
        (self.home / "config.toml").write_text(
            f'[superlink]\ndefault = "{CONNECTION}"\n\n[superlink.{CONNECTION}]\n'
            f'address = "127.0.0.1:{self.port}"\ninsecure = true\n', encoding="utf-8")
        self._watcher = threading.Thread(target=self._watch, daemon=True)
        self._watcher.start()
        self._start_reaper()

    def _start_reaper(self) -> None:
        """A process of its own that stops the SuperLink's tree if this one dies without
        closing it (SIGKILL, the OOM killer: :mod:`threedgl.federation.flower.reaper`)."""
        assert self._superlink is not None
        me, link = _stat(os.getpid()), _stat(self._superlink.pid)
        if me is None or link is None:  # the SuperLink already ended: nothing to guard
            return
        self._reaper = subprocess.Popen(
            [sys.executable, "-m", "threedgl.federation.flower.reaper", str(os.getpid()),
             str(me[1]), str(self._superlink.pid), str(link[1])],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True)  # Ctrl-C to this process's group does not stop it

    def _wait_until_up(self) -> bool:
        assert self._superlink is not None
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self._superlink.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health",
                                            timeout=1.0) as res:
                    if res.status == 200:
                        return True
            except OSError:
                pass
            time.sleep(0.2)
        self._superlink.kill()
        self._superlink.wait()
        return False

    def _watch(self) -> None:
        """Record the SuperLink's process tree (a process whose parent died leaves it)."""
        assert self._superlink is not None
        while not self._stop.wait(0.5):
            self._seen.update(_tree(self._superlink.pid))

    def close(self) -> None:
        """Stop the SuperLink and every process it started; idempotent."""
        self._stop.set()
        for child in self._children:  # our `flwr` commands
            if child.poll() is None:
                child.kill()
            child.wait()
        if self._watcher is not None:
            self._watcher.join()
        if self._superlink is not None:
            self._stop_tree(self._superlink)
            self._superlink = None
        if self._reaper is not None:  # it exits once the SuperLink has stopped; no waiting
            if self._reaper.poll() is None:
                self._reaper.kill()
            self._reaper.wait()
            self._reaper = None
        if self._own_ray_tmp:
            shutil.rmtree(self.ray_tmp, ignore_errors=True)

    def _stop_tree(self, link: subprocess.Popen[bytes]) -> None:
        if link.poll() is None:
            self._seen.update(_tree(link.pid))
            link.terminate()
            try:
                link.wait(STOP_GRACE)
            except subprocess.TimeoutExpired:
                link.kill()
                link.wait()
        for pid, start in self._seen.items():  # SuperExec, flwr-simulation, Ray's processes
            if pid != link.pid and _alive(pid, start):
                with contextlib.suppress(OSError):  # it ended meanwhile
                    os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + STOP_GRACE
        while self.leftovers() and time.monotonic() < deadline:
            time.sleep(0.05)

    def leftovers(self) -> list[int]:
        """The recorded processes still running (none once :meth:`close` has returned)."""
        return [pid for pid, start in self._seen.items() if _alive(pid, start)]

    # -- runs ----------------------------------------------------------------------------------
    def flwr(self, *args: str) -> subprocess.Popen[str]:
        """Start ``flwr ARGS`` against this SuperLink (its output piped, text)."""
        proc = subprocess.Popen([venv_bin("flwr"), *args], env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, start_new_session=True)
        self._children.append(proc)
        return proc

    def run(
        self,
        app: Path,
        federation_config: Mapping[str, Any],
        *,
        poll: Callable[[], bool] | None = None,
    ) -> FlwrRun:
        """``flwr run APP threedgl --federation-config ... --stream`` until the run ends, or
        until ``poll()`` (called every 0.2 s meanwhile) returns ``True``: the caller has
        what it waited for, and :meth:`close` stops the rest (``returncode`` is then
        ``None``)."""
        settings = " ".join(f"{k}={_toml(v)}" for k, v in federation_config.items())
        proc = self.flwr("run", str(app), CONNECTION, "--federation-config", settings,
                         "--stream")
        lines: deque[str] = deque(maxlen=400)
        run_id: list[int] = []

        def read() -> None:
            assert proc.stdout is not None
            for line in proc.stdout:
                lines.append(line.rstrip("\n"))
                if not run_id and (found := run_id_of(line)) is not None:
                    run_id.append(found)

        reader = threading.Thread(target=read, daemon=True)
        reader.start()
        while proc.poll() is None:
            if poll is not None and poll():
                return FlwrRun(None, run_id[0] if run_id else None, list(lines))
            time.sleep(0.2)
        reader.join()
        if poll is not None:
            poll()
        return FlwrRun(proc.returncode, run_id[0] if run_id else None, list(lines))

    def status(self, run_id: int) -> dict[str, Any]:
        """The run as ``flwr ls --run-id RUN_ID --format json`` lists it (``status``,
        ``status-details``, ...); ``{}`` when it cannot be read."""
        return run_status(run_id, CONNECTION, env=self.env)


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    return json.dumps(str(value))
