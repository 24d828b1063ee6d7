from django.contrib import admin, messages

from inference.services import IllegalTransition
from training import services
from training.models import TrainingRun


@admin.register(TrainingRun)
class TrainingRunAdmin(admin.ModelAdmin):
    """Runs are written by the services; the admin shows them and can cancel. Launch runs from
    the Training page, promote or roll back models from the Models page."""

    list_display = (
        "id",
        "created_at",
        "trigger",
        "status",
        "phase",
        "epoch",
        "epochs",
        "decision",
        "produced_version",
        "base_version",
    )
    list_filter = ("status", "trigger", "decision")
    search_fields = ("decision_reason", "error", "note")
    date_hierarchy = "created_at"
    actions = ["cancel_runs"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in self.model._meta.fields]

    def has_add_permission(self, request):
        return False

    @admin.action(description="Cancel the selected runs")
    def cancel_runs(self, request, queryset):
        for run in queryset:
            try:
                services.run_cancel(run=run, user=request.user)
            except IllegalTransition as exc:
                self.message_user(request, f"run #{run.pk}: {exc}", messages.WARNING)
