"""REST API for the model registry and inference jobs (survey leads, i.e. staff, only). Long
operations answer 202 with the job's URL; progress is polled from it."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, serializers, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.response import Response

from inference import selectors, services
from inference.models import InferenceJob, ModelEvent, ModelVersion
from labeling.models import Survey, SurveyImage


class ModelEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelEvent
        fields = ["id", "action", "previous_active", "reason", "user", "created_at"]


class ModelVersionSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelVersion
        fields = [
            "id", "name", "arch", "sha256", "class_names", "preprocessing", "init",
            "review_threshold", "metrics", "status", "notes", "parent", "created_at",
        ]


class ReasonSerializer(serializers.Serializer):
    reason = serializers.CharField(required=False, allow_blank=True, max_length=2000)


class InferenceJobSerializer(serializers.ModelSerializer):
    percent = serializers.IntegerField(read_only=True)
    eta_seconds = serializers.FloatField(read_only=True, allow_null=True)

    class Meta:
        model = InferenceJob
        fields = [
            "id", "survey", "model_version", "status", "frames_total", "frames_done",
            "frames_failed", "tiles_scored", "tiles_per_s", "percent", "eta_seconds", "device",
            "precision", "review_threshold", "audit_rate", "uncertain_count", "created_at",
            "started_at", "finished_at",
        ]
        read_only_fields = fields


class JobCreateSerializer(serializers.Serializer):
    survey = serializers.PrimaryKeyRelatedField(queryset=Survey.objects.all())
    model_version = serializers.PrimaryKeyRelatedField(
        queryset=ModelVersion.objects.all(), required=False, allow_null=True,
        help_text="default: the active model",
        error_messages={"does_not_exist": "There is no model version {pk_value}."},
    )
    images = serializers.PrimaryKeyRelatedField(
        queryset=SurveyImage.objects.all(), many=True, required=False,
        help_text="a chosen set of frames of the survey; default: all",
    )
    audit_rate = serializers.FloatField(required=False, min_value=0.0, max_value=1.0)
    uncertain_count = serializers.IntegerField(required=False, min_value=0, max_value=100_000)

    def validate(self, attrs):
        if attrs.get("model_version") is None:
            attrs["model_version"] = selectors.active_model()
            if attrs["model_version"] is None:
                raise serializers.ValidationError({"model_version": "There is no active model; name one."})
        images = attrs.get("images")
        if images and any(i.survey_id != attrs["survey"].pk for i in images):
            raise serializers.ValidationError({"images": "Every frame must belong to the survey."})
        if not attrs["survey"].images.exists():
            raise serializers.ValidationError({"survey": "The survey has no frames yet."})
        return attrs


def _illegal(exc: Exception) -> Response:
    return Response({"detail": str(exc)}, status=status.HTTP_409_CONFLICT)


class ModelVersionViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = ModelVersionSerializer
    lookup_value_regex = "[0-9]+"
    permission_classes = [permissions.IsAdminUser]
    filterset_fields = ["status", "init", "arch", "parent"]
    ordering_fields = ["created_at", "name", "id"]

    def get_queryset(self):
        return ModelVersion.objects.all().order_by("-created_at", "-pk")

    @extend_schema(request=ReasonSerializer, responses={200: ModelVersionSerializer, 409: dict})
    @action(detail=True, methods=["post"])
    def promote(self, request, pk=None):
        """Make this version the active model (the previous one is retired); re-inference
        starts on the surveys it has not scored."""
        ser = ReasonSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            version = services.model_promote(
                version=self.get_object(), user=request.user, reason=ser.validated_data.get("reason", "")
            )
        except services.IllegalTransition as exc:
            return _illegal(exc)
        return Response(ModelVersionSerializer(version).data)

    @extend_schema(request=ReasonSerializer, responses={200: ModelVersionSerializer, 409: dict})
    @action(detail=False, methods=["post"])
    def rollback(self, request):
        """Re-activate the model that was active before the last promotion."""
        ser = ReasonSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            version = services.model_rollback(user=request.user, reason=ser.validated_data.get("reason", ""))
        except services.IllegalTransition as exc:
            return _illegal(exc)
        return Response(ModelVersionSerializer(version).data)



class ModelEventViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The registry's audit trail of one version, newest first: /api/models/{version_pk}/events/."""

    serializer_class = ModelEventSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_fields = ["action", "user"]
    ordering_fields = ["created_at", "id"]
    queryset = ModelEvent.objects.none()  # for the schema

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return ModelEvent.objects.none()
        version = get_object_or_404(ModelVersion.objects.only("pk"), pk=self.kwargs["version_pk"])
        return version.events.order_by("-created_at", "-pk")


class InferenceJobViewSet(mixins.CreateModelMixin, mixins.RetrieveModelMixin, mixins.ListModelMixin,
                          viewsets.GenericViewSet):
    serializer_class = InferenceJobSerializer
    lookup_value_regex = "[0-9]+"
    permission_classes = [permissions.IsAdminUser]
    filterset_fields = ["survey", "model_version", "status"]
    ordering_fields = ["created_at", "started_at", "finished_at", "id"]

    def get_queryset(self):
        return InferenceJob.objects.all().order_by("-created_at", "-pk")

    @extend_schema(request=JobCreateSerializer, responses={202: InferenceJobSerializer})
    def create(self, request, *args, **kwargs):
        """Start a job; answers 202 with the job, whose URL is polled for progress."""
        ser = JobCreateSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        data = ser.validated_data
        job = services.job_create(
            survey=data["survey"], model_version=data["model_version"], images=data.get("images") or None,
            created_by=request.user, audit_rate=data.get("audit_rate"),
            uncertain_count=data.get("uncertain_count"),
        )
        body = InferenceJobSerializer(job).data
        body["url"] = request.build_absolute_uri(f"/api/inference-jobs/{job.pk}/")
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    @extend_schema(request=None, responses={200: InferenceJobSerializer, 409: dict})
    @action(detail=True, methods=["post"])
    def cancel(self, request, pk=None):
        try:
            job = services.job_cancel(job=get_object_or_404(InferenceJob, pk=pk), user=request.user)
        except services.IllegalTransition as exc:
            return _illegal(exc)
        return Response(InferenceJobSerializer(job).data)

    @extend_schema(request=None, responses={202: InferenceJobSerializer, 409: dict})
    @action(detail=True, methods=["post"], url_path="retry-failed")
    def retry_failed(self, request, pk=None):
        try:
            job = services.job_retry_failed(job=get_object_or_404(InferenceJob, pk=pk), user=request.user)
        except services.IllegalTransition as exc:
            return _illegal(exc)
        body = InferenceJobSerializer(job).data
        body["url"] = request.build_absolute_uri(f"/api/inference-jobs/{job.pk}/")
        return Response(body, status=status.HTTP_202_ACCEPTED, headers={"Location": body["url"]})

    @extend_schema(responses=dict)
    @action(detail=True, methods=["get"])
    def progress(self, request, pk=None):
        return Response(selectors.job_progress(job=self.get_object()))


def register_routes(router) -> None:
    router.register("models", ModelVersionViewSet, basename="modelversion")
    router.register(
        r"models/(?P<version_pk>[0-9]+)/events", ModelEventViewSet, basename="modelevent"
    )
    router.register("inference-jobs", InferenceJobViewSet, basename="inferencejob")
