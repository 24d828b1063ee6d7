from django.contrib import admin

from labeling.models import BatchItem, IngestBatch, Survey, SurveyImage, WebImage


@admin.register(Survey)
class SurveyAdmin(admin.ModelAdmin):
    list_display = ["name", "region", "start_date", "gsd_cm", "animal_length_m", "archived"]
    list_filter = ["archived"]
    search_fields = ["name", "region"]


@admin.register(SurveyImage)
class SurveyImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "survey", "width", "height", "captured_at", "latitude", "longitude"]
    list_filter = ["survey", "format"]
    search_fields = ["original_name", "sha256"]
    raw_id_fields = ["batch"]


@admin.register(WebImage)
class WebImageAdmin(admin.ModelAdmin):
    list_display = ["original_name", "width", "height", "licence", "author", "curation"]
    list_filter = ["curation", "licence"]
    search_fields = ["original_name", "source_url", "author"]
    raw_id_fields = ["near_duplicate_of", "batch"]


class BatchItemInline(admin.TabularInline):
    model = BatchItem
    extra = 0
    fields = ["name", "status", "error_code", "error"]
    readonly_fields = fields
    show_change_link = True


@admin.register(IngestBatch)
class IngestBatchAdmin(admin.ModelAdmin):
    list_display = ["pk", "target", "source", "survey", "status", "created_at", "finished_at"]
    list_filter = ["target", "source", "status"]
    inlines = [BatchItemInline]


@admin.register(BatchItem)
class BatchItemAdmin(admin.ModelAdmin):
    list_display = ["name", "batch", "status", "error_code"]
    list_filter = ["status", "error_code"]
    search_fields = ["name", "url"]
    raw_id_fields = ["batch", "survey_image", "web_image"]
