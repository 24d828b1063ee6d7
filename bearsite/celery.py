"""The Celery app. Queues by resource: ``cpu`` (ingest, crops, exports) and ``gpu`` (inference,
training). Nothing here touches CUDA: the GPU worker's child loads the model lazily."""

import os

from celery import Celery, signals

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bearsite.settings")

app = Celery("bearsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@signals.worker_ready.connect
def recover_unfinished_work(sender=None, **kwargs):
    """Re-send the work a killed worker was holding.

    The filesystem broker forgets a message once a worker has taken it, and Redis redelivers an
    unacknowledged one only after the visibility timeout (hours). Every task is idempotent, so
    when a worker starts it re-queues the unfinished work of the queues it consumes; a duplicate
    of a task still running elsewhere finds nothing left to do.
    """
    try:
        queues = {q.name for q in sender.task_consumer.queues}
    except AttributeError:
        queues = {"cpu", "gpu"}
    from bearsite.recovery import requeue_unfinished

    requeue_unfinished(queues)
