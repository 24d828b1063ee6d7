"""Beat checks for enough new consensus labels every few minutes (training.maybe_retrain); the
schedule is a row an admin can edit or disable (Django admin, Periodic tasks)."""

from django.conf import settings
from django.db import migrations

TASK_NAME = "Retrain when enough new labels exist"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every, _ = IntervalSchedule.objects.get_or_create(
        every=settings.BEARSITE_RETRAIN_CHECK_MINUTES, period="minutes"
    )
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "training.maybe_retrain",
            "interval": every,
            "queue": "cpu",
            "description": "Queues a training run when at least BEARSITE_RETRAIN_MIN_NEW_LABELS "
            "consensus labels were reached since the last run's snapshot. Does nothing while a "
            "run is queued or running (the due run waits for the next check).",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("training", "0001_training_runs"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
