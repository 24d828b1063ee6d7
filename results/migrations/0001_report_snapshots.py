# Report snapshots and the per-survey data-change marker (results.models).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ('inference', '0001_registry_jobs_scores'),
        ('labeling', '0001_initial'),  # Survey; nothing later is needed
    ]

    operations = [
        migrations.CreateModel(
            name='SurveyChange',
            fields=[
                ('survey', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, primary_key=True, related_name='report_change', serialize=False, to='labeling.survey')),
                ('generation', models.BigIntegerField(default=0)),
                ('changed_at', models.DateTimeField(blank=True, null=True)),
            ],
        ),
        migrations.CreateModel(
            name='ReportSnapshot',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('method', models.CharField(max_length=20)),
                ('is_default', models.BooleanField(default=False)),
                ('data', models.JSONField()),
                ('computed_at', models.DateTimeField()),
                ('compute_ms', models.PositiveIntegerField(default=0)),
                ('source_marker', models.BigIntegerField(help_text="the survey's data generation read before the figures were computed")),
                ('refresh_requested_at', models.DateTimeField(blank=True, null=True)),
                ('model_version', models.ForeignKey(blank=True, null=True, on_delete=django.db.models.deletion.CASCADE, related_name='+', to='inference.modelversion')),
                ('survey', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='report_snapshots', to='labeling.survey')),
            ],
            options={
                'constraints': [models.UniqueConstraint(condition=models.Q(('model_version__isnull', False)), fields=('survey', 'model_version', 'method'), name='one_snapshot_per_version_method'), models.UniqueConstraint(condition=models.Q(('model_version__isnull', True)), fields=('survey', 'method'), name='one_unscored_snapshot_per_method'), models.UniqueConstraint(condition=models.Q(('is_default', True)), fields=('survey', 'method'), name='one_default_snapshot_per_method')],
            },
        ),
    ]
