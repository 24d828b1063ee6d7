"""Celery tasks: ids in, one service call. ``training.run`` goes to the gpu queue (settings)."""

from celery import shared_task

from training import services


@shared_task(name="training.run")
def run(run_id: int) -> None:
    services.run_execute(run_id=run_id)


@shared_task(name="training.maybe_retrain")
def maybe_retrain() -> None:
    services.retrain_if_due()
