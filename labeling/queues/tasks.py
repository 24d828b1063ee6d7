from celery import shared_task

from labeling.queues import services


@shared_task(name="labeling.release_expired_leases")
def release_expired_leases() -> int:
    """Beat, every minute (migration 0005; editable under Periodic tasks)."""
    return services.leases_release_expired()
