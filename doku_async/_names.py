"""Does the name a bank has registered for an account match the name you expect?

Kirim DOKU's account inquiry answers ``beneficiaryAccountName``, the account holder's name as
the bank has it: uppercase, without titles, sometimes cut short at a fixed length. The name in
your payout list is written by people: ``"Bpk. Budi Santoso, S.E."``. :func:`names_match`
compares the two after normalising both, in one of three modes. It is pure (no I/O) and never
raises on odd text.

Normalisation, in order, of each name:

1. Unicode compatibility form, accents dropped (``José`` is ``jose``), case folded.
2. Apostrophes and backticks are removed inside words (``Ma'ruf`` is ``maruf``); every other
   character that is not a letter, digit or dot separates words (spaces, commas, hyphens,
   brackets, slashes: ``Nur-Aminah`` is ``nur aminah``).
3. Dotted words: a known title or degree written with dots stays one word (``S.E.`` is ``se``,
   ``S.Kom`` is ``skom``, ``Hj.`` is ``hj``); any other word splits at its dots
   (``M.Rizky`` is ``m rizky``).
4. Spelling variants become one word: Muhammad, Muhamad, Mohammad, Mohamad, Mohamed,
   Muhammed, Moehammad, Mochamad, Mochammad, Muchamad, Muchammad, Mokhamad, Mohd, Moh, Moch,
   Muh, Mhd and a lone ``M`` are ``muhammad``; Abdul, Abd, Abdoel are ``abdul``; Ahmad,
   Achmad, Akhmad are ``ahmad``; ``bt`` is ``binti``.
5. Honorifics and titles in front are dropped (Bpk, Bapak, Pak, Ibu, Bu, Sdr, Sdri, Saudara,
   Saudari, Tn, Tuan, Ny, Nyonya, Nn, Nona, H, Hj, Haji, Hajjah, KH, Dr, Drs, Dra, Ir, Prof,
   Mr, Mrs, Ms), as are company forms in front or at the end (PT, CV, UD, PD, Firma, Fa,
   Koperasi, Kop, Yayasan, Perum, Tbk, Persero), and academic degrees at the end (S.E., S.H.,
   S.Kom, S.T., S.Pd, S.Sos, S.Si, S.Ked, S.Farm, Apt, M.M., M.Kom, M.T., M.Si, M.Pd, MBA,
   M.Sc, Ph.D, A.Md, Lc ...). Words are never all dropped: a name made only of such words
   keeps them.

Modes:

* ``"strict"``: the normalised word sequences are equal. ``"M. RIZKY"`` matches
  ``"Muhammad Rizky"``; ``"RIZKY MUHAMMAD"`` does not.
* ``"lenient"`` (the default): the sets of normalised words are equal (any order), or one is
  a subset of the other with at least two words in common (banks drop middle and last names
  of long names). If the registered name's last word is not in the expected name but starts
  an expected word (the one in the same position, or else the only one it starts that no
  other registered word matches), it counts as that word: the bank cut the name short. A
  single shared word is never enough unless both names are that one word: ``"BUDI"`` does
  not match ``"Budi Santoso"``, but ``"SUHUT"`` matches ``"Suhut"``.
* ``"off"``: always ``ok``.

Examples::

    names_match("Bpk. Budi Santoso, S.E.", "BUDI SANTOSO").ok                       # True
    names_match("Siti Rahma", "SITI AMINAH").ok                                     # False
    names_match("Muhammad Rizky", "M. RIZKY", "strict").ok                          # True
    names_match("Muhammad Abdurrahman Wahyudi", "MUHAMMAD ABDURRAHMAN WAHY").ok     # True
    names_match("Muhammad Abdurrahman Wahyudi", "MUHAMMAD ABDURRAHMAN WAHY", "strict").ok
                                                                                    # False
    names_match("Budi Santoso", "BUDI").ok                                          # False
    names_match("Dewi Lestari Wulandari", "DEWI LESTARI").ok                        # True

A name with no words left (empty, or punctuation only) matches nothing except in ``"off"``.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["NAME_CHECK_MODES", "NameCheck", "NameCheckMode", "names_match", "normalize_name"]

NameCheckMode = Literal["strict", "lenient", "off"]
"""How closely a registered name must match: see :func:`names_match`."""

NAME_CHECK_MODES: Final[tuple[NameCheckMode, ...]] = get_args(NameCheckMode)

_TITLES: Final = frozenset(
    {
        "bpk", "bapak", "pak", "ibu", "bu", "sdr", "sdri", "sdra", "saudara", "saudari",
        "tn", "tuan", "ny", "nyonya", "nn", "nona", "h", "hj", "haji", "hajjah", "hajah",
        "kh", "dr", "drs", "dra", "ir", "prof", "mr", "mrs", "ms",
    }
)  # fmt: skip
_DEGREES: Final = frozenset(
    {
        "se", "sh", "skom", "st", "spd", "spdi", "ssos", "ssi", "sked", "sfarm", "skm",
        "skep", "sag", "sip", "sei", "shi", "ssn", "sds", "stp", "spsi", "apt", "ak",
        "mm", "mkom", "mt", "msi", "mpd", "mh", "mkes", "msc", "mba", "mag", "mhum",
        "mkn", "phd", "amd", "lc", "bsc", "ns",
    }
)  # fmt: skip
_COMPANY: Final = frozenset(
    {"pt", "cv", "ud", "pd", "firma", "fa", "koperasi", "kop", "yayasan", "perum", "tbk", "persero"}
)
_DOTTED_KEEP: Final = _TITLES | _DEGREES | _COMPANY
_ALIASES: Final[dict[str, str]] = {
    **dict.fromkeys(
        (
            "muhammad", "muhamad", "mohammad", "mohamad", "mohamed", "mohammed", "muhammed",
            "muhamed", "moehammad", "moehamad", "mochamad", "mochammad", "muchamad",
            "muchammad", "mokhamad", "mokhammad", "mukhamad", "mukhammad", "mohd", "moh",
            "moch", "much", "muh", "mhd", "m",
        ),
        "muhammad",
    ),
    **dict.fromkeys(("abdul", "abd", "abdoel"), "abdul"),
    **dict.fromkeys(("ahmad", "achmad", "akhmad"), "ahmad"),
    "bt": "binti",
}  # fmt: skip

_APOSTROPHES = re.compile(r"['`\u2018\u2019\u02bc]")
_SEPARATORS = re.compile(r"[^\w.]+|_")


@dataclass(frozen=True, slots=True)
class NameCheck:
    """The outcome of :func:`names_match`.

    Attributes:
        ok: the names match under ``mode``.
        mode: ``"strict"``, ``"lenient"`` or ``"off"``.
        expected: the name you expected, as given.
        registered: the name the bank has registered, as given.
        reason: why, in a few words (e.g. ``"same names"``, ``"only 1 name in common"``).
    """

    ok: bool
    mode: NameCheckMode
    expected: str
    registered: str
    reason: str


def _words(name: str) -> list[str]:
    if name.isascii():  # no accents to strip: NFKD leaves ASCII as it is (the usual case)
        text = name.lower()
    else:
        text = unicodedata.normalize("NFKD", name)
        text = "".join(c for c in text if not unicodedata.combining(c)).casefold()
    text = _APOSTROPHES.sub("", text)
    words: list[str] = []
    for raw in _SEPARATORS.split(text):
        key = raw.replace(".", "")
        if not key:
            continue
        if key in _DOTTED_KEEP:
            words.append(key)
        else:
            words.extend(part for part in raw.split(".") if part)
    return words


def normalize_name(name: str) -> tuple[str, ...]:
    """The normalised words of ``name``, as :func:`names_match` compares them.

    >>> normalize_name("Bpk. H. Moch. Budi Santoso, S.E., M.M.")
    ('muhammad', 'budi', 'santoso')
    """
    words = [_ALIASES.get(w, w) for w in _words(name)]
    start, end = 0, len(words)
    while start < end - 1 and (words[start] in _TITLES or words[start] in _COMPANY):
        start += 1
    while end - 1 > start and (words[end - 1] in _DEGREES or words[end - 1] in _COMPANY):
        end -= 1
    return tuple(words[start:end])


def _repair_truncation(expected: tuple[str, ...], registered: tuple[str, ...]) -> tuple[str, ...]:
    """``registered`` with its last word completed when the bank cut the name short: the last
    word is not an expected word but starts exactly one expected word that no other registered
    word matches (the word in the same position first)."""
    if not registered:
        return registered
    last, rest = registered[-1], registered[:-1]
    if last in expected:
        return registered
    i = len(registered) - 1
    if i < len(expected) and expected[i].startswith(last) and expected[i] not in rest:
        return (*rest, expected[i])
    candidates = {w for w in expected if w.startswith(last) and w not in rest}
    if len(candidates) == 1:
        return (*rest, candidates.pop())
    return registered


def names_match(expected: str, registered: str, mode: NameCheckMode = "lenient") -> NameCheck:
    """Compare the name you expect with the name the bank has registered.

    See the module :mod:`doku_async._names` for the normalisation and the exact rules of each
    mode, with examples.

    Args:
        expected: the name in your payout record.
        registered: the account holder's name from the account inquiry
            (``AccountInquiryResponse.beneficiary_account_name``).
        mode: ``"strict"``, ``"lenient"`` (default) or ``"off"``.

    Returns:
        A :class:`NameCheck`; ``ok`` tells, ``reason`` says why.

    Raises:
        ValueError: ``mode`` is not one of the three.
        TypeError: a name is not a string.
    """
    if mode not in NAME_CHECK_MODES:
        raise ValueError(f"mode must be one of {', '.join(NAME_CHECK_MODES)}, not {mode!r}")
    if not isinstance(expected, str) or not isinstance(registered, str):
        raise TypeError("names must be strings")

    def result(ok: bool, reason: str) -> NameCheck:
        return NameCheck(ok, mode, expected, registered, reason)

    if mode == "off":
        return result(True, "name check is off")
    exp, reg = normalize_name(expected), normalize_name(registered)
    if not exp or not reg:
        # Nothing but punctuation or titles on one side: only the very same text matches.
        same = " ".join(expected.casefold().split()) == " ".join(registered.casefold().split())
        if same and expected.strip():
            return result(True, "same text, no name words to compare")
        return result(False, "no name to compare")
    if exp == reg:
        return result(True, "same names")
    if mode == "strict":
        return result(False, "names differ")
    repaired = _repair_truncation(exp, reg)
    truncated = repaired != reg
    exp_set, reg_set = set(exp), set(repaired)
    if exp_set == reg_set:
        if truncated:
            return result(True, "same names, the registered one cut short")
        return result(True, "same names in another order")
    common = len(exp_set & reg_set)
    if (reg_set < exp_set or exp_set < reg_set) and common >= 2:
        shorter = "registered" if reg_set < exp_set else "expected"
        cut = " (cut short)" if truncated else ""
        return result(True, f"the {shorter} name{cut} is part of the other, {common} names shared")
    if common == 1:
        return result(False, "only 1 name in common")
    if common == 0:
        return result(False, "no name in common")
    return result(False, f"names differ ({common} in common, others do not match)")
