from celery import shared_task

from retention.pruning import prune_all


@shared_task(name="retention.prune_old_records", ignore_result=True)
def prune_old_records() -> dict[str, int]:
    return prune_all()
