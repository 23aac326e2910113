"""Everything checked before anything is sent, and before the journal is created (issue 15):
``payouts validate``, ``payouts run --dry-run``, the ``--max-amount``/``--max-total`` caps, runs
refused for their configuration, and ``--version``.

Each CLI process pays through a ``DokuSimulator`` in the test's loop; its request log shows what
reached "DOKU" (no transfer, and for a refused run usually no request at all)."""

from __future__ import annotations

import argparse
from decimal import Decimal
from pathlib import Path

import pytest
from cli_process import base_env, cli, sim_env

from doku_async import __version__
from doku_async.cli import main
from doku_async.cli._caps import parse_cap
from doku_async.testing import DokuSimulator, SimulatorCredentials

HEADER = "reference,bank_code,account_number,account_name,amount,remark\n"


def write_csv(path: Path, amounts: list[str], prefix: str = "PRE") -> Path:
    path.write_text(
        HEADER
        + "".join(
            f"{prefix}-{i:03d},014,{5_000_000_000 + i * 7919},Driver {i},{amount},\n"
            for i, amount in enumerate(amounts)
        ),
        encoding="utf-8",
    )
    return path


def operations(sim: DokuSimulator) -> list[str]:
    return [r.operation for r in sim.requests]


def files_in(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def journal_files(directory: Path) -> list[str]:
    """The journal and its side files (``-wal``, ``-shm``, ``.lock``), if any were created."""
    return sorted(p.name for p in directory.iterdir() if p.name.startswith("run.db"))


# ------------------------------------------------------------------------------- --version


def test_version_prints_the_package_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"doku-async {__version__}"


# -------------------------------------------------------------------------- the caps' parser


@pytest.mark.parametrize(
    ("text", "expected"),
    [("5000000", "5000000.00"), ("5000000.5", "5000000.50"), (" 150000.00 ", "150000.00")],
)
def test_a_cap_is_an_idr_amount_as_doku_writes_it(text: str, expected: str) -> None:
    assert parse_cap(text) == Decimal(expected)
    assert str(parse_cap(text)) == expected


@pytest.mark.parametrize(
    "text", ["-1", "+5", "0", "0.00", "1e6", "1,000,000", "1.000.000", "nan", "inf", "1.234", ""]
)
def test_a_cap_that_is_not_a_plain_positive_amount_is_refused(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as caught:
        parse_cap(text)
    assert repr(text) in str(caught.value)


def test_a_garbage_cap_stops_the_command_line_before_anything(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["1000"])
    with pytest.raises(SystemExit) as exited:
        main(["payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
              "--max-total=-5"])  # fmt: skip
    assert exited.value.code == 2
    assert "argument --max-total: '-5' is not an IDR amount" in capsys.readouterr().err
    assert journal_files(tmp_path) == []


# ------------------------------------------------------------------------------- validate


async def test_validate_checks_everything_and_sends_no_transfer(
    sim: DokuSimulator, tmp_path: Path, creds: SimulatorCredentials
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["150000.00", "99000", "1000000.50"])
    env = sim_env(sim, tmp_path, DOKU_AGENT_KEY=creds.agent_key)
    result = await cli(
        "payouts", "validate", str(csv_path), "--max-amount", "2000000", "--max-total",
        "1249000.50", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result
    out = result.stdout
    assert "ok: file: 3 payout(s), IDR 1,249,000.50 in total; every row valid" in out
    assert "ok: caps: every amount <= IDR 2,000,000.00, total <= IDR 1,249,000.50" in out
    assert f"ok: configuration: DOKU_* variables read; DOKU at {sim.base_url}" in out
    assert "ok: credentials: DOKU issued a token" in out
    assert f"ok: balance: IDR {sim.balance():,} available covers IDR 1,249,000.50" in out
    assert "ready: a run would send 3 payout(s)" in out
    assert operations(sim) == ["token", "balance_inquiry"]  # no inquiry, no transfer
    assert sim.transfers == {}
    assert creds.client_secret not in out + result.stderr
    assert creds.agent_key not in out + result.stderr
    assert files_in(tmp_path) == ["p.csv"]  # nothing created


async def test_validate_lists_every_problem_with_its_row_and_sends_nothing(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(
        HEADER + "R-1,014,8377388292,Budi,1000,\n"
        "R-2,999,8377388292,Sari,1000,\n"  # an unknown bank code
        "R-3,014,8377388292,Dewi\n"  # a missing column
        "R-4,014,83773x8292,Ani,-5,\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in sim_env(sim, tmp_path).items() if k != "DOKU_CUSTOMER_NUMBER"}
    result = await cli("payouts", "validate", str(bad), env=env, cwd=tmp_path)
    assert result.returncode == 4, result
    out = result.stdout
    for expected in (
        "line 3: bank_code:",
        "line 4: missing column(s) amount",
        "line 5: account_number: may contain only digits 0-9",
        "line 5: amount:",
        "configuration error: set --customer-number or DOKU_CUSTOMER_NUMBER",
        "balance: not checked (the file has errors)",
        "not ready: fix the problems above",
    ):
        assert expected in out, out
    assert "ok: credentials: DOKU issued a token" in out  # still checked
    assert set(operations(sim)) == {"token"}
    assert "Traceback" not in result.stderr


async def test_validate_refuses_a_balance_that_does_not_cover_the_file(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    async with DokuSimulator(credentials=creds, balance="200000.00") as sim:
        csv_path = write_csv(tmp_path / "p.csv", ["150000", "150000"])
        env = sim_env(sim, tmp_path, DOKU_AGENT_KEY=creds.agent_key)
        result = await cli("payouts", "validate", str(csv_path), env=env, cwd=tmp_path)
        assert result.returncode == 4, result
        assert (
            "refused: the balance IDR 200,000.00 does not cover the IDR 300,000.00 still to pay"
        ) in result.stdout
        assert operations(sim) == ["token", "balance_inquiry"]
        assert sim.balance() == Decimal("200000.00")


async def test_validate_needs_the_agent_key_for_the_balance_unless_skipped(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["1000"])
    env = sim_env(sim, tmp_path)  # no DOKU_AGENT_KEY
    result = await cli("payouts", "validate", str(csv_path), env=env, cwd=tmp_path)
    assert result.returncode == 5, result
    assert "balance: not checked: set DOKU_AGENT_KEY or --agent-key" in result.stdout
    skipped = await cli(
        "payouts", "validate", str(csv_path), "--skip-balance", env=env, cwd=tmp_path
    )
    assert skipped.returncode == 0, skipped
    assert "balance: not checked (--skip-balance)" in skipped.stdout
    assert set(operations(sim)) == {"token"}


async def test_validate_reports_credentials_doku_rejects(
    sim: DokuSimulator, tmp_path: Path, creds: SimulatorCredentials
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["1000"])
    # An unknown client id: the token request is refused.
    env = sim_env(sim, tmp_path, DOKU_CLIENT_ID="BRN-0001-0000000000000")
    result = await cli(
        "payouts", "validate", str(csv_path), "--skip-balance", env=env, cwd=tmp_path
    )
    assert result.returncode == 5, result
    assert "configuration error:" in result.stdout
    assert "ok: credentials" not in result.stdout
    assert operations(sim) == ["token"]

    # A wrong client secret: the token is issued (it is signed with the key), the balance
    # inquiry (signed with the secret) is refused.
    env = sim_env(
        sim, tmp_path, DOKU_CLIENT_SECRET="SK-wrong-secret-0123456789",
        DOKU_AGENT_KEY=creds.agent_key,
    )  # fmt: skip
    result = await cli("payouts", "validate", str(csv_path), env=env, cwd=tmp_path)
    assert result.returncode == 5, result
    assert "configuration error:" in result.stdout
    assert "ok: balance" not in result.stdout
    assert "SK-wrong-secret-0123456789" not in result.stdout + result.stderr
    assert operations(sim) == ["token", "token", "balance_inquiry"]
    assert sim.transfers == {}


# -------------------------------------------------------------------------- run --dry-run


async def test_run_dry_run_checks_like_validate_and_creates_no_journal(
    sim: DokuSimulator, tmp_path: Path, creds: SimulatorCredentials
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["150000", "250000"])
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path, DOKU_AGENT_KEY=creds.agent_key)
    dry = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--dry-run", env=env, cwd=tmp_path
    )
    assert dry.returncode == 0, dry
    assert f"ok: journal: {db} does not exist yet" in dry.stdout
    assert "ok: balance: IDR" in dry.stdout
    assert journal_files(tmp_path) == []
    assert operations(sim) == ["token", "balance_inquiry"]

    paid = await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env, cwd=tmp_path)
    assert paid.returncode == 0, paid
    transfers = len(sim.requests_for("transfer_bank"))
    assert transfers == 2

    again = await cli(
        "payouts", "run", str(csv_path), "--journal", str(db), "--dry-run", env=env, cwd=tmp_path
    )
    assert again.returncode == 0, again
    assert f"ok: journal: {db} exists; 2 item(s) settled, 0 left (IDR 0.00)" in again.stdout
    assert "covers IDR 0.00" in again.stdout
    assert len(sim.requests_for("transfer_bank")) == transfers

    other = write_csv(tmp_path / "other.csv", ["1000"], prefix="OTHER")
    mismatch = await cli(
        "payouts", "run", str(other), "--journal", str(db), "--dry-run", env=env, cwd=tmp_path
    )
    assert mismatch.returncode == 4, mismatch
    assert f"refused: the journal {db} was planned from another file" in mismatch.stdout
    assert len(sim.requests_for("transfer_bank")) == transfers


# ------------------------------------------------------------------------------- the caps


async def test_max_amount_refuses_the_run_naming_the_rows_before_any_request(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["1000", "5000000.01", "200", "7500000"])
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
        "--max-amount", "5000000", env=sim_env(sim, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 4, result
    assert result.stderr.splitlines() == [
        "refused: 2 row(s) over --max-amount IDR 5,000,000.00:",
        "  line 3: PRE-001 IDR 5,000,000.01",
        "  line 5: PRE-003 IDR 7,500,000.00",
        "Nothing was sent. No journal was created.",
    ]
    assert sim.requests == []
    assert journal_files(tmp_path) == []


async def test_max_total_refuses_the_run_naming_the_total(
    sim: DokuSimulator, tmp_path: Path
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["600000", "400000.01"])
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
        "--max-total", "1000000", env=sim_env(sim, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 4, result
    assert (
        "refused: the file's total IDR 1,000,000.01 (2 rows) is over --max-total IDR 1,000,000.00"
    ) in result.stderr
    assert sim.requests == []
    assert journal_files(tmp_path) == []

    within = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
        "--max-total", "1000000.01", "--max-amount", "600000", env=sim_env(sim, tmp_path),
        cwd=tmp_path,
    )  # fmt: skip
    assert within.returncode == 0, within
    assert len(sim.requests_for("transfer_bank")) == 2


async def test_resume_applies_the_caps_to_the_journal(sim: DokuSimulator, tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["600000", "400000"])
    db = tmp_path / "run.db"
    env = sim_env(sim, tmp_path)
    assert (await cli("payouts", "run", str(csv_path), "--journal", str(db), env=env,
                      cwd=tmp_path)).returncode == 0  # fmt: skip
    before = len(sim.requests)
    result = await cli(
        "payouts", "resume", str(db), "--max-amount", "500000", env=env, cwd=tmp_path
    )
    assert result.returncode == 4, result
    assert "line 2: PRE-000 IDR 600,000.00" in result.stderr
    assert "Nothing was sent. The journal was not changed." in result.stderr
    assert len(sim.requests) == before


# --------------------------------------------- refused for the configuration: no journal left


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"DOKU_PRIVATE_KEY": "not a key at all"}, "configuration error:"),
        ({"DOKU_PRIVATE_KEY": ""}, "DOKU_PRIVATE_KEY_PATH"),
        ({"DOKU_CLIENT_ID": "BRN-0001-0000000000000"}, "configuration error:"),
        ({"DOKU_CUSTOMER_NUMBER": "0812-bad"}, "configuration error: customer number:"),
        ({"DOKU_CUSTOMER_NUMBER": ""}, "set --customer-number or DOKU_CUSTOMER_NUMBER"),
        ({"DOKU_BASE_URL": "http://127.0.0.1:9"}, "configuration error: cannot reach DOKU"),
    ],
    ids=["bad-key", "no-key", "rejected-client-id", "bad-customer", "no-customer", "unreachable"],
)
async def test_a_run_refused_for_its_configuration_leaves_no_journal(
    sim: DokuSimulator, tmp_path: Path, change: dict[str, str], expected: str
) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["1000", "2000"])
    env = sim_env(sim, tmp_path, **change)
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"), env=env,
        cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5, result
    assert expected in result.stderr
    assert "Nothing was sent. No journal was created." in result.stderr
    assert "Traceback" not in result.stderr
    assert journal_files(tmp_path) == []
    assert sim.transfers == {}
    assert set(operations(sim)) <= {"token"}
    assert sim.credentials.client_secret not in result.stdout + result.stderr


async def test_missing_credentials_and_bad_settings_leave_no_journal(tmp_path: Path) -> None:
    csv_path = write_csv(tmp_path / "p.csv", ["1000"])
    env = base_env(tmp_path)
    result = await cli(
        "payouts", "run", str(csv_path), "--journal", str(tmp_path / "run.db"),
        "--concurrency", "0", "--customer-number", "628115678890", env=env, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 5, result
    assert "configuration error: --concurrency must be at least 1" in result.stderr
    assert "configuration error: DOKU_CLIENT_ID is not set" in result.stderr
    assert journal_files(tmp_path) == []
