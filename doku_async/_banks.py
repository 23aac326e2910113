"""Indonesian bank codes for Kirim DOKU's ``beneficiaryBankCode``: a table, data only.

Kirim DOKU takes the beneficiary's bank as Bank Indonesia's three-digit clearing code ("sandi
bank", e.g. ``"014"`` for BCA), the code Indonesian ATMs and interbank transfers use. DOKU
publishes no machine-readable list for its SNAP API; its legacy KIRIMDOKU API page (same
backend) has a "List of Supported Banks" section at
https://doku.com/API/kirimdoku/index-v32.html, and its payout guide lists LinkAja as ``911``
(https://docs.doku.com/payouts/merchant-guidelines/delivery-channel/e-wallet).

Source of the table below, retrieved 2026-12-04:
https://github.com/vnxx/list-of-banks-in-indoneisa-json/blob/master/index.json (commit
6f4010faee60ca78c24d1b87b066e2209f450b5e), a widely used public list of Bank Indonesia's
three-digit codes with SWIFT codes. Where it lists a bank and its Sharia unit (UUS) under one
code, the table keeps one entry. Banks renamed since that list was published carry their
current name with the former one in brackets (the 2021 Bank Syariah Indonesia merger: 451,
and 422 and 427 of the merged banks; Bank Jago 542; SeaBank 535; Allo Bank 567; Bank Neo
Commerce 490; Bank Raya 494; blu by BCA Digital 501). ``911`` (LinkAja) is from DOKU's page.

The table is a guard against typos ("999", "99", "0140"), not a promise that DOKU routes to
every bank in it, nor that it knows every bank DOKU routes to. Extend it without waiting for a
release::

    from doku_async import BankCodes, DokuClient

    codes = BankCodes.default().with_extra({"999": "My test bank"})
    doku = DokuClient(..., bank_codes=codes)
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from types import MappingProxyType

from ._exceptions import ConfigurationError

__all__ = ["BankCodes"]

_DEFAULT: dict[str, str] = {
    "002": "Bank Rakyat Indonesia (BRI)",
    "003": "Indonesia Eximbank",
    "008": "Bank Mandiri",
    "009": "Bank Negara Indonesia (BNI)",
    "011": "Bank Danamon",
    "013": "Bank Permata",
    "014": "Bank Central Asia (BCA)",
    "016": "Bank Maybank Indonesia",
    "019": "Bank Panin",
    "020": "Bank Arta Niaga Kencana",
    "022": "Bank CIMB Niaga",
    "023": "Bank UOB Indonesia",
    "028": "Bank OCBC NISP",
    "031": "Citibank",
    "032": "JP Morgan Chase Bank",
    "033": "Bank of America Merrill Lynch",
    "036": "China Construction Bank Indonesia",
    "037": "Bank Artha Graha Internasional",
    "040": "Bangkok Bank",
    "042": "Bank of Tokyo Mitsubishi UFJ",
    "045": "Bank Sumitomo Mitsui Indonesia",
    "046": "Bank DBS Indonesia",
    "047": "Bank Resona Perdania",
    "048": "Bank Mizuho Indonesia",
    "050": "Standard Chartered Bank",
    "052": "Royal Bank of Scotland (RBS)",
    "054": "Bank Capital Indonesia",
    "057": "Bank BNP Paribas Indonesia",
    "061": "Bank ANZ Indonesia",
    "067": "Deutsche Bank",
    "068": "Bank Woori Indonesia",
    "069": "Bank of China",
    "076": "Bank Bumi Arta",
    "087": "HSBC Indonesia",
    "089": "Bank Rabobank International Indonesia",
    "095": "Bank JTrust Indonesia",
    "097": "Bank Mayapada International",
    "110": "Bank BJB",
    "111": "Bank DKI",
    "112": "BPD Daerah Istimewa Yogyakarta",
    "113": "BPD Jawa Tengah",
    "114": "BPD Jawa Timur",
    "115": "BPD Jambi",
    "116": "BPD Aceh",
    "117": "BPD Sumut",
    "118": "BPD Sumatera Barat",
    "119": "BPD Riau dan Kepri",
    "120": "BPD Sumsel dan Babel",
    "121": "BPD Lampung",
    "122": "BPD Kalimantan Selatan",
    "123": "BPD Kalimantan Barat",
    "124": "BPD Kalimantan Timur",
    "125": "BPD Kalimantan Tengah",
    "126": "BPD Sulselbar",
    "127": "BPD Sulut",
    "128": "BPD Nusa Tenggara Barat",
    "129": "BPD Bali",
    "130": "BPD Nusa Tenggara Timur",
    "131": "BPD Maluku",
    "132": "BPD Papua",
    "133": "BPD Bengkulu",
    "134": "BPD Sulawesi Tengah",
    "135": "BPD Sulawesi Tenggara",
    "137": "BPD Banten",
    "145": "Bank Nusantara Parahyangan",
    "146": "Bank of India Indonesia",
    "147": "Bank Muamalat Indonesia",
    "151": "Bank Mestika Dharma",
    "152": "Bank Shinhan Indonesia",
    "153": "Bank Sinarmas",
    "157": "Bank Maspion Indonesia",
    "161": "Bank Ganesha",
    "164": "Bank ICBC Indonesia",
    "167": "Bank QNB Indonesia",
    "200": "Bank Tabungan Negara (BTN)",
    "212": "Bank Woori Saudara Indonesia 1906",
    "213": "Bank BTPN (Jenius)",
    "405": "Bank Victoria Syariah",
    "422": "Bank Syariah Indonesia (formerly BRI Syariah)",
    "425": "Bank BJB Syariah",
    "426": "Bank Mega",
    "427": "Bank Syariah Indonesia (formerly BNI Syariah)",
    "441": "Bank KB Bukopin",
    "451": "Bank Syariah Indonesia (BSI)",
    "459": "Bank Bisnis Internasional",
    "466": "Bank Oke Indonesia",
    "472": "Bank Jasa Jakarta",
    "484": "Bank KEB Hana Indonesia",
    "485": "Bank MNC Internasional",
    "490": "Bank Neo Commerce (formerly Bank Yudha Bhakti)",
    "491": "Bank Mitra Niaga",
    "494": "Bank Raya Indonesia (formerly BRI Agroniaga)",
    "498": "Bank SBI Indonesia",
    "501": "blu by BCA Digital (formerly Bank Royal Indonesia)",
    "503": "Bank Nationalnobu",
    "506": "Bank Mega Syariah",
    "513": "Bank Ina Perdana",
    "517": "Bank Panin Dubai Syariah",
    "520": "Prima Master Bank",
    "521": "Bank KB Bukopin Syariah",
    "523": "Bank Sahabat Sampoerna",
    "526": "Bank Dinar Indonesia",
    "531": "Bank Amar Indonesia",
    "535": "SeaBank Indonesia (formerly Bank Kesejahteraan Ekonomi)",
    "536": "Bank BCA Syariah",
    "542": "Bank Jago (formerly Bank Artos Indonesia)",
    "547": "Bank BTPN Syariah",
    "548": "Bank Multi Arta Sentosa",
    "553": "Bank Mayora",
    "555": "Bank Index Selindo",
    "559": "Centratama Nasional Bank",
    "562": "Bank Fama International",
    "564": "Bank Mandiri Taspen",
    "566": "Bank Victoria International",
    "567": "Allo Bank Indonesia (formerly Bank Harda Internasional)",
    "734": "Bank Sinarmas Syariah",
    "911": "LinkAja",
    "945": "Bank Agris",
    "949": "Bank CTBC Indonesia",
    "950": "Bank Commonwealth",
}


def _is_code(code: object) -> bool:
    return isinstance(code, str) and len(code) == 3 and code.isascii() and code.isdigit()


class BankCodes(Mapping[str, str]):
    """An immutable table of three-digit bank codes and bank names.

    ``BankCodes.default()`` is the table shipped with the SDK (see the module
    :mod:`doku_async._banks` for its source). ``with_extra`` returns a new table with more (or
    renamed) codes; pass it as ``DokuClient(bank_codes=...)`` and
    ``DokuSimulator(bank_codes=...)``. It is a read-only :class:`~collections.abc.Mapping`
    of code to name.

    Example::

        codes = BankCodes.default()
        codes.name_of("014")  # "Bank Central Asia (BCA)"
        codes.is_known("999")  # False
        codes.with_extra({"999": "My test bank"}).is_known("999")  # True
    """

    __slots__ = ("_codes",)

    _default: BankCodes | None = None

    def __init__(self, codes: Mapping[str, str]) -> None:
        checked: dict[str, str] = {}
        for code, name in codes.items():
            if not _is_code(code):
                raise ConfigurationError(
                    f"bank_codes: {code!r} is not a three-digit bank code (e.g. '014')"
                )
            if not isinstance(name, str) or not name.strip():
                raise ConfigurationError(f"bank_codes: the name of {code} must be non-empty text")
            checked[code] = name
        self._codes: Mapping[str, str] = MappingProxyType(dict(sorted(checked.items())))

    @classmethod
    def default(cls) -> BankCodes:
        """The table shipped with the SDK (one shared instance)."""
        if BankCodes._default is None:
            BankCodes._default = BankCodes(_DEFAULT)
        return BankCodes._default

    def with_extra(self, extra: Mapping[str, str]) -> BankCodes:
        """A new table: this one plus ``extra`` (code to name; an existing code is renamed).

        Raises:
            ConfigurationError: a code is not three ASCII digits or a name is empty.
        """
        return BankCodes({**self._codes, **extra})

    def name_of(self, code: object) -> str | None:
        """The bank's name for ``code``, or ``None`` when the code is not in the table."""
        return self._codes.get(code) if isinstance(code, str) else None

    def is_known(self, code: object) -> bool:
        """Whether ``code`` is a three-digit code in the table."""
        return isinstance(code, str) and code in self._codes

    def __getitem__(self, code: str) -> str:
        return self._codes[code]

    def __iter__(self) -> Iterator[str]:
        return iter(self._codes)

    def __len__(self) -> int:
        return len(self._codes)

    def __contains__(self, code: object) -> bool:
        return isinstance(code, str) and code in self._codes

    def __eq__(self, other: object) -> bool:
        if isinstance(other, BankCodes):
            return dict(self._codes) == dict(other._codes)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(frozenset(self._codes.items()))

    def __repr__(self) -> str:
        return f"BankCodes({len(self._codes)} codes)"
