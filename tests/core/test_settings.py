"""``ClientSettings``: one frozen, checked object behind ``DokuClient``'s options (issue 14)."""

from __future__ import annotations

import dataclasses

import pytest

from doku_async import (
    BankCodes,
    ClientSettings,
    Clocks,
    ConfigurationError,
    DokuClient,
    KirimPaths,
    Timeouts,
)


def test_keywords_build_the_same_frozen_settings_as_a_shared_object() -> None:
    shared = ClientSettings(base_url="http://127.0.0.1:9/prefix/", kirim_paths="/snap/v1.1")
    by_keywords = DokuClient(
        "cid", "secret", base_url="http://127.0.0.1:9/prefix/", kirim_paths="/snap/v1.1"
    )
    by_object = DokuClient("cid", "secret", settings=shared)
    assert by_keywords.settings == by_object.settings == shared
    assert shared.base_url == "http://127.0.0.1:9/prefix"  # normalised once
    assert shared.kirim_paths == KirimPaths.family("/snap/v1.1")
    assert isinstance(shared.bank_codes, BankCodes)
    assert by_object.base_url == "http://127.0.0.1:9/prefix"
    assert by_object.environment == "custom"
    with pytest.raises(dataclasses.FrozenInstanceError):
        shared.channel_id = "OTHER"  # type: ignore[misc]


def test_default_settings_name_the_environment() -> None:
    doku = DokuClient("cid", "secret", environment="production")
    assert doku.environment == "production"
    assert doku.settings.base_url == "https://api.doku.com"


def test_settings_and_keywords_together_are_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"either settings= or options \(channel_id\)"):
        DokuClient("cid", "secret", settings=ClientSettings(), channel_id="H2H")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"environment": "staging"}, "environment: must be 'sandbox' or 'production'"),
        ({"base_url": "ftp://x"}, "base_url: must be an http"),
        ({"channel_id": "H 2 H"}, "channel_id: must be visible ASCII"),
        ({"check_status_service_code": "4"}, "check_status_service_code: must be two digits"),
        ({"token_refresh_margin": 0}, "token_refresh_margin: must be positive"),
        ({"pool_size": -1}, "pool_size: must be positive"),
        ({"timeouts": 5}, "timeouts: must be a Timeouts"),
        ({"bank_codes": {"014": "BCA"}}, "bank_codes: must be a BankCodes"),
        ({"kirim_paths": "/v9"}, "kirim_paths: unknown family"),
    ],
)
def test_each_option_is_checked_when_the_settings_are_built(
    options: dict[str, object], message: str
) -> None:
    with pytest.raises(ConfigurationError, match=message):
        ClientSettings(**options)  # type: ignore[arg-type]


def test_an_old_clock_keyword_says_where_clocks_go() -> None:
    with pytest.raises(TypeError, match=r"'sleep': pass clocks=Clocks\(sleep=\.\.\.\)"):
        DokuClient("cid", "secret", sleep=None)  # type: ignore[call-arg]
    with pytest.raises(TypeError, match="unexpected keyword argument 'base_uri'"):
        DokuClient("cid", "secret", base_uri="http://x")  # type: ignore[call-arg]


def test_one_clock_bundle_reaches_the_client() -> None:
    clocks = Clocks(monotonic=lambda: 5.0, wall=lambda: 1.0)
    doku = DokuClient("cid", "secret", clocks=clocks, timeouts=Timeouts(total=3))
    assert doku.clocks is clocks
    assert doku.timeouts.total == 3
