"""The outbox, as both of its transports use it: webhook deliveries and EmProps notifications are
claimed, settled, dead-lettered, redelivered and counted by the one set of rules."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from django.db import connections, transaction
from django.utils import timezone

from accounts.models import Tenant
from emprops.models import EmpropsNotification
from outbox import leases, outcomes, redelivery
from outbox.models import OutboxMessage
from outbox.schedule import RetryPolicy
from webhooks.models import WebhookDelivery
from workflows.models import Workflow, WorkflowMode, WorkflowStatus

pytestmark = pytest.mark.django_db(transaction=True)

TWO_RETRIES = RetryPolicy([10.0, 20.0], retry_after_cap=60.0)


def _webhook_delivery(n: int) -> WebhookDelivery:
    return WebhookDelivery.objects.create(
        url="https://8.8.8.8/hook", tenant=Tenant.default(), event_id=n, event_type="job_completed", body="{}"
    )


def _emprops_notification(n: int) -> EmpropsNotification:
    workflow = Workflow.objects.create(
        mode=WorkflowMode.CLIENT, source="emprops", status=WorkflowStatus.COMPLETED, tenant=Tenant.default()
    )
    return EmpropsNotification.objects.create(event_id=n, workflow=workflow, outcome="completed")


@pytest.fixture(params=[_webhook_delivery, _emprops_notification], ids=["webhooks", "emprops"])
def make_message(request):
    return request.param


def _claim_one(model: type[OutboxMessage]) -> uuid.UUID:
    [(_, token)] = leases.claim_due(model, limit=10, lease_seconds=60)
    return token


def test_due_messages_are_claimed_once_and_a_claimed_one_is_not_due(make_message):
    first, second = make_message(1), make_message(2)
    model = type(first)

    claimed = leases.claim_due(model, limit=10, lease_seconds=60)

    assert sorted(message_id for message_id, _ in claimed) == sorted([first.pk, second.pk])
    assert leases.claim_due(model, limit=10, lease_seconds=60) == []
    assert leases.seconds_until_next_due(model, at_most=30.0) == 30.0


def test_a_claim_skips_rows_another_sender_holds_locked(make_message):
    locked, free = make_message(1), make_message(2)
    model = type(locked)
    other = connections.create_connection("default")
    try:
        with other.cursor() as cursor:
            cursor.execute("BEGIN")
            table = model._meta.db_table
            cursor.execute(f"SELECT id FROM {table} WHERE id = %s FOR UPDATE", [locked.pk])
            assert [m for m, _ in leases.claim_due(model, limit=10, lease_seconds=60)] == [free.pk]
            cursor.execute("ROLLBACK")
    finally:
        other.close()


def test_an_expired_lease_makes_a_message_due_again_under_a_new_token(make_message):
    message = make_message(1)
    model = type(message)
    first = _claim_one(model)
    model.objects.filter(pk=message.pk).update(leased_until=timezone.now() - timedelta(seconds=1))

    assert leases.seconds_until_next_due(model, at_most=30.0) == 0.0
    second = _claim_one(model)

    assert second != first
    with transaction.atomic():
        late = outcomes.settle(model, message.pk, first, outcomes.Sent(True), TWO_RETRIES, timezone.now())
    assert late is None  # the first sender's outcome comes too late and changes nothing
    message.refresh_from_db()
    assert (message.status, message.attempt_count, message.lease_token) == ("pending", 0, second)


def test_a_failure_is_retried_on_the_schedule_then_dead_lettered_as_exhausted(make_message):
    message = make_message(1)
    model = type(message)
    failed = outcomes.Sent(delivered=False)
    for expected_wait in (10.0, 20.0, None):
        token = _claim_one(model)
        before = timezone.now()
        with transaction.atomic():
            message = outcomes.settle(model, message.pk, token, failed, TWO_RETRIES, before)
        assert message is not None
        if expected_wait is not None:
            assert message.status == "pending"
            waited = (message.next_attempt_at - before).total_seconds()
            assert expected_wait <= waited < expected_wait + 5
            model.objects.filter(pk=message.pk).update(next_attempt_at=timezone.now())
    assert (message.status, message.dead_letter_reason, message.attempt_count) == (
        "dead_lettered",
        "exhausted",
        3,
    )
    assert message.next_attempt_at is None and message.lease_token is None


def test_a_receivers_retry_after_lengthens_a_wait_up_to_the_cap(make_message):
    message = make_message(1)
    model = type(message)
    asked = outcomes.Sent(delivered=False, retry_after=3600.0)
    now = timezone.now()
    with transaction.atomic():
        message = outcomes.settle(model, message.pk, _claim_one(model), asked, TWO_RETRIES, now)
    assert message is not None
    assert 60.0 <= (message.next_attempt_at - now).total_seconds() < 65.0


def test_a_final_refusal_is_dead_lettered_at_once_with_its_reason(make_message):
    message = make_message(1)
    model = type(message)
    refused = outcomes.Sent(delivered=False, final_reason="rejected")
    with transaction.atomic():
        message = outcomes.settle(model, message.pk, _claim_one(model), refused, TWO_RETRIES, timezone.now())
    assert message is not None
    assert (message.status, message.dead_letter_reason, message.attempt_count) == (
        "dead_lettered",
        "rejected",
        1,
    )


def test_a_redelivered_message_starts_a_fresh_schedule_and_a_pending_one_cannot_be(make_message):
    message = make_message(1)
    model = type(message)
    with pytest.raises(LookupError):
        redelivery.redeliver(model.objects.all(), message.pk, lambda: LookupError("pending"))
    refused = outcomes.Sent(delivered=False, final_reason="rejected")
    with transaction.atomic():
        outcomes.settle(model, message.pk, _claim_one(model), refused, TWO_RETRIES, timezone.now())

    message = redelivery.redeliver(model.objects.all(), message.pk, lambda: LookupError("pending"))

    assert (message.status, message.dead_letter_reason, message.redelivery_count) == ("pending", "", 1)
    assert (message.attempt_count, message.attempts_in_schedule) == (1, 0)
    failed = outcomes.Sent(delivered=False)
    with transaction.atomic():
        message = outcomes.settle(model, message.pk, _claim_one(model), failed, TWO_RETRIES, timezone.now())
    assert message is not None and message.status == "pending"  # the schedule's first wait again


def test_counts_name_the_delivered_state_in_the_transports_words(make_message):
    delivered, dead, waiting = make_message(1), make_message(2), make_message(3)
    model = type(delivered)
    tokens = dict(leases.claim_due(model, limit=10, lease_seconds=60))
    with transaction.atomic():
        outcomes.settle(
            model, delivered.pk, tokens[delivered.pk], outcomes.Sent(True), TWO_RETRIES, timezone.now()
        )
        refused = outcomes.Sent(False, final_reason="rejected")
        outcomes.settle(model, dead.pk, tokens[dead.pk], refused, TWO_RETRIES, timezone.now())
    leases.release(model, [waiting.pk])

    assert redelivery.counts(model.objects.all()) == {
        "pending": 1,
        "retrying": 0,
        model.DELIVERED: 1,
        "dead_lettered": 1,
    }
    assert redelivery.redeliver_each(model.objects.all()) == 2
    assert redelivery.counts(model.objects.all())["retrying"] == 2
