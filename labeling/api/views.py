"""REST API of surveys, frames, Web images and ingest batches. Views parse, check permissions,
call one selector or service, and answer. Every list is paginated, filtered and ordered (the
backends in settings); the default order is deterministic (ties broken by id)."""

from django.db.models import Count, Prefetch, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from labeling import selectors, services
from labeling.api.filters import SurveyFilter, SurveyImageFilter, WebImageFilter
from labeling.api.serializers import (
    AcceptedSerializer,
    BatchItemSerializer,
    CurationSerializer,
    IngestBatchSerializer,
    SurveyImageDetailSerializer,
    SurveyImageSerializer,
    SurveySerializer,
    UploadSerializer,
    UrlImportSerializer,
    WebImageSerializer,
)
from labeling.models import BatchItem, IngestBatch, LabelItem, Survey, SurveyImage, WebImage
from labeling.queues import services as queue_services
from labeling.queues.api import CanReview


class IsStaffOrReadOnly(permissions.BasePermission):
    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.is_staff)


def _accepted(batch: IngestBatch, request) -> Response:
    url = request.build_absolute_uri(f"/api/batches/{batch.pk}/")
    return Response(
        {"batch": batch.pk, "url": url}, status=status.HTTP_202_ACCEPTED, headers={"Location": url}
    )


def _incoming(files) -> list[services.IncomingFile]:
    return [services.IncomingFile(name=f.name, fileobj=f, size=f.size) for f in files]


class SurveyViewSet(viewsets.ModelViewSet):
    """Surveys: everyone reads those they may see; survey leads (staff) create, change, archive."""

    serializer_class = SurveySerializer
    lookup_value_regex = "[0-9]+"
    permission_classes = [IsStaffOrReadOnly]
    filterset_class = SurveyFilter
    ordering_fields = ["created_at", "name", "start_date", "id"]
    http_method_names = ["get", "post", "patch", "put", "head", "options"]
    queryset = Survey.objects.none()  # for the schema; get_queryset() is per person

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return Survey.objects.none()
        return selectors.surveys_visible_to(user=self.request.user, include_archived=True).order_by(
            "-created_at", "-pk"
        )

    def perform_create(self, serializer):
        serializer.instance = services.survey_create(
            created_by=self.request.user, **serializer.validated_data
        )

    @extend_schema(request=None, responses={200: SurveySerializer})
    @action(detail=True, methods=["post"])
    def archive(self, request, pk=None):
        """Archive the survey: volunteers no longer see it or its items (nothing is deleted)."""
        survey = services.survey_archive(survey=self.get_object())
        return Response(SurveySerializer(survey).data)

    @extend_schema(request=None, responses={200: SurveySerializer})
    @action(detail=True, methods=["post"])
    def unarchive(self, request, pk=None):
        """Bring an archived survey back to the volunteers."""
        survey = services.survey_unarchive(survey=self.get_object())
        return Response(SurveySerializer(survey).data)

    @extend_schema(request=UploadSerializer, responses={202: AcceptedSerializer})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def batches(self, request, pk=None):
        """Upload a batch of frames (multipart, any number of `files`, zip archives too); answers
        202 with the batch's URL, polled for progress."""
        survey = self.get_object()
        ser = UploadSerializer(data={"files": request.FILES.getlist("files")})
        ser.is_valid(raise_exception=True)
        batch = services.batch_create(
            target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.API, survey=survey,
            files=_incoming(ser.validated_data["files"]), created_by=request.user,
        )
        return _accepted(batch, request)


class SurveyImageViewSet(viewsets.ReadOnlyModelViewSet):
    """Survey frames; one frame's detail has its scores and detections."""

    lookup_value_regex = "[0-9]+"
    filterset_class = SurveyImageFilter
    ordering_fields = ["captured_at", "original_name", "ingested_at", "size_bytes", "id"]
    queryset = SurveyImage.objects.none()  # for the schema; get_queryset() is per person

    def get_serializer_class(self):
        return SurveyImageDetailSerializer if self.action == "retrieve" else SurveyImageSerializer

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return SurveyImage.objects.none()
        return selectors.images_visible_to(user=self.request.user).order_by("captured_at", "pk")


class WebImageViewSet(mixins.UpdateModelMixin, viewsets.ReadOnlyModelViewSet):
    """Web photos: upload and URL import (staff, 202), curation (reviewers, PATCH)."""

    serializer_class = WebImageSerializer
    lookup_value_regex = "[0-9]+"
    filterset_class = WebImageFilter
    ordering_fields = ["created_at", "original_name", "id"]
    http_method_names = ["get", "post", "patch", "head", "options"]

    def get_permissions(self):
        if self.action == "partial_update":
            return [CanReview()]
        return [IsStaffOrReadOnly()]

    def get_queryset(self):
        items = LabelItem.objects.only(
            "pk", "web_image_id", "consensus_boxes", "consensus_reason"
        ).order_by("pk")
        return WebImage.objects.prefetch_related(Prefetch("label_items", queryset=items)).order_by(
            "-created_at", "-pk"
        )

    @extend_schema(
        request=CurationSerializer,
        responses={200: WebImageSerializer, 400: dict, 403: dict, 409: dict},
    )
    def partial_update(self, request, *args, **kwargs):
        """Reviewers: set the image's curation, usable (with a box around each bear) or unusable
        (with the reason). Recorded as the reviewer's final vote on the image's item."""
        image = self.get_object()
        ser = CurationSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            queue_services.web_image_curate(
                user=request.user, web_image_id=image.pk, **ser.validated_data
            )
        except queue_services.QueueError as exc:
            return Response({"detail": exc.message, "code": exc.code}, status=exc.status)
        return Response(WebImageSerializer(self.get_object()).data)

    @extend_schema(request=UploadSerializer, responses={202: AcceptedSerializer})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request):
        """Upload Web photos (multipart `files`); 202 with the batch's URL."""
        ser = UploadSerializer(data={"files": request.FILES.getlist("files")})
        ser.is_valid(raise_exception=True)
        batch = services.batch_create(
            target=IngestBatch.Target.WEB, source=IngestBatch.Source.API,
            files=_incoming(ser.validated_data["files"]), created_by=request.user,
        )
        return _accepted(batch, request)

    @extend_schema(request=UrlImportSerializer, responses={202: AcceptedSerializer})
    @action(detail=False, methods=["post"], url_path="import-urls",
            parser_classes=[MultiPartParser, FormParser])
    def import_urls(self, request):
        """Import Web photos from a CSV of URLs (url, source_page, licence, author); 202 with the
        batch's URL."""
        ser = UrlImportSerializer(data=request.data)
        ser.is_valid(raise_exception=True)
        try:
            text = ser.validated_data["csv_file"].read().decode("utf-8-sig")
            batch = services.batch_create_from_url_csv(csv_text=text, created_by=request.user)
        except UnicodeDecodeError:
            return Response({"csv_file": ["The CSV must be UTF-8 text."]}, status=400)
        except ValueError as exc:
            return Response({"csv_file": [str(exc)]}, status=400)
        return _accepted(batch, request)


class IngestBatchViewSet(mixins.RetrieveModelMixin, mixins.ListModelMixin, viewsets.GenericViewSet):
    """Ingest batches: survey leads (staff) only."""

    serializer_class = IngestBatchSerializer
    permission_classes = [permissions.IsAdminUser]
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["survey", "target", "source", "status"]
    ordering_fields = ["created_at", "finished_at", "id"]

    def get_queryset(self):
        # Item counts per status in the same query as the batches: no query per batch.
        counts = {
            f"n_{status}": Count("items", filter=Q(items__status=status))
            for status in BatchItem.Status.values
        }
        return IngestBatch.objects.annotate(**counts).order_by("-created_at", "-pk")


class BatchItemViewSet(mixins.ListModelMixin, viewsets.GenericViewSet):
    """The files (or URLs) of one batch, each with its fate: /api/batches/{batch_pk}/items/."""

    serializer_class = BatchItemSerializer
    permission_classes = [permissions.IsAdminUser]
    filterset_fields = ["status", "error_code"]
    ordering_fields = ["id", "name", "status", "finished_at"]
    queryset = BatchItem.objects.none()  # for the schema

    def get_queryset(self):
        if getattr(self, "swagger_fake_view", False):
            return BatchItem.objects.none()
        batch = get_object_or_404(IngestBatch.objects.only("pk"), pk=self.kwargs["batch_pk"])
        return batch.items.order_by("pk")
