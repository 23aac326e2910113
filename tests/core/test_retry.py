"""Retry decisions: classify(), Retry-After parsing, backoff, and the code-to-error table."""

from __future__ import annotations

import time
from email.utils import formatdate

import pytest

from doku_async import (
    AuthenticationError,
    BadRequestError,
    BusinessRejectionError,
    ConfigurationError,
    DokuAPIError,
    DuplicateRequestError,
    InsufficientFundsError,
    InvalidAccountError,
    RateLimitError,
    RetryPolicy,
    ServerError,
    TokenError,
)
from doku_async._exceptions import error_for
from doku_async._retry import Disposition, classify, parse_retry_after

# --- classify ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("http_status", "code", "expected"),
    [
        (200, "2004300", Disposition.SUCCESS),
        (200, "2007300", Disposition.SUCCESS),
        (200, "2001100", Disposition.SUCCESS),
        (202, "2024300", Disposition.IN_PROGRESS),
        (401, "4014301", Disposition.TOKEN),
        (401, "4014303", Disposition.TOKEN),
        (401, "4011101", Disposition.TOKEN),
        (401, "4014300", Disposition.FINAL),
        (401, "4014302", Disposition.FINAL),
        (401, "4017300", Disposition.FINAL),
        (400, "4004300", Disposition.FINAL),
        (400, "4004301", Disposition.FINAL),
        (400, "4004302", Disposition.FINAL),
        (409, "4094300", Disposition.DUPLICATE),
        (409, "4094301", Disposition.DUPLICATE),
        (409, "4094302", Disposition.DUPLICATE),
        (429, "4294300", Disposition.RETRYABLE),
        (500, "5004300", Disposition.RETRYABLE),
        (500, "5004301", Disposition.RETRYABLE),
        (500, "5004302", Disposition.RETRYABLE),
        (504, "5044300", Disposition.RETRYABLE),
        (408, "4084300", Disposition.RETRYABLE),
        (403, "4034304", Disposition.RETRYABLE),
        (403, "4034306", Disposition.RETRYABLE),
        (403, "4034314", Disposition.FINAL),
        (403, "4034305", Disposition.FINAL),
        (404, "4044311", Disposition.FINAL),
        (404, "4044308", Disposition.FINAL),
        (405, "4054300", Disposition.FINAL),
        # Without a responseCode the HTTP status decides.
        (502, "", Disposition.RETRYABLE),
        (503, "", Disposition.RETRYABLE),
        (200, "", Disposition.SUCCESS),
        (202, "", Disposition.IN_PROGRESS),
        (429, "", Disposition.RETRYABLE),
        (401, "", Disposition.FINAL),
        (404, "", Disposition.FINAL),
        (409, "", Disposition.DUPLICATE),
        # A malformed code is ignored in favour of the HTTP status.
        (502, "ERROR", Disposition.RETRYABLE),
        (200, "20043", Disposition.SUCCESS),
        (500, "20043OO", Disposition.RETRYABLE),
        # The seven-digit code wins over the HTTP status.
        (200, "5004300", Disposition.RETRYABLE),
        (200, "4044311", Disposition.FINAL),
    ],
)
def test_classify(http_status: int, code: str, expected: Disposition) -> None:
    assert classify(http_status, code) is expected


# --- Retry-After ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("3", 3.0),
        ("0", 0.0),
        ("0.5", 0.5),
        (" 7 ", 7.0),
        ("120", 120.0),
        ("-5", 0.0),
        ("-0.1", 0.0),
        ("garbage", None),
        ("3 seconds", None),
        ("", None),
        (None, None),
        ("nan", None),
        ("NaN", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    assert parse_retry_after(header) == expected


def test_parse_retry_after_http_date_in_the_future() -> None:
    header = formatdate(time.time() + 120, usegmt=True)
    seconds = parse_retry_after(header)
    assert seconds is not None
    assert 115.0 <= seconds <= 121.0


def test_parse_retry_after_http_date_in_the_past_is_zero() -> None:
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0


# --- backoff ----------------------------------------------------------------------------------


def test_backoff_without_jitter_doubles_and_caps() -> None:
    policy = RetryPolicy(jitter=False)
    assert [policy.backoff(n) for n in range(1, 8)] == [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]


def test_backoff_custom_base_and_cap() -> None:
    policy = RetryPolicy(initial_backoff=0.1, max_backoff=0.3, jitter=False)
    assert [policy.backoff(n) for n in (1, 2, 3, 4)] == pytest.approx([0.1, 0.2, 0.3, 0.3])


def test_backoff_honours_retry_after_and_caps_it() -> None:
    policy = RetryPolicy(jitter=False, max_retry_after=30.0)
    assert policy.backoff(1, retry_after=3.0) == 3.0
    assert policy.backoff(5, retry_after=3.0) == 3.0  # the hint replaces the exponential value
    assert policy.backoff(1, retry_after=0.0) == 0.0
    assert policy.backoff(1, retry_after=600.0) == 30.0
    assert policy.backoff(1, retry_after=float("inf")) == 30.0
    assert RetryPolicy(max_retry_after=5.0).backoff(1, retry_after=9.0) == 5.0


def test_retry_after_is_not_jittered() -> None:
    policy = RetryPolicy(jitter=True)
    assert policy.backoff(1, retry_after=4.0, rand=lambda: 0.0) == 4.0


def test_backoff_with_jitter_bounds() -> None:
    policy = RetryPolicy(jitter=True)
    for attempt, base in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 4.0), (5, 8.0), (9, 8.0)]:
        low = policy.backoff(attempt, rand=lambda: 0.0)
        high = policy.backoff(attempt, rand=lambda: 0.999)
        assert low == pytest.approx(0.5 * base)
        assert high == pytest.approx(0.9995 * base)
        assert 0.5 * base <= low < high <= base


def test_backoff_with_jitter_uses_the_injected_rand() -> None:
    policy = RetryPolicy(jitter=True)
    values = iter([0.2, 0.8])
    assert policy.backoff(3, rand=lambda: next(values)) == pytest.approx(2.0 * 0.6)
    assert policy.backoff(3, rand=lambda: next(values)) == pytest.approx(2.0 * 0.9)


def test_backoff_for_a_very_late_attempt_is_capped() -> None:
    assert RetryPolicy(jitter=False).backoff(2000) == 8.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"max_attempts": 0},
        {"status_checks": 0},
        {"initial_backoff": -1.0},
        {"max_backoff": -1.0},
        {"max_retry_after": -0.5},
    ],
)
def test_retry_policy_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError, match="retry"):
        RetryPolicy(**kwargs)  # type: ignore[arg-type]


def test_retry_policy_defaults() -> None:
    policy = RetryPolicy()
    assert policy.max_attempts == 4
    assert policy.jitter is True
    assert RetryPolicy(max_attempts=1).max_attempts == 1


# --- error_for --------------------------------------------------------------------------------

REFS = {"X-EXTERNAL-ID": "12345678901234567890123456789012", "partnerReferenceNo": "ref-1"}


@pytest.mark.parametrize(
    ("http_status", "code", "cls"),
    [
        (400, "4004300", BadRequestError),
        (400, "4004301", BadRequestError),
        (400, "4004302", BadRequestError),
        (401, "4014300", AuthenticationError),
        (401, "4017300", AuthenticationError),
        (401, "4014301", TokenError),
        (401, "4014303", TokenError),
        (403, "4034314", InsufficientFundsError),
        (403, "4034304", BusinessRejectionError),
        (403, "4034306", BusinessRejectionError),
        (404, "4044311", InvalidAccountError),
        (404, "4044308", BusinessRejectionError),
        (405, "4054300", BusinessRejectionError),
        (418, "4184300", BusinessRejectionError),
        (409, "4094300", DuplicateRequestError),
        (409, "4094301", DuplicateRequestError),
        (409, "4094302", DuplicateRequestError),
        (429, "4294300", RateLimitError),
        (500, "5004300", ServerError),
        (500, "5004301", ServerError),
        (500, "5004302", ServerError),
        (504, "5044300", ServerError),
        (408, "4084300", ServerError),
        # The seven-digit code decides, even over a contradicting HTTP status.
        (200, "4034314", InsufficientFundsError),
    ],
)
def test_error_for_maps_codes_to_classes(
    http_status: int, code: str, cls: type[DokuAPIError]
) -> None:
    body = b'{"responseCode":"' + code.encode() + b'","responseMessage":"Nope"}'
    error = error_for(http_status, code, "Nope", raw_body=body, references=REFS)
    assert type(error) is cls
    assert error.http_status == http_status
    assert error.response_code == code
    assert error.service_code == code[3:5]
    assert error.case_code == code[5:7]
    assert error.response_message == "Nope"
    assert error.raw_body == body
    assert dict(error.references) == REFS
    assert code in str(error)
    assert "Nope" in str(error)
    assert "ref-1" in str(error)


def test_error_for_splits_service_and_case_codes() -> None:
    error = error_for(403, "4034314", "Insufficient Funds")
    assert isinstance(error, InsufficientFundsError)
    assert isinstance(error, BusinessRejectionError)
    assert (error.service_code, error.case_code) == ("43", "14")
    assert error.raw_body == b""
    assert dict(error.references) == {}


def test_error_for_rate_limit_carries_retry_after() -> None:
    error = error_for(429, "4294300", "Too Many Requests", retry_after=2.5, references=REFS)
    assert isinstance(error, RateLimitError)
    assert error.retry_after == 2.5
    assert dict(error.references) == REFS
    no_hint = error_for(429, "4294300", "Too Many Requests")
    assert isinstance(no_hint, RateLimitError)
    assert no_hint.retry_after is None


def test_error_for_ignores_retry_after_for_other_errors() -> None:
    error = error_for(503, "5034300", "Unavailable", retry_after=9.0)
    assert type(error) is ServerError
    assert not hasattr(error, "retry_after")


@pytest.mark.parametrize(
    ("http_status", "cls"),
    [
        (400, BadRequestError),
        (401, AuthenticationError),
        (403, BusinessRejectionError),
        (404, BusinessRejectionError),
        (409, DuplicateRequestError),
        (429, RateLimitError),
        (502, ServerError),
        (503, ServerError),
        (302, DokuAPIError),
    ],
)
def test_error_for_without_code_uses_http_status(http_status: int, cls: type[DokuAPIError]) -> None:
    error = error_for(http_status, "", "")
    assert type(error) is cls
    assert error.response_code == ""
    assert error.service_code == ""
    assert error.case_code == ""
    assert str(http_status) in str(error)
    assert "no message" in str(error)
