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


# --- Labelling queues ----------------------------------------------------------------------------

from labeling.models import (  # noqa: E402
    InviteCode,
    LabelItem,
    LabellingSettings,
    Lease,
    Skip,
    SurveyQueue,
    Team,
    VolunteerProfile,
    Vote,
)


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name"]
    search_fields = ["name"]
    filter_horizontal = ["members"]


@admin.register(SurveyQueue)
class SurveyQueueAdmin(admin.ModelAdmin):
    list_display = ["survey", "kind", "enabled", "votes_needed", "agree_votes", "no_bear_below",
                    "point_agree_lengths", "weight_by_accuracy"]
    list_editable = ["enabled", "votes_needed", "agree_votes", "no_bear_below"]
    list_filter = ["kind", "enabled", "survey"]

    def save_model(self, request, obj, form, change):
        from labeling.queues.selectors import forget_queue_setting
        from labeling.queues.services import apply_queue_setting

        super().save_model(request, obj, form, change)
        forget_queue_setting(survey_id=obj.survey_id, kind=obj.kind)
        # A new number of votes applies to the queue's open items at once.
        apply_queue_setting(setting=obj)


class VoteInline(admin.TabularInline):
    model = Vote
    extra = 0
    fields = ["user", "answer", "points", "boxes", "unusable_reason", "is_review",
              "is_gold_answer", "gold_correct", "duration_ms", "created_at", "undone_at"]
    readonly_fields = fields
    can_delete = False


@admin.register(LabelItem)
class LabelItemAdmin(admin.ModelAdmin):
    list_display = ["pk", "kind", "survey", "status", "consensus", "votes_count", "votes_needed",
                    "score", "priority", "is_gold", "created_at"]
    list_filter = ["kind", "status", "is_gold", "consensus", "survey"]
    raw_id_fields = ["image", "web_image", "survey"]
    readonly_fields = ["votes_count", "retired_at", "created_at", "random_key"]
    inlines = [VoteInline]
    actions = ["make_gold_from_consensus"]

    @admin.action(description="Make gold items of the selected retired items (their consensus is the answer)")
    def make_gold_from_consensus(self, request, queryset):
        from labeling.queues import services

        n = 0
        for item in queryset.filter(status=LabelItem.Status.RETIRED).exclude(consensus="unsure"):
            services.item_mark_gold(user=request.user, item_id=item.pk, answer=item.consensus,
                                    points=item.consensus_points)
            n += 1
        self.message_user(request, f"{n} gold item{'s' if n != 1 else ''} made.")


@admin.register(Vote)
class VoteAdmin(admin.ModelAdmin):
    list_display = ["pk", "item", "user", "answer", "is_review", "is_gold_answer", "gold_correct",
                    "duration_ms", "created_at", "undone_at"]
    list_filter = ["answer", "is_review", "is_gold_answer"]
    raw_id_fields = ["item", "user"]
    search_fields = ["user__username"]


@admin.register(Lease)
class LeaseAdmin(admin.ModelAdmin):
    list_display = ["item", "user", "queue", "created_at", "expires_at"]
    raw_id_fields = ["item", "user"]


@admin.register(Skip)
class SkipAdmin(admin.ModelAdmin):
    list_display = ["item", "user", "created_at"]
    raw_id_fields = ["item", "user"]


@admin.register(InviteCode)
class InviteCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "team", "uses", "max_uses", "expires_at", "active", "note", "created_at"]
    list_filter = ["active", "team"]
    search_fields = ["code", "note"]
    readonly_fields = ["uses"]


@admin.register(VolunteerProfile)
class VolunteerProfileAdmin(admin.ModelAdmin):
    list_display = ["user", "votes_total", "gold_answered", "gold_correct", "last_vote_at",
                    "tutorial_seen_at", "joined_with"]
    raw_id_fields = ["user", "joined_with"]
    search_fields = ["user__username"]


@admin.register(LabellingSettings)
class LabellingSettingsAdmin(admin.ModelAdmin):
    list_display = ["__str__", "show_model_score", "open_signup", "updated_at"]

    def save_model(self, request, obj, form, change):
        from labeling.queues.selectors import forget_labelling_settings

        obj.pk = 1
        super().save_model(request, obj, form, change)
        forget_labelling_settings()
