"""Issue 13: the bulk runner's guards before any transfer: the account holder's name from
the inquiry against the file's name, and bank codes from the table."""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest
from helpers import no_sleep

from doku_async import BankCodes, Clocks, RetryPolicy
from doku_async.bulk import BulkRunner, ItemResult, Journal, PayoutItem, payout_item
from doku_async.testing import DokuSimulator, SimulatorCredentials

CUSTOMER = "628115678890"


def item(ref: str, *, account: str, name: str, bank: str = "014") -> PayoutItem:
    return payout_item(
        reference=ref, bank_code=bank, account_number=account, account_name=name, amount="50000"
    )


async def run(
    sim: DokuSimulator, items: list[PayoutItem], tmp_path: Path, **options: object
) -> list[ItemResult]:
    results: list[ItemResult] = []
    async with (
        asyncio.timeout(20),
        sim.client(retry=RetryPolicy(jitter=False), clocks=Clocks(sleep=no_sleep)) as doku,
    ):
        runner = BulkRunner(
            doku,
            customer_number=CUSTOMER,
            journal=Journal(tmp_path / "run.db"),
            **options,  # type: ignore[arg-type]
        )
        await runner.run(items, on_result=results.append)
    return results


async def test_a_name_mismatch_fails_the_item_before_any_transfer(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    """The simulator's accounts ending in 99999 are registered to someone else."""
    async with DokuSimulator(credentials=creds) as sim:
        results = await run(
            sim,
            [
                item("NC-OK", account="8007654321", name="Bpk. Budi Santoso, S.E."),
                item("NC-WRONG", account="8000099999", name="Rina Wulandari"),
            ],
            tmp_path,
        )
        by_ref = {r.reference: r for r in results}
        assert by_ref["NC-OK"].status == "succeeded"
        wrong = by_ref["NC-WRONG"]
        assert wrong.status == "failed"
        assert wrong.code == "name_mismatch"
        assert "BUDI SANTOSO" in wrong.message
        assert "Rina Wulandari" in wrong.message
        assert sim.transfer_count("NC-WRONG") == 0
        assert not [r for r in sim.requests_for("transfer_bank") if b"NC-WRONG" in r.body]


@pytest.mark.parametrize(("mode", "paid"), [("strict", False), ("lenient", True), ("off", True)])
async def test_name_check_modes(
    creds: SimulatorCredentials, tmp_path: Path, mode: str, paid: bool
) -> None:
    """A name the bank cut short: lenient and off pay it, strict does not."""
    registered = {"8007777777": "MUHAMMAD ABDURRAHMAN WAHY"}
    async with DokuSimulator(credentials=creds, registered_names=registered) as sim:
        results = await run(
            sim,
            [item("NC-TRUNC", account="8007777777", name="Muhammad Abdurrahman Wahyudi")],
            tmp_path,
            name_check=mode,
        )
        assert (results[0].status == "succeeded") is paid, results[0]
        assert sim.transfer_count("NC-TRUNC") == (1 if paid else 0)


def test_an_unknown_bank_code_is_refused_before_any_io() -> None:
    for code in ("999", "99", "0140"):
        with pytest.raises(Exception, match="bank code") as info:
            payout_item(
                reference="B-1", bank_code=code, account_number="1", account_name="A", amount=1
            )
        assert code in str(info.value)


async def test_the_runner_refuses_an_unknown_bank_code_and_sends_nothing(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    """An item built without ``payout_item`` (or with another table) is checked again by the
    runner against its client's table: nothing is sent for it."""
    bad = PayoutItem(
        reference="BANK-999",
        bank_code="999",
        account_number="8007654321",
        account_name="Budi",
        amount=Decimal("50000"),
    )
    async with DokuSimulator(credentials=creds) as sim:
        results = await run(sim, [bad], tmp_path)
        assert results[0].status == "failed"
        assert "999" in results[0].message
        assert sim.requests_for("account_inquiry") == []
        assert sim.requests_for("transfer_bank") == []


async def test_a_code_added_to_the_clients_table_is_accepted(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    codes = BankCodes.default().with_extra({"999": "Test bank"})
    item_999 = payout_item(
        reference="BANK-EXTRA",
        bank_code="999",
        account_number="8007654321",
        account_name="Budi",
        amount="50000",
        bank_codes=codes,
    )
    async with DokuSimulator(credentials=creds, bank_codes=codes) as sim:
        results: list[ItemResult] = []
        async with (
            asyncio.timeout(20),
            sim.client(retry=RetryPolicy(jitter=False), clocks=Clocks(sleep=no_sleep)) as doku,
        ):
            assert doku.bank_codes.name_of("999") == "Test bank"
            await BulkRunner(doku, customer_number=CUSTOMER).run(
                [item_999], on_result=results.append
            )
        assert results[0].status == "succeeded"


async def test_results_carry_the_bank_name_from_the_table(
    creds: SimulatorCredentials, tmp_path: Path
) -> None:
    async with DokuSimulator(credentials=creds) as sim:
        results = await run(
            sim, [item("BN-1", account="8007654321", name="Budi", bank="014")], tmp_path
        )
    assert (results[0].bank_code, results[0].bank_name) == (
        "014",
        BankCodes.default().name_of("014"),
    )
    assert results[0].bank_name
