"""Give items that existed before ``random_key`` a key of their own (AddField gave them all the
same value), so the audit queue's random order covers them too."""

import random

from django.db import migrations

BATCH = 2000


def randomise(apps, schema_editor):
    LabelItem = apps.get_model("labeling", "LabelItem")
    rng = random.Random()
    ids = list(LabelItem.objects.order_by("pk").values_list("pk", flat=True))
    for start in range(0, len(ids), BATCH):
        chunk = [LabelItem(pk=pk, random_key=rng.random()) for pk in ids[start : start + BATCH]]
        LabelItem.objects.bulk_update(chunk, ["random_key"])


class Migration(migrations.Migration):
    dependencies = [("labeling", "0002_queue_rules_gold_invites")]

    operations = [migrations.RunPython(randomise, migrations.RunPython.noop)]
