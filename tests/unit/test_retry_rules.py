"""Retry timing rules: jobs' backoff and the outbox's schedule, as webhooks and EmProps read it."""

from __future__ import annotations

from datetime import UTC, datetime

from emprops.notifications import policy as emprops_policy
from jobqueue.backoff import retry_delay_seconds
from outbox.schedule import ONCE
from webhooks.retry import is_final_rejection, parse_retry_after
from webhooks.retry import policy as webhook_policy


def test_job_backoff_stays_under_its_exponential_ceiling_and_the_cap(settings):
    settings.RETRY_BACKOFF_BASE_SECONDS, settings.RETRY_BACKOFF_FACTOR = 1.0, 2.0
    settings.RETRY_BACKOFF_CAP_SECONDS = 10.0
    for retry_number, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (10, 10.0)]:
        delays = [retry_delay_seconds(retry_number) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in delays)
        assert max(delays) > ceiling / 2  # full jitter spreads over the whole range


def test_webhook_schedule_ends_and_honours_retry_after(settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = [5.0]
    settings.WEBHOOK_RETRY_JITTER = 0.0
    settings.WEBHOOK_MAX_RETRY_AFTER_SECONDS = 60
    policy = webhook_policy()
    assert policy.next_delay(1) == 5.0
    assert policy.next_delay(1, retry_after=30.0) == 30.0
    assert policy.next_delay(1, retry_after=3600.0) == 60.0
    assert policy.next_delay(2) is None


def test_a_message_sent_once_is_given_up_after_its_first_failure():
    assert ONCE.next_delay(1) is None
    assert ONCE.next_delay(1, retry_after=5.0) is None


def test_which_answers_are_final():
    assert is_final_rejection(400) and is_final_rejection(404)
    assert not any(is_final_rejection(code) for code in (408, 409, 429, 500, 503, None))


def test_retry_after_reads_seconds_and_http_dates():
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after("120", now) == 120.0
    assert parse_retry_after("Thu, 01 Jan 2026 12:01:00 GMT", now) == 60.0
    assert parse_retry_after("soon", now) is None


def _attempts_until_given_up(delay_after) -> int:
    attempts = 1
    while delay_after(attempts) is not None:
        attempts += 1
    return attempts


def test_webhooks_and_emprops_read_a_schedule_alike_one_attempt_more_than_its_waits(settings):
    settings.WEBHOOK_RETRY_SCHEDULE_SECONDS = settings.EMPROPS_RETRY_SCHEDULE_SECONDS = [1.0, 2.0, 3.0]
    settings.WEBHOOK_RETRY_JITTER = 0.0
    webhooks, emprops = webhook_policy(), emprops_policy()

    assert _attempts_until_given_up(webhooks.next_delay) == _attempts_until_given_up(emprops.next_delay) == 4
    assert (
        [webhooks.next_delay(n) for n in (1, 2, 3)]
        == [emprops.next_delay(n) for n in (1, 2, 3)]
        == [1.0, 2.0, 3.0]
    )


def test_jitter_spreads_a_wait_within_its_fraction():
    from outbox.schedule import RetryPolicy

    policy = RetryPolicy([100.0], retry_after_cap=0.0, jitter=0.2)
    delays = [policy.next_delay(1) for _ in range(200)]
    assert all(80.0 <= d <= 120.0 for d in delays if d is not None)
    assert len(set(delays)) > 1
