from celery import shared_task

from labeling import services


@shared_task(name="labeling.ingest_items")
def ingest_items(item_ids: list[int]) -> None:
    services.items_ingest(item_ids=item_ids)

from labeling.queues import tasks as _queue_tasks  # noqa: F401,E402
