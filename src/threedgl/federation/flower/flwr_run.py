"""``flwr run`` that ends with the run's own status: ``3dgl flower-run``.

Flower 1.42's ``flwr run --stream`` streams the run's log and exits 0 however the run
ended: a run whose every client failed looks like a success to a script. :func:`flwr_run`
starts the real ``flwr run ARGS --stream``, passes its output through line by line, takes
the run id from its ``Successfully started run N`` line, and once the stream ends asks the
SuperLink for the run's final status (``flwr ls --run-id N --format json``, the same
connection). :func:`exit_code` turns that into an exit code: ``flwr``'s own when it failed,
0 when the run is ``finished:completed``, 1 when it finished otherwise (``failed``: the
ServerApp raised, e.g. "no client was evaluated"; ``stopped``) or its status cannot be read.

Only ``flwr``'s public command line is used, so this works against any SuperLink the
``flwr`` configuration names: the simulation runtime or a deployment.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threedgl.errors import ThreedglError

#: ``flwr run``'s options that take a value (the next argument, or ``--option=value``).
_VALUE_OPTIONS = frozenset({"--federation", "--run-config", "-c", "--federation-config",
                            "--format"})
_STARTED = re.compile(r"Successfully started run (\d+)")
_RUN_ID_JSON = re.compile(r'"run-id":\s*"(\d+)"')
#: How long the status may lag behind the end of the log stream (seconds).
STATUS_WAIT = 30.0


def venv_bin(name: str) -> str:
    """The command ``name`` beside this Python (a virtual environment's), else on PATH."""
    here = Path(sys.executable).parent / name
    return str(here) if here.exists() else name


def flwr_bin() -> str:
    """The ``flwr`` command (:func:`venv_bin`)."""
    return venv_bin("flwr")


def superlink_of(args: Sequence[str]) -> str | None:
    """The SUPERLINK connection named in ``flwr run [APP] [SUPERLINK] ...`` arguments
    (``None``: ``flwr``'s default connection)."""
    positional: list[str] = []
    skip = False
    for arg in args:
        if skip:
            skip = False
        elif arg == "--":
            continue
        elif arg in _VALUE_OPTIONS:
            skip = True
        elif not arg.startswith("-"):
            positional.append(arg)
    return positional[1] if len(positional) > 1 else None


def run_id_of(line: str) -> int | None:
    """The run id a line of ``flwr run`` announces (plain or ``--format json``), else None."""
    found = _STARTED.search(line) or _RUN_ID_JSON.search(line)
    return int(found.group(1)) if found else None


class FlwrInterrupted(KeyboardInterrupt):
    """Ctrl-C during :func:`flwr_run`: ``flwr`` stopped streaming; the run it started (its
    ``run_id``, when announced) goes on at the SuperLink."""

    def __init__(self, run_id: int | None) -> None:
        super().__init__(run_id)
        self.run_id = run_id


def flwr_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment ``flwr`` runs in: ``env`` (default this process's) with
    ``PYTHONUNBUFFERED=1``: ``flwr`` prints the streamed log without flushing, and a
    Python writing to a pipe holds its output back in 8 KB blocks."""
    return {**(os.environ if env is None else env), "PYTHONUNBUFFERED": "1"}


@dataclass
class FlwrOutcome:
    """How ``flwr run`` ended: ``flwr``'s exit code, the run id it announced and the run's
    entry in ``flwr ls`` (``status`` such as ``finished:failed``, ``status-details``)."""

    returncode: int
    run_id: int | None = None
    run: dict[str, Any] = field(default_factory=dict)

    @property
    def status(self) -> str:
        return str(self.run.get("status", ""))


def run_status(run_id: int, superlink: str | None, *,
               env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The run as ``flwr ls [SUPERLINK] --run-id RUN_ID --format json`` lists it; ``{}``
    when it cannot be read."""
    cmd = [flwr_bin(), "ls", *([superlink] if superlink else []), "--run-id", str(run_id),
           "--format", "json"]
    try:
        proc = subprocess.run(cmd, env=None if env is None else dict(env), capture_output=True,
                              text=True, timeout=60)
        runs = json.loads(proc.stdout).get("runs", [])
    except (OSError, ValueError, subprocess.TimeoutExpired, AttributeError):
        return {}
    return dict(runs[0]) if runs and isinstance(runs[0], dict) else {}


def final_status(run_id: int, superlink: str | None, *, env: Mapping[str, str] | None = None,
                 wait: float = STATUS_WAIT) -> dict[str, Any]:
    """The run's entry once its status is ``finished:...`` (the SuperLink marks it a moment
    after the log stream ends), or the last entry read after ``wait`` seconds."""
    deadline = time.monotonic() + wait
    run = run_status(run_id, superlink, env=env)
    while not str(run.get("status", "")).startswith("finished") and time.monotonic() < deadline:
        time.sleep(0.5)
        run = run_status(run_id, superlink, env=env)
    return run


def flwr_run(args: Sequence[str], *, env: Mapping[str, str] | None = None,
             echo: Callable[[str], None] | None = None) -> FlwrOutcome:
    """``flwr run ARGS --stream`` to its end (``--stream`` added when missing), each line
    of its output passed to ``echo`` (default: this process's stdout), then the run's final
    status. Ctrl-C reaches ``flwr`` too (one process group) and raises
    :class:`FlwrInterrupted`; the run on the SuperLink goes on, as with ``flwr run`` itself
    (``flwr stop RUN_ID`` stops it)."""
    args = list(args)
    if "--stream" not in args:
        args.append("--stream")
    write = echo or (lambda line: (sys.stdout.write(line), sys.stdout.flush()))
    try:
        proc = subprocess.Popen([flwr_bin(), "run", *args], env=flwr_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                bufsize=1)
    except OSError as exc:
        raise ThreedglError(f"cannot start 'flwr' ({exc.strerror or exc}): "
                            "pip install 'threedgl[flower]'") from None
    run_id: int | None = None
    assert proc.stdout is not None
    with proc:
        try:
            for line in proc.stdout:
                if run_id is None:  # before the line is shown: a Ctrl-C after it knows the id
                    run_id = run_id_of(line)
                write(line)
        except KeyboardInterrupt:  # from a terminal flwr got the same Ctrl-C; else pass it on
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
            raise FlwrInterrupted(run_id) from None
    outcome = FlwrOutcome(shell_status(proc.returncode), run_id)
    if proc.returncode == 0 and run_id is not None:
        outcome.run = final_status(run_id, superlink_of(args), env=env)
    return outcome


def shell_status(returncode: int) -> int:
    """A child's exit status as a shell reports it: ``128 + N`` when signal N killed it
    (``subprocess`` gives ``-N``)."""
    return 128 - returncode if returncode < 0 else returncode


def exit_code(outcome: FlwrOutcome) -> int:
    """``flwr``'s exit code when it failed; 0 for a ``finished:completed`` run; 1 otherwise."""
    if outcome.returncode != 0:
        return outcome.returncode
    return 0 if outcome.status == "finished:completed" else 1


def verdict(outcome: FlwrOutcome) -> str:
    """One line for the person who ran it: how the run ended and why."""
    if outcome.returncode != 0:
        return f"flwr run exited with code {outcome.returncode}"
    if outcome.run_id is None:
        return "flwr run announced no run id: the run's status is unknown"
    if not outcome.run:
        return f"run {outcome.run_id}: its status could not be read (flwr ls --run-id {outcome.run_id})"
    details = str(outcome.run.get("status-details") or "").strip()
    line = f"run {outcome.run_id} {outcome.status or 'has no status'}"
    if outcome.status != "finished:completed" and details:
        line += f": {' '.join(details.split())}"
    return line


__all__ = [
    "FlwrInterrupted",
    "FlwrOutcome",
    "exit_code",
    "final_status",
    "flwr_bin",
    "flwr_env",
    "flwr_run",
    "run_id_of",
    "run_status",
    "shell_status",
    "superlink_of",
    "venv_bin",
    "verdict",
]
