"""The Celery app. Queues by resource: ``cpu`` (ingest, crops, exports) and ``gpu`` (inference,
training). Nothing here touches CUDA: the GPU worker's child loads the model lazily."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bearsite.settings")

app = Celery("bearsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
