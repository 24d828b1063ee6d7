"""Re-queue unfinished work when a worker starts (see ``bearsite.celery``)."""

from __future__ import annotations

import logging

log = logging.getLogger(__name__)


def requeue_unfinished(queues: set[str]) -> None:
    if "cpu" in queues:
        from labeling.services import batches_requeue_unfinished

        n = batches_requeue_unfinished()
        if n:
            log.info("re-queued %d unfinished ingest batch(es)", n)
    if "gpu" in queues:
        from inference.services import jobs_requeue_unfinished

        n = jobs_requeue_unfinished()
        if n:
            log.info("re-queued %d unfinished inference job(s)", n)
        try:
            from training.services import runs_requeue_unfinished
        except ImportError:
            return
        n = runs_requeue_unfinished()
        if n:
            log.info("re-queued %d unfinished training run(s)", n)
