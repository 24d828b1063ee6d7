from rest_framework import serializers

from labeling.models import BatchItem, IngestBatch, Survey, SurveyImage, WebImage


class SurveySerializer(serializers.ModelSerializer):
    effective_gsd_cm = serializers.FloatField(read_only=True, allow_null=True)
    animal_length_px = serializers.FloatField(read_only=True, allow_null=True)
    min_tile_overlap_px = serializers.IntegerField(read_only=True)

    class Meta:
        model = Survey
        fields = [
            "id", "name", "description", "region", "start_date", "end_date", "camera", "aircraft",
            "altitude_m", "focal_length_mm", "pixel_pitch_um", "gsd_cm", "animal_length_m",
            "effective_gsd_cm", "animal_length_px", "min_tile_overlap_px", "archived",
            "created_at",
        ]
        read_only_fields = ["created_at"]

    def validate(self, attrs):
        instance = Survey(**{**({} if self.instance is None else {
            f: getattr(self.instance, f) for f in self.Meta.fields
            if f not in ("id", "effective_gsd_cm", "animal_length_px", "min_tile_overlap_px", "created_at")
        }), **attrs})
        try:
            instance.clean()
        except Exception as exc:  # ValidationError from the model
            raise serializers.ValidationError(getattr(exc, "message_dict", None) or exc.messages)
        return attrs


class SurveyImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = SurveyImage
        fields = [
            "id", "survey", "original_name", "sha256", "size_bytes", "format", "width", "height",
            "orientation", "captured_at", "latitude", "longitude", "altitude_m", "camera",
            "ingested_at",
        ]


class WebImageSerializer(serializers.ModelSerializer):
    class Meta:
        model = WebImage
        fields = [
            "id", "original_name", "sha256", "phash", "format", "width", "height", "source_url",
            "source_page", "licence", "author", "near_duplicate_of", "curation", "created_at",
        ]


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


class UploadSerializer(serializers.Serializer):
    files = serializers.ListField(child=serializers.FileField(), allow_empty=False)


class UrlImportSerializer(serializers.Serializer):
    csv_file = serializers.FileField()
