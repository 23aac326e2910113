"""Webhook keys from the environment (issue 15): ``create_webhook_app`` reads
``DOKU_AGENT_KEY`` and ``DOKU_ENCRYPTION_KEYS`` (comma-separated for a rotation) for the keys it
is not given, like ``DokuClient.from_env()``; a missing one is named; typos are warned about."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web
from fakedoku import serve

from doku_async import ConfigurationError, ConfigurationWarning
from doku_async._environ import webhook_keys_from_env
from doku_async.webhooks import (
    AesSignatureVerifier,
    Notification,
    create_webhook_app,
    sign_kirim_notification,
)

pytestmark = pytest.mark.timeout(30)

AGENT = "A41418"
OLD_KEY = "627054fevj1sutvs"
NEW_KEY = "0123456789abcdef"
VARIABLES = ("DOKU_AGENT_KEY", "DOKU_ENCRYPTION_KEYS", "DOKU_ENCRYPTION_KEY")
BODY = json.dumps(
    {
        "transactionId": "DK0018353",
        "activityCode": "200",
        "message": "Transaction is Refunded",
        "processDate": "2024-01-12'T'07:30:12",
    }
).encode()


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in VARIABLES:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


async def deliver(app: web.Application, agent: str, key: str) -> int:
    """POST a Refund notification signed with (agent, key); the HTTP status answered."""
    root = web.Application()
    root.add_subapp("/doku/", app)
    async with (
        asyncio.timeout(10),
        serve(root) as url,
        aiohttp.ClientSession() as http,
        http.post(
            url + "/doku/kirim/refund",
            data=BODY,
            headers=sign_kirim_notification(agent_key=agent, encryption_key=key),
        ) as resp,
    ):
        return resp.status


async def keep(_: Notification) -> None:
    return


async def test_keys_come_from_the_environment_with_a_rotation(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("DOKU_AGENT_KEY", AGENT)
    clean_env.setenv("DOKU_ENCRYPTION_KEYS", f"{OLD_KEY}, {NEW_KEY}")
    app = create_webhook_app(on_refund=keep)
    assert await deliver(app, AGENT, OLD_KEY) == 200
    app = create_webhook_app(on_refund=keep)
    assert await deliver(app, AGENT, NEW_KEY) == 200
    app = create_webhook_app(on_refund=keep)
    assert await deliver(app, AGENT, "ffffffffffffffff") == 401
    assert await deliver(create_webhook_app(on_refund=keep), "A99999", OLD_KEY) == 401


async def test_one_key_variable_is_read_too(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DOKU_AGENT_KEY", AGENT)
    clean_env.setenv("DOKU_ENCRYPTION_KEY", OLD_KEY)
    assert await deliver(create_webhook_app(on_refund=keep), AGENT, OLD_KEY) == 200


async def test_arguments_win_over_the_environment(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DOKU_AGENT_KEY", "A00000")
    clean_env.setenv("DOKU_ENCRYPTION_KEYS", NEW_KEY)
    app = create_webhook_app(agent_key=AGENT, on_refund=keep)  # the key still from the env
    assert await deliver(app, AGENT, NEW_KEY) == 200
    app = create_webhook_app(agent_key=AGENT, on_refund=keep)
    assert await deliver(app, "A00000", NEW_KEY) == 401
    app = create_webhook_app(encryption_keys=[OLD_KEY], on_refund=keep)
    assert await deliver(app, "A00000", OLD_KEY) == 200


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        pytest.param({}, "DOKU_AGENT_KEY", id="nothing"),
        pytest.param({"DOKU_ENCRYPTION_KEYS": OLD_KEY}, "DOKU_AGENT_KEY", id="no-agent"),
        pytest.param({"DOKU_AGENT_KEY": AGENT}, "DOKU_ENCRYPTION_KEYS", id="no-key"),
        pytest.param(
            {"DOKU_AGENT_KEY": AGENT, "DOKU_ENCRYPTION_KEYS": " , "},
            "DOKU_ENCRYPTION_KEYS",
            id="blank",
        ),
        pytest.param(
            {"DOKU_AGENT_KEY": " ", "DOKU_ENCRYPTION_KEYS": OLD_KEY}, "DOKU_AGENT_KEY", id="space"
        ),
    ],
)
def test_a_missing_key_names_the_variables(
    clean_env: pytest.MonkeyPatch, env: dict[str, str], missing: str
) -> None:
    for name, value in env.items():
        clean_env.setenv(name, value)
    with pytest.raises(ConfigurationError) as info:
        create_webhook_app(on_refund=keep)
    message = str(info.value)
    assert message.startswith(f"{missing} is not set")
    assert "DOKU_AGENT_KEY" in message
    assert "DOKU_ENCRYPTION_KEYS" in message
    assert "verifier=" in message
    assert OLD_KEY not in message  # a key that is set is never echoed


def test_both_key_variables_set_is_refused(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DOKU_AGENT_KEY", AGENT)
    clean_env.setenv("DOKU_ENCRYPTION_KEYS", OLD_KEY)
    clean_env.setenv("DOKU_ENCRYPTION_KEY", NEW_KEY)
    with pytest.raises(ConfigurationError, match="both set") as info:
        create_webhook_app(on_refund=keep)
    assert OLD_KEY not in str(info.value)
    assert NEW_KEY not in str(info.value)


def test_a_wrong_length_key_from_the_environment_is_refused(
    clean_env: pytest.MonkeyPatch,
) -> None:
    clean_env.setenv("DOKU_AGENT_KEY", AGENT)
    clean_env.setenv("DOKU_ENCRYPTION_KEYS", "tooshort")
    with pytest.raises(ConfigurationError):
        create_webhook_app(on_refund=keep)


def test_a_misspelt_variable_is_warned_about(clean_env: pytest.MonkeyPatch) -> None:
    clean_env.setenv("DOKU_AGENT_KEY", AGENT)
    clean_env.setenv("DOKU_ENCRYPTON_KEYS", OLD_KEY)  # sic
    with (
        pytest.warns(
            ConfigurationWarning, match="DOKU_ENCRYPTON_KEYS.*DOKU_ENCRYPTION_KEYS"
        ) as warned,
        pytest.raises(ConfigurationError, match="DOKU_ENCRYPTION_KEYS is not set"),
    ):
        create_webhook_app(on_refund=keep)
    assert warned[0].filename == __file__  # points at the caller of create_webhook_app


async def test_a_given_verifier_needs_no_variable(clean_env: pytest.MonkeyPatch) -> None:
    # No DOKU_* variable is set: reading them would raise ConfigurationError.
    app = create_webhook_app(verifier=AesSignatureVerifier.single(AGENT, OLD_KEY), on_refund=keep)
    assert await deliver(app, AGENT, OLD_KEY) == 200


def test_an_encryption_key_of_the_wrong_length_names_its_variable_not_its_value() -> None:
    env = {"DOKU_AGENT_KEY": "A41879", "DOKU_ENCRYPTION_KEYS": "0123456789abcdef,short-key"}
    with pytest.raises(
        ConfigurationError, match=r"^DOKU_ENCRYPTION_KEYS: key 2 of 2 is 9 bytes"
    ) as info:
        webhook_keys_from_env(env)
    assert "short-key" not in str(info.value)
