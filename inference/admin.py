from django.contrib import admin

from inference.models import FrameError, FrameScore, InferenceJob, ModelEvent, ModelVersion


@admin.register(ModelVersion)
class ModelVersionAdmin(admin.ModelAdmin):
    list_display = ["pk", "name", "status", "init", "review_threshold", "created_at"]
    list_filter = ["status", "init"]
    readonly_fields = ["sha256", "checkpoint", "class_names", "preprocessing", "created_at"]


@admin.register(ModelEvent)
class ModelEventAdmin(admin.ModelAdmin):
    list_display = ["created_at", "version", "action", "previous_active", "user"]
    list_filter = ["action"]


@admin.register(InferenceJob)
class InferenceJobAdmin(admin.ModelAdmin):
    list_display = ["pk", "survey", "model_version", "status", "frames_done", "frames_failed", "frames_total"]
    list_filter = ["status"]
    raw_id_fields = ["images"]


@admin.register(FrameScore)
class FrameScoreAdmin(admin.ModelAdmin):
    list_display = ["image", "model_version", "rows", "cols", "max_score", "n_candidates"]
    raw_id_fields = ["image", "job"]
    exclude = ["grid"]


@admin.register(FrameError)
class FrameErrorAdmin(admin.ModelAdmin):
    list_display = ["job", "image", "message"]
    raw_id_fields = ["image"]
