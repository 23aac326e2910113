"""A payout row that lacks a column says which column and on which row (issue 15): before,
``csv.DictReader`` filled the missing columns with nothing and the row was blamed for an
invalid amount."""

from __future__ import annotations

import io

import pytest

from doku_async.bulk import CsvInputError, parse_payouts

HEADER = "reference,bank_code,account_number,account_name,amount,remark\n"


def errors_of(text: str) -> list[str]:
    with pytest.raises(CsvInputError) as caught:
        parse_payouts(io.StringIO(text))
    return caught.value.errors


def test_a_row_without_its_amount_names_the_missing_column_and_the_row() -> None:
    errors = errors_of(HEADER + "R-1,014,8377388292,Budi,1000,ok\nR-2,014,8377388292,Sari\n")
    assert errors == [
        "line 3: missing column(s) amount: the row has 4 field(s), the header 6 "
        "(reference, bank_code, account_number, account_name, amount, remark)"
    ]
    assert not any("is not a number" in e for e in errors)


def test_a_row_with_only_two_fields_names_every_missing_required_column() -> None:
    (error,) = errors_of(HEADER + "R-1,014\n")
    assert error.startswith("line 2: missing column(s) account_number, account_name, amount:")


def test_every_short_row_is_reported_with_the_others() -> None:
    errors = errors_of(
        HEADER + "R-1,014,8377388292,Budi\nR-2,01A,8377388292,Sari,1000,\nR-3,014,8377388292\n"
    )
    assert [e.split(":")[0] for e in errors] == ["line 2", "line 3", "line 4"]
    assert "missing column(s) amount" in errors[0]
    assert "bank_code" in errors[1]
    assert "missing column(s) account_name, amount" in errors[2]


def test_a_value_missing_in_the_middle_is_pointed_out() -> None:
    # account_number left out: the values after it moved one column left.
    errors = errors_of(HEADER + "R-1,014,Budi,1000,remark\n")
    assert "line 2: account_number: may contain only digits 0-9" in errors
    assert (
        "line 2: the row has 5 field(s), the header 6: a value may be missing (the ones after "
        "it moved one column left)"
    ) in errors


def test_a_row_without_the_optional_last_remark_is_still_read() -> None:
    items, total = parse_payouts(io.StringIO(HEADER + "R-1,014,8377388292,Budi,1000\n"))
    assert [(i.reference, i.remark, str(i.amount)) for i in items] == [("R-1", None, "1000.00")]
    assert str(total) == "1000.00"
