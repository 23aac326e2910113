"""The progress display (issue 15): rich's bar on a terminal, redrawn in place and fitted to
its width (the hand-written bar it replaces wrapped at 80 columns: 53 bar lines for 200
items); plain ``progress:`` lines when the output is not a terminal or rich cannot be imported.

The terminal is a real one: a detached tmux session of the given size on a private server
(``tmux -L``), running the CLI against the simulator in the test's loop. ``capture-pane -J``
joins wrapped lines, so a bar that wrapped shows up as a line wider than the terminal.
"""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import shutil
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
from cli_process import cli, sim_env

from doku_async.testing import DokuSimulator

TMUX = shutil.which("tmux")
ITEMS = 200
HEADER = "reference,bank_code,account_number,account_name,amount,remark\n"
BLOCK_RICH = (
    "import sys; sys.modules['rich'] = None; "  # `import rich` now raises ImportError
    "from doku_async.cli import main; raise SystemExit(main())"
)
PROGRESS = re.compile(rf"\b\d+/{ITEMS}\b")


def need_tmux() -> str:
    if TMUX is None:
        if os.environ.get("CI"):
            pytest.fail("tmux is required in CI for the terminal tests")
        pytest.skip("tmux not found: install it (apt-get install tmux) to run the terminal tests")
    return TMUX


def write_csv(path: Path) -> Path:
    path.write_text(
        HEADER
        + "".join(
            f"TTY-{i:04d},014,{5_000_000_000 + i * 7919},Driver {i},150000.00,\n"
            for i in range(ITEMS)
        ),
        encoding="utf-8",
    )
    return path


def script(sim: DokuSimulator, tmp_path: Path, command: list[str]) -> Path:
    """A shell script: the simulator's settings as ``export`` lines (the key in a file), the
    command, then its exit code on a line of its own."""
    key = tmp_path / "key.pem"
    key.write_bytes(sim.credentials.private_key_pem)
    env = sim_env(sim, tmp_path, DOKU_PRIVATE_KEY_PATH=str(key))
    del env["DOKU_PRIVATE_KEY"]
    exports = "".join(
        f"export {name}={shlex.quote(value)}\n"
        for name, value in env.items()
        if name.startswith("DOKU_") or name in ("PYTHONDONTWRITEBYTECODE", "TMPDIR")
    )
    path = tmp_path / "run.sh"
    path.write_text(
        f"{exports}cd {shlex.quote(str(tmp_path))}\n{shlex.join(command)}\necho __EXIT=$?\n",
        encoding="utf-8",
    )
    return path


async def tmux(sockets: str, server: str, *args: str) -> str:
    """``tmux -L SERVER ARGS`` with its socket under ``sockets`` (removed by the caller)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("TMUX")}
    env["TMUX_TMPDIR"] = sockets
    proc = await asyncio.create_subprocess_exec(
        need_tmux(),
        "-L",
        server,
        "-f",
        os.devnull,
        *args,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=env,
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == 0, (args, err.decode())
    return out.decode()


async def run_in_terminal(
    sim: DokuSimulator, tmp_path: Path, width: int, python_args: list[str]
) -> list[str]:
    """Run ``python PYTHON_ARGS payouts run ...`` (200 rows) in a ``width`` x 24 terminal;
    the terminal's whole history afterwards, wrapped lines joined."""
    need_tmux()
    csv_path = write_csv(tmp_path / "p.csv")
    command = [
        sys.executable, *python_args, "payouts", "run", str(csv_path),
        "--journal", str(tmp_path / "run.db"), "--concurrency", "4", "--rate", "300",
    ]  # fmt: skip
    run = script(sim, tmp_path, command)
    server = f"doku-cli-test-{uuid.uuid4().hex[:12]}"
    sockets = tempfile.mkdtemp(prefix="dkt-")  # short: a socket path has a length limit
    try:
        await tmux(
            sockets, server, "new-session", "-d", "-x", str(width), "-y", "24", "-s", "cli",
            f"sh {shlex.quote(str(run))}; sleep 600",
        )  # fmt: skip
        screen = ""
        async with asyncio.timeout(60):
            while "__EXIT=" not in screen:
                await asyncio.sleep(0.2)
                screen = await tmux(
                    sockets, server, "capture-pane", "-p", "-J", "-S", "-", "-t", "cli"
                )
    finally:
        try:
            await tmux(sockets, server, "kill-server")
        finally:
            shutil.rmtree(sockets, ignore_errors=True)
    return [line.rstrip() for line in screen.splitlines()]


@pytest.mark.parametrize("width", [80, 200])
async def test_the_rich_bar_fits_the_terminal_and_the_summary_follows(
    sim: DokuSimulator, tmp_path: Path, width: int
) -> None:
    lines = await run_in_terminal(sim, tmp_path, width, ["-m", "doku_async"])
    assert "__EXIT=0" in lines, lines
    bars = [line for line in lines if PROGRESS.search(line)]
    assert bars, lines
    assert [line for line in bars if len(line) > width] == []  # never wrapped
    assert len(bars) <= 2, bars  # redrawn in place (the old bar: 53 lines at 80 columns)
    assert all("━" in line for line in bars)  # rich's bar, not plain lines
    assert f"{ITEMS}/{ITEMS}" in bars[-1]
    assert "ok 200" in bars[-1]
    assert f"journal {tmp_path / 'run.db'}: {ITEMS} items - succeeded {ITEMS} (IDR " in (
        "\n".join(lines)
    )
    assert "every payout is confirmed paid by DOKU" in lines
    assert not any(line.startswith("progress: ") for line in lines)


async def test_without_rich_a_terminal_gets_plain_lines(sim: DokuSimulator, tmp_path: Path) -> None:
    lines = await run_in_terminal(sim, tmp_path, 80, ["-c", BLOCK_RICH])
    assert "__EXIT=0" in lines, lines
    progress = [line for line in lines if line.startswith("progress: ")]
    assert progress, lines
    assert progress[-1].startswith(f"progress: {ITEMS}/{ITEMS}  ok {ITEMS}  failed 0")
    assert not any("━" in line for line in lines)
    assert "every payout is confirmed paid by DOKU" in lines


@pytest.mark.parametrize("rich", ["installed", "blocked"])
async def test_without_a_terminal_the_lines_are_plain(
    sim: DokuSimulator, tmp_path: Path, rich: str
) -> None:
    csv_path = write_csv(tmp_path / "p.csv")
    args = ["payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db")]
    env = sim_env(sim, tmp_path)
    if rich == "installed":
        result = await cli(*args, env=env, cwd=tmp_path)
    else:
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-c", BLOCK_RICH, *args, env=env, cwd=tmp_path,
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
        from cli_process import finish

        result = await finish(proc)
    assert result.returncode == 0, result
    progress = [line for line in result.stderr.splitlines() if line.startswith("progress: ")]
    assert progress, result.stderr
    assert progress[-1].startswith(f"progress: {ITEMS}/{ITEMS}  ok {ITEMS}  failed 0")
    for output in (result.stdout, result.stderr):
        assert "\r" not in output
        assert "\x1b[" not in output  # no terminal control sequences in a pipe or a log
        assert "━" not in output


def test_sdk_warnings_go_to_the_current_stderr_so_a_bar_can_redirect_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """rich's live display swaps ``sys.stderr`` for a proxy that prints above the bar: the
    CLI's log handler must write to whatever ``sys.stderr`` is when a warning comes."""
    import io
    import logging

    from doku_async.cli import _log_to_stderr

    # Without pytest's own handler on the root logger (the CLI defers to a configured one).
    monkeypatch.setattr(logging.getLogger(), "handlers", [])
    with _log_to_stderr():
        swapped = io.StringIO()
        monkeypatch.setattr(sys, "stderr", swapped)
        logging.getLogger("doku_async.bulk").warning("a warning during the run")
    assert swapped.getvalue() == "WARNING: a warning during the run\n"
