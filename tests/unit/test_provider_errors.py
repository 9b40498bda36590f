from core.resilience.errors import ErrorKind, ProviderError, kind_from_status, parse_retry_after


def test_status_categories_decide_retry():
    assert kind_from_status(401) is ErrorKind.AUTH and not ErrorKind.AUTH.retryable
    assert kind_from_status(429) is ErrorKind.RATE_LIMIT and ErrorKind.RATE_LIMIT.retryable
    assert kind_from_status(429, "You exceeded your current quota") is ErrorKind.QUOTA
    assert not ErrorKind.QUOTA.retryable
    assert kind_from_status(503) is ErrorKind.SERVER and ErrorKind.SERVER.retryable
    assert kind_from_status(504) is ErrorKind.TIMEOUT
    assert kind_from_status(400) is ErrorKind.BAD_REQUEST and not ErrorKind.BAD_REQUEST.retryable


def test_error_carries_its_hint():
    err = ProviderError("openai", ErrorKind.RATE_LIMIT, "slow down", retry_after_s=2.0, status=429)
    assert err.retryable and err.retry_after_s == 2.0 and "openai: rate_limit" in str(err)
    assert parse_retry_after("3") == 3.0 and parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") is None
