from django.core.exceptions import ValidationError as DjangoValidationError
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from labeling.models import (
    BatchItem,
    IngestBatch,
    LabelItem,
    Survey,
    SurveyImage,
    Team,
    UnusableReason,
    WebImage,
)


class SurveySerializer(serializers.ModelSerializer):
    effective_gsd_cm = serializers.FloatField(read_only=True, allow_null=True)
    animal_length_px = serializers.FloatField(read_only=True, allow_null=True)
    min_tile_overlap_px = serializers.IntegerField(read_only=True)
    team = serializers.PrimaryKeyRelatedField(
        queryset=Team.objects.all(), required=False, allow_null=True,
        help_text="only this team's volunteers see the survey; null: everyone",
    )

    class Meta:
        model = Survey
        fields = [
            "id", "name", "description", "region", "start_date", "end_date", "camera", "aircraft",
            "altitude_m", "focal_length_mm", "pixel_pitch_um", "gsd_cm", "animal_length_m",
            "effective_gsd_cm", "animal_length_px", "min_tile_overlap_px", "team", "archived",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate(self, attrs):
        computed = ("id", "effective_gsd_cm", "animal_length_px", "min_tile_overlap_px", "created_at")
        current = {} if self.instance is None else {
            f: getattr(self.instance, f) for f in self.Meta.fields if f not in computed
        }
        try:
            Survey(**{**current, **attrs}).clean()
        except DjangoValidationError as exc:
            raise serializers.ValidationError(
                getattr(exc, "message_dict", None) or exc.messages
            ) from exc
        return attrs


class SurveyImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = SurveyImage
        fields = [
            "id", "survey", "batch", "original_name", "sha256", "size_bytes", "format", "width",
            "height", "orientation", "captured_at", "latitude", "longitude", "altitude_m", "camera",
            "ingested_at",
        ]


class DetectionSerializer(serializers.Serializer):
    pk = serializers.IntegerField(help_text="the candidate's label item")
    x0 = serializers.IntegerField()
    y0 = serializers.IntegerField()
    x1 = serializers.IntegerField()
    y1 = serializers.IntegerField()
    score = serializers.FloatField(allow_null=True)
    centre_x = serializers.FloatField(allow_null=True)
    centre_y = serializers.FloatField(allow_null=True)
    status = serializers.CharField()
    consensus = serializers.CharField(help_text="empty until the volunteers have decided")


class ScoreSummarySerializer(serializers.Serializer):
    """Documentation of ``inference.selectors.image_score_summary``."""

    model_version = serializers.IntegerField()
    model_name = serializers.CharField()
    threshold = serializers.FloatField()
    tile = serializers.IntegerField()
    rows = serializers.IntegerField()
    cols = serializers.IntegerField()
    max_score = serializers.FloatField()
    tiles_above_threshold = serializers.IntegerField()
    candidates = serializers.IntegerField()
    scored_at = serializers.DateTimeField()
    grid_url = serializers.CharField(help_text="the whole score grid (the heat map's JSON)")
    detections = DetectionSerializer(many=True)


class SurveyImageDetailSerializer(SurveyImageSerializer):
    scores = serializers.SerializerMethodField(
        help_text="the score grid by the active model (else the newest) and its detections; "
        "null while the frame is unscored"
    )

    class Meta(SurveyImageSerializer.Meta):
        fields = [*SurveyImageSerializer.Meta.fields, "scores"]

    @extend_schema_field(ScoreSummarySerializer(allow_null=True))
    def get_scores(self, obj):
        # The API is where the apps meet: a frame's scores belong to the inference app.
        from inference.selectors import image_score_summary

        return image_score_summary(image=obj)


def _curation_item(obj: WebImage) -> LabelItem | None:
    items = list(obj.label_items.all())  # prefetched by the viewset; at most one per image
    return items[0] if items else None


class WebImageSerializer(serializers.ModelSerializer):
    label_item = serializers.SerializerMethodField()
    curated_boxes = serializers.SerializerMethodField(
        help_text="[[x0, y0, x1, y1], ...] in image pixels, once judged usable"
    )
    unusable_reason = serializers.SerializerMethodField()

    class Meta:
        model = WebImage
        fields = [
            "id", "original_name", "sha256", "phash", "format", "width", "height", "source_url",
            "source_page", "licence", "author", "near_duplicate_of", "batch", "curation",
            "curated_boxes", "unusable_reason", "label_item", "created_at",
        ]

    def get_label_item(self, obj) -> int | None:
        item = _curation_item(obj)
        return None if item is None else item.pk

    @extend_schema_field(
        serializers.ListField(child=serializers.ListField(child=serializers.FloatField()))
    )
    def get_curated_boxes(self, obj):
        item = _curation_item(obj)
        return [] if item is None else item.consensus_boxes or []

    def get_unusable_reason(self, obj) -> str:
        item = _curation_item(obj)
        return "" if item is None else item.consensus_reason


class CurationSerializer(serializers.Serializer):
    """A reviewer's curation of a Web image (checked like a vote on the curation page)."""

    curation = serializers.ChoiceField(
        choices=[WebImage.Curation.USABLE, WebImage.Curation.UNUSABLE]
    )
    boxes = serializers.ListField(
        child=serializers.ListField(child=serializers.FloatField(), min_length=4, max_length=4),
        required=False, default=list, max_length=50,
        help_text="usable: [[x0, y0, x1, y1], ...] around each bear, in image pixels",
    )
    unusable_reason = serializers.ChoiceField(
        choices=UnusableReason.choices, required=False, default="", allow_blank=True,
        help_text="unusable: why",
    )


class BatchItemSerializer(serializers.ModelSerializer):
    class Meta:
        model = BatchItem
        fields = ["id", "name", "url", "status", "error_code", "error", "survey_image", "web_image"]


class IngestBatchSerializer(serializers.ModelSerializer):
    progress = serializers.SerializerMethodField()

    class Meta:
        model = IngestBatch
        fields = ["id", "target", "source", "survey", "status", "created_at", "finished_at", "progress"]

    def get_progress(self, obj) -> dict:
        from labeling.selectors import batch_progress, progress_from_counts

        if hasattr(obj, "n_pending"):  # annotated by the viewset's queryset
            counts = {s: getattr(obj, f"n_{s}") for s in BatchItem.Status.values}
            return progress_from_counts(batch=obj, counts=counts)
        data = batch_progress(batch=obj)
        data.pop("errors")
        return data


class AcceptedSerializer(serializers.Serializer):
    """A long operation was queued: poll ``url`` for its progress."""

    batch = serializers.IntegerField()
    url = serializers.URLField()


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)


class UrlImportSerializer(serializers.Serializer):
    csv_file = serializers.FileField()


class ConsensusSerializer(serializers.ModelSerializer):
    """A decided item: the answer the votes (or a reviewer) settled on."""

    queue = serializers.CharField(source="kind")
    label = serializers.CharField(source="consensus")
    box = serializers.SerializerMethodField(help_text="the tile, frame pixels")
    points = serializers.JSONField(source="consensus_points", help_text="bears, frame pixels")
    boxes = serializers.JSONField(source="consensus_boxes", help_text="bears, Web image pixels")
    reason = serializers.CharField(source="consensus_reason")

    class Meta:
        model = LabelItem
        fields = [
            "id", "queue", "survey", "image", "web_image", "model_version_id", "box", "score",
            "label", "points", "boxes", "reason", "votes_count", "is_gold", "retired_at",
        ]
        read_only_fields = fields

    def get_box(self, obj) -> list[int]:
        return [obj.x0, obj.y0, obj.x1, obj.y1]
