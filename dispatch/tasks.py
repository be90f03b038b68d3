"""Control-plane Celery tasks: beat's sweeps. (GPU workers' messages are not Celery tasks of the control
plane: `manage.py consume_lanes` takes them from each worker's own lanes and applies them in batches,
`dispatch/lane_batches.py`.) Task names are beat's schedule; they outlive modules.
"""

from __future__ import annotations

from celery import shared_task

from dispatch import leases, offers, recovery


@shared_task(name="jobqueue.dispatch_sweep")
def dispatch_sweep() -> int:
    return recovery.dispatch_sweep()


@shared_task(name="jobqueue.recover_lost_jobs")
def recover_lost_jobs() -> int:
    return leases.expire_leases()


@shared_task(name="jobqueue.fail_timed_out_jobs")
def fail_timed_out_jobs() -> int:
    return leases.fail_timed_out_jobs()


@shared_task(name=offers.OFFER_TASK)
def offer_work() -> int:
    return offers.make_pending()
