"""Beat releases expired labelling leases every minute; the schedule is a row an admin can edit
(Django admin, Periodic tasks)."""

from django.db import migrations

TASK_NAME = "Release expired labelling leases"


def create_schedule(apps, schema_editor):
    IntervalSchedule = apps.get_model("django_celery_beat", "IntervalSchedule")
    PeriodicTask = apps.get_model("django_celery_beat", "PeriodicTask")
    every_minute, _ = IntervalSchedule.objects.get_or_create(every=1, period="minutes")
    PeriodicTask.objects.get_or_create(
        name=TASK_NAME,
        defaults={
            "task": "labeling.release_expired_leases",
            "interval": every_minute,
            "queue": "cpu",
            "description": "Deletes leases on labelling items that expired (the selector already "
            "ignores them), so the items' lease counts stay small.",
        },
    )


def remove_schedule(apps, schema_editor):
    apps.get_model("django_celery_beat", "PeriodicTask").objects.filter(name=TASK_NAME).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("labeling", "0004_roles"),
        ("django_celery_beat", "0019_alter_periodictasks_options"),
    ]

    operations = [migrations.RunPython(create_schedule, remove_schedule)]
