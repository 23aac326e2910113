"""The README's examples run exactly as written (issue 15).

* The Quickstart and the Non-SNAP example, as scripts, against ``python -m doku_async.testing``
  with the ``export`` lines it prints pasted into the environment.
* The pytest examples (``conftest.py``, ``test_payroll.py`` and the webhook receiver's
  ``test_webhooks.py`` with the ``doku_webhook_target`` fixture), copied into an empty folder
  with no pytest configuration, run by pytest there.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text(encoding="utf-8")
EXPORT = re.compile(r"^\s*export (DOKU_[A-Z_]+)=(\S+)\s*$")


def _section(title: str) -> str:
    start = README.index(f"\n## {title}")
    end = README.find("\n## ", start + 1)
    return README[start : end if end != -1 else len(README)]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)


def _clean_env(**extra: str) -> dict[str, str]:
    """The environment of a user's shell: no DOKU_* or pytest settings of ours."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DOKU_", "PYTEST_", "COV_"))}
    env["PYTHONPATH"] = str(ROOT)  # this checkout's doku_async, wherever the test runs
    env.update(extra)
    return env


async def _run(*args: str, cwd: Path, env: dict[str, str]) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return proc.returncode, out.decode(errors="replace")


@pytest.fixture
async def standalone_simulator(tmp_path: Path) -> AsyncIterator[dict[str, str]]:
    """``python -m doku_async.testing`` in its own process; the ``export`` lines it prints."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "doku_async.testing",
        cwd=tmp_path,
        env=_clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdout is not None
    exports: dict[str, str] = {}
    try:
        async with asyncio.timeout(30):
            while "DOKU_AGENT_KEY" not in exports:
                line = (await proc.stdout.readline()).decode()
                assert line, "the simulator exited before printing its export lines"
                match = EXPORT.match(line)
                if match:
                    exports[match.group(1)] = match.group(2)
        yield exports
    finally:
        proc.terminate()
        await proc.wait()


async def test_quickstart_and_non_snap_examples_run_as_written(
    standalone_simulator: dict[str, str], tmp_path: Path
) -> None:
    quickstart = _python_blocks(_section("Quickstart"))[0]
    non_snap = _python_blocks(_section("Payout Link, Transfers and RDL (Non-SNAP)"))[0]
    env = _clean_env(**standalone_simulator)
    for name, source in (("quickstart.py", quickstart), ("non_snap.py", non_snap)):
        (tmp_path / name).write_text(source, encoding="utf-8")

    code, out = await _run(sys.executable, "quickstart.py", cwd=tmp_path, env=env)
    assert code == 0, out
    assert re.search(r"^available: \d", out, flags=re.MULTILINE), out
    assert re.search(r"^succeeded DK\d+$", out, flags=re.MULTILINE), out
    assert re.search(r"^00 success$", out, flags=re.MULTILINE), out

    code, out = await _run(sys.executable, "non_snap.py", cwd=tmp_path, env=env)
    assert code == 0, out
    assert re.search(r"^False False$", out, flags=re.MULTILINE), out  # first payments


async def test_pytest_example_runs_in_a_fresh_project(tmp_path: Path) -> None:
    blocks = _python_blocks(_section("Testing your own code: the simulator"))
    files = {}
    for block in blocks:
        first = block.splitlines()[0]
        if re.fullmatch(r"# \w+\.py", first):
            files[first[2:]] = block
    assert set(files) == {"conftest.py", "test_payroll.py", "test_webhooks.py"}
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    assert not any((tmp_path / n).exists() for n in ("pytest.ini", "pyproject.toml", "tox.ini"))

    code, out = await _run(
        sys.executable,
        "-m",
        "pytest",
        "-p",
        "no:cacheprovider",
        cwd=tmp_path,
        env=_clean_env(),
    )
    assert code == 0, out
    assert re.search(r"\b2 passed\b", out), out
    # The user's project: its own rootdir, pytest-asyncio in its default strict mode (not the
    # asyncio_mode = "auto" of our own pyproject.toml).
    assert f"rootdir: {tmp_path}" in out, out
    assert "asyncio: mode=Mode.STRICT" in out, out
