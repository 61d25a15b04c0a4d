"""The README's shell blocks run as pasted.

A block marked ``<!-- readme-test: NAME -->`` on the line before its fence is run by bash
in an empty directory, with this environment's ``3dgl`` and ``python`` first on PATH
(what an activated virtualenv gives), a fresh HOME, and the port 8000 replaced by a free
one (the only change to the text). The process group is killed afterwards, so a server
the block left running does not outlive the test.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from tests.server_fixtures import free_port

README = Path(__file__).resolve().parent.parent / "README.md"
BLOCK = re.compile(r"<!-- readme-test: ([\w-]+) -->\n```bash\n(.*?)```", re.S)


def readme_blocks() -> dict[str, str]:
    return {m.group(1): m.group(2) for m in BLOCK.finditer(README.read_text(encoding="utf-8"))}


def run_block(text: str, cwd: Path, port: int) -> subprocess.CompletedProcess[str]:
    bin_dir = str(Path(sys.executable).parent)
    env = {k: v for k, v in os.environ.items() if not k.startswith("THREEDGL_")}
    env.update(PATH=bin_dir + os.pathsep + env.get("PATH", ""), HOME=str(cwd / "home"),
               COLUMNS="100")
    (cwd / "home").mkdir()
    (cwd / "block.sh").write_text(text.replace("8000", str(port)), encoding="utf-8")
    proc = subprocess.Popen(["bash", "block.sh"], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=240)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def test_the_marked_blocks_exist() -> None:
    assert set(readme_blocks()) >= {"federation"}


def test_the_federation_block_runs_as_pasted(tmp_path: Path) -> None:
    port = free_port()
    result = run_block(readme_blocks()["federation"], tmp_path, port)
    log = (tmp_path / "server.log").read_text(encoding="utf-8")
    assert result.returncode == 0, result.stderr + log
    assert f"threedgl server ready on http://127.0.0.1:{port}" in log
    assert "No such file" not in result.stderr  # the wait does not race the log's creation
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    # the one refusal the block shows on purpose: the pool before contributing
    assert len(errors) == 1 and "contribut" in errors[0], result.stderr
    assert "accepted: 'clinic-a' version 1" in " ".join(result.stdout.split())
    assert len(list((tmp_path / "pool").glob("*.3dgl"))) == 1
    rows = (tmp_path / "synthetic.csv").read_text(encoding="utf-8").splitlines()
    assert len(rows) == 5001 and rows[0].split(",")[-1] == "survived"
