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
    # One missing value is one error (issue 15 follow-up: it was three, one per moved value).
    errors = errors_of(HEADER + "R-1,014,Budi,1000,remark\n")
    assert errors == [
        "line 2: the row has 5 field(s), the header 6: a value may be missing (the ones after "
        "it moved one column left; account_number: may contain only digits 0-9)"
    ]


def test_a_row_without_the_optional_last_remark_is_still_read() -> None:
    items, total = parse_payouts(io.StringIO(HEADER + "R-1,014,8377388292,Budi,1000\n"))
    assert [(i.reference, i.remark, str(i.amount)) for i in items] == [("R-1", None, "1000.00")]
    assert str(total) == "1000.00"


def test_a_missing_name_is_one_error_not_three() -> None:
    # account_name left out: the amount moved into it and the remark into the amount. Before
    # the fix: "is not a number", "write plain digits, not exponent notation" (the 'e' of
    # "October") and the note about a missing value.
    errors = errors_of(HEADER + "R-1,014,8377388292,150000,October\n")
    assert len(errors) == 1, errors
    assert errors[0].startswith("line 2: the row has 5 field(s), the header 6: a value may be")
    assert "exponent" not in errors[0]


@pytest.mark.parametrize("amount", ["October", "free", "e", "12e"])
def test_words_with_an_e_get_no_exponent_hint(amount: str) -> None:
    errors = errors_of(HEADER + f"R-1,014,8377388292,Budi,{amount},\n")
    assert errors == ["line 2: amount: is not a number"]


@pytest.mark.parametrize("amount", ["1.5E+06", "1e3", "2.5e-1", "3E6"])
def test_exponent_notation_gets_the_exponent_hint(amount: str) -> None:
    errors = errors_of(HEADER + f"R-1,014,8377388292,Budi,{amount},\n")
    assert "line 2: amount: write plain digits, not exponent notation" in errors[-1]
    assert not any("thousands" in e for e in errors)


@pytest.mark.parametrize("amount", ["200,000", "1,500,000.00", "1.500.000", "200.000", "1.500,50"])
def test_thousands_separators_get_a_hint_and_are_refused(amount: str) -> None:
    # "200.000" (Indonesian grouping for 200000) would otherwise be read as IDR 200.00.
    errors = errors_of(HEADER + f'R-1,014,8377388292,Budi,"{amount}",\n')
    assert errors == [
        f"line 2: amount: {amount!r} has thousands separators: write plain digits with an "
        "optional .00 (e.g. 200000 or 200000.00)"
    ]


@pytest.mark.parametrize(
    ("amount", "expected"),
    [("200000", "200000.00"), ("200000.00", "200000.00"), ("1500.5", "1500.50"),
     ("1500.000", "1500.00")],
)  # fmt: skip
def test_plain_amounts_are_read(amount: str, expected: str) -> None:
    items, _ = parse_payouts(io.StringIO(HEADER + f"R-1,014,8377388292,Budi,{amount},\n"))
    assert str(items[0].amount) == expected
