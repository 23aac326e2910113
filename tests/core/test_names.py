"""The name check (issue 13, item 5): ``names_match`` on real-looking Indonesian names, and
properties: a name always matches itself; case, spacing and punctuation never break a strict
match."""

from __future__ import annotations

import dataclasses
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from doku_async import NameCheck, names_match
from doku_async._names import NAME_CHECK_MODES, normalize_name

# (expected, registered by the bank, strict ok, lenient ok)
CASES: list[tuple[str, str, bool, bool]] = [
    # The same person, written differently.
    ("Bpk. Budi Santoso, S.E.", "BUDI SANTOSO", True, True),
    ("Budi Santoso", "BUDI SANTOSO", True, True),
    ("  budi   santoso ", "BUDI SANTOSO", True, True),
    ("Ibu Siti Aminah", "SITI AMINAH", True, True),
    ("Hj. Siti Aminah, S.Pd.", "SITI AMINAH", True, True),
    ("Sdr. Andi Wijaya", "ANDI WIJAYA", True, True),
    ("Dr. Ir. Bambang Sutrisno, M.M.", "BAMBANG SUTRISNO", True, True),
    ("Drs. H. Agus Salim, M.Si", "AGUS SALIM", True, True),
    ("Ny. Dewi Kartika S.H., M.Kn.", "DEWI KARTIKA", True, True),
    ("Tn. Hendra Gunawan, S.Kom", "HENDRA GUNAWAN", True, True),
    ("Nn. Putri Ayu", "PUTRI AYU", True, True),
    ("Rudi Hartono S.T.", "RUDI HARTONO", True, True),
    ("M. Rizky", "MUHAMMAD RIZKY", True, True),
    ("Muhammad Rizky", "M. RIZKY", True, True),
    ("Moch. Iqbal Ramadhan", "MUHAMMAD IQBAL RAMADHAN", True, True),
    ("Mochamad Fauzi", "MOHAMMAD FAUZI", True, True),
    ("Muh. Arif", "MUHAMAD ARIF", True, True),
    ("Abd. Rahman Hakim", "ABDUL RAHMAN HAKIM", True, True),
    ("Achmad Yani", "AHMAD YANI", True, True),
    ("Siti Nurhaliza bt. Ahmad", "SITI NURHALIZA BINTI AHMAD", True, True),
    ("Ma'ruf Amin", "MARUF AMIN", True, True),
    ("Nur-Aini Lestari", "NUR AINI LESTARI", True, True),
    ("José Ramos", "JOSE RAMOS", True, True),
    ("Suhut", "SUHUT", True, True),  # a single name (DOKU's own sample)
    ("PT Maju Jaya Abadi Tbk", "MAJU JAYA ABADI", True, True),
    ("CV. Sumber Rejeki", "SUMBER REJEKI", True, True),
    ("Koperasi Karya Mandiri", "KARYA MANDIRI", True, True),
    ("UD Sinar Terang", "SINAR TERANG", True, True),
    # Another order: lenient only.
    ("Santoso Budi", "BUDI SANTOSO", False, True),
    # The bank cut a long name short.
    ("Muhammad Abdurrahman Wahyudi", "MUHAMMAD ABDURRAHMAN WAHY", False, True),
    ("Raden Ajeng Kartini Sosroningrat", "RADEN AJENG KARTINI SOSRONI", False, True),
    ("Muhammad Abdurrahman Wahyudi Pratama", "MUHAMMAD ABDURRAHMAN WAHY", False, True),
    # The bank keeps fewer (or more) names: a subset with two or more in common.
    ("Dewi Lestari Wulandari", "DEWI LESTARI", False, True),
    ("Dewi Lestari", "DEWI LESTARI WULANDARI", False, True),
    ("I Gusti Ngurah Rai", "I GUSTI NGURAH", False, True),
    # Different people.
    ("Siti Rahma", "SITI AMINAH", False, False),
    ("Budi Santoso", "BUDI", False, False),  # one given name is never enough
    ("Budi", "BUDI SANTOSO", False, False),
    ("Budi Santoso", "BUDI SUSANTO", False, False),
    ("Agus Setiawan", "AGUS SALIM", False, False),
    ("Siti Aminah Rahma", "SITI AMINAH PUTRI", False, False),  # a third name differs
    ("Rina Wati", "ANDI WIJAYA", False, False),
    ("Muhammad Rizky", "MUHAMMAD FAUZI", False, False),
    ("Muhammad Abdurrahman Wahyudi", "MUHAMMAD ABDURRAHMAN WIRA", False, False),
    ("Budi Santoso", "", False, False),
    ("...", "BUDI", False, False),
]


@pytest.mark.parametrize(("expected", "registered", "strict", "lenient"), CASES)
def test_name_table(expected: str, registered: str, strict: bool, lenient: bool) -> None:
    assert names_match(expected, registered, "strict").ok is strict
    assert names_match(expected, registered, "lenient").ok is lenient
    assert names_match(expected, registered).ok is lenient  # lenient is the default
    assert names_match(expected, registered, "off").ok is True


def test_result_carries_mode_names_and_reason() -> None:
    check = names_match("Bpk. Budi Santoso, S.E.", "BUDI SANTOSO")
    assert check == NameCheck(
        ok=True,
        mode="lenient",
        expected="Bpk. Budi Santoso, S.E.",
        registered="BUDI SANTOSO",
        reason="same names",
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        check.ok = False  # type: ignore[misc]
    assert names_match("Siti Rahma", "SITI AMINAH").reason == "only 1 name in common"
    assert (
        "cut short"
        in names_match("Muhammad Abdurrahman Wahyudi", "MUHAMMAD ABDURRAHMAN WAHY").reason
    )
    assert names_match("A", "B", "off").reason == "name check is off"
    assert names_match("", "", "strict").reason == "no name to compare"


def test_bad_mode_and_types() -> None:
    with pytest.raises(ValueError, match="mode"):
        names_match("a", "a", "fuzzy")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        names_match(None, "a")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("name", "words"),
    [
        ("Bpk. H. Moch. Budi Santoso, S.E., M.M.", ("muhammad", "budi", "santoso")),
        ("Ibu", ("ibu",)),  # never every word dropped
        ("PT", ("pt",)),
        ("M.Rizky", ("muhammad", "rizky")),
        ("S.E.", ("se",)),
        ("Budi (Santoso)", ("budi", "santoso")),
        ("", ()),
        ("-.,", ()),
    ],
)
def test_normalize_name(name: str, words: tuple[str, ...]) -> None:
    assert normalize_name(name) == words


# ---------------------------------------------------------------------------- properties

WORD = st.text(string.ascii_letters, min_size=1, max_size=12)
NAME_WORDS = st.lists(WORD, min_size=1, max_size=6)


@st.composite
def restyled(draw: st.DrawFn, words: list[str]) -> str:
    """``words`` written differently: case, spacing, punctuation between and inside words."""
    out: list[str] = []
    for word in words:
        letters = [c.upper() if draw(st.booleans()) else c.lower() for c in word]
        if len(letters) > 1 and draw(st.booleans()):  # an apostrophe inside: Ma'ruf
            at = draw(st.integers(1, len(letters) - 1))
            letters.insert(at, "'")
        out.append("".join(letters) + draw(st.sampled_from(["", ".", ",", "'"])))
    glue = st.sampled_from([" ", "  ", " - ", ", ", ". ", "\t", "-", " / "])
    text = out[0]
    for word in out[1:]:
        text += draw(glue) + word
    return draw(st.sampled_from(["", " ", "\t"])) + text + draw(st.sampled_from(["", " ", "."]))


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(words=NAME_WORDS, data=st.data())
def test_a_name_matches_itself_in_every_mode(words: list[str], data: st.DataObject) -> None:
    name = data.draw(restyled(words))
    for mode in NAME_CHECK_MODES:
        assert names_match(name, name, mode).ok, (name, mode)


@settings(max_examples=300, deadline=None, derandomize=True, database=None)
@given(words=NAME_WORDS, data=st.data())
def test_case_spacing_and_punctuation_never_break_a_strict_match(
    words: list[str], data: st.DataObject
) -> None:
    plain = " ".join(words)
    styled = data.draw(restyled(words))
    assert normalize_name(styled) == normalize_name(plain), (plain, styled)
    assert names_match(plain, styled, "strict").ok, (plain, styled)
    assert names_match(styled.upper(), plain, "strict").ok, (plain, styled)
    assert names_match(plain, styled, "lenient").ok, (plain, styled)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(words=st.lists(WORD, min_size=2, max_size=6, unique_by=str.casefold))
def test_one_shared_word_is_never_enough(words: list[str]) -> None:
    first, rest = words[0], words[1:]
    expected = " ".join([first, *rest])
    for mode in ("strict", "lenient"):
        check = names_match(expected, first, mode)
        if set(normalize_name(expected)) != set(normalize_name(first)):
            assert not check.ok, (expected, first, mode)


@pytest.mark.parametrize("name", [":", "...", "-", " , "])
@pytest.mark.parametrize("mode", ["strict", "lenient"])
def test_a_name_without_name_words_matches_only_itself(name: str, mode: str) -> None:
    """Found by the hostile-client suite: an account name of punctuation only, echoed by the
    bank, must match itself (and nothing else)."""
    assert names_match(name, name.upper(), mode).ok  # type: ignore[arg-type]
    assert not names_match(name, "BUDI", mode).ok  # type: ignore[arg-type]
