from django.db.models import Count, Q
from drf_spectacular.utils import extend_schema
from rest_framework import mixins, permissions, status, viewsets
from rest_framework.decorators import action
from rest_framework.generics import get_object_or_404
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.response import Response

from labeling import selectors, services
from labeling.api.serializers import (
    BatchItemSerializer,
    IngestBatchSerializer,
    SurveyImageSerializer,
    SurveySerializer,
    UploadSerializer,
    UrlImportSerializer,
    WebImageSerializer,
)
from labeling.models import BatchItem, IngestBatch, WebImage


class IsStaffOrReadOnly(permissions.BasePermission):
    def has_permission(self, request, view):
        if request.method in permissions.SAFE_METHODS:
            return bool(request.user and request.user.is_authenticated)
        return bool(request.user and request.user.is_staff)


def _accepted(batch: IngestBatch, request) -> Response:
    return Response(
        {"batch": batch.pk,
         "url": request.build_absolute_uri(f"/api/batches/{batch.pk}/")},
        status=status.HTTP_202_ACCEPTED,
    )


def _incoming(files) -> list[services.IncomingFile]:
    return [services.IncomingFile(name=f.name, fileobj=f, size=f.size) for f in files]


class SurveyViewSet(viewsets.ModelViewSet):
    serializer_class = SurveySerializer
    lookup_value_regex = "[0-9]+"
    permission_classes = [IsStaffOrReadOnly]
    filterset_fields = ["archived", "region"]
    ordering_fields = ["created_at", "name", "start_date"]
    http_method_names = ["get", "post", "patch", "put", "head", "options"]

    def get_queryset(self):
        return selectors.surveys_visible_to(user=self.request.user, include_archived=True).order_by(
            "-created_at", "-pk"
        )

    def perform_create(self, serializer):
        serializer.instance = services.survey_create(
            created_by=self.request.user, **serializer.validated_data
        )

    @extend_schema(request=UploadSerializer, responses={202: dict})
    @action(detail=True, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def batches(self, request, pk=None):
        """Upload a batch of frames (multipart, any number of `files`, zip archives too)."""
        survey = self.get_object()
        ser = UploadSerializer(data={"files": request.FILES.getlist("files")})
        ser.is_valid(raise_exception=True)
        batch = services.batch_create(
            target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.API, survey=survey,
            files=_incoming(ser.validated_data["files"]), created_by=request.user,
        )
        return _accepted(batch, request)


class SurveyImageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = SurveyImageSerializer
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["survey", "format"]
    ordering_fields = ["captured_at", "original_name", "id"]

    def get_queryset(self):
        return selectors.images_visible_to(user=self.request.user).order_by("captured_at", "pk")


class WebImageViewSet(viewsets.ReadOnlyModelViewSet):
    serializer_class = WebImageSerializer
    lookup_value_regex = "[0-9]+"
    filterset_fields = ["curation", "licence"]
    ordering_fields = ["created_at", "id"]
    permission_classes = [IsStaffOrReadOnly]

    def get_queryset(self):
        return WebImage.objects.all().order_by("-created_at", "pk")

    @extend_schema(request=UploadSerializer, responses={202: dict})
    @action(detail=False, methods=["post"], parser_classes=[MultiPartParser, FormParser])
    def upload(self, request):
        ser = UploadSerializer(data={"files": request.FILES.getlist("files")})
        ser.is_valid(raise_exception=True)
        batch = services.batch_create(
            target=IngestBatch.Target.WEB, source=IngestBatch.Source.API,
            files=_incoming(ser.validated_data["files"]), created_by=request.user,
        )
        return _accepted(batch, request)

    @extend_schema(request=UrlImportSerializer, responses={202: dict})
    @action(detail=False, methods=["post"], url_path="import-urls",
            parser_classes=[MultiPartParser, FormParser])
    def import_urls(self, request):
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
    filterset_fields = ["survey", "target", "status"]
    ordering_fields = ["created_at", "id"]

    def get_queryset(self):
        # Item counts per status in the same query as the batches: no query per batch.
        counts = {
            f"n_{status}": Count("items", filter=Q(items__status=status))
            for status in BatchItem.Status.values
        }
        return IngestBatch.objects.annotate(**counts).order_by("-created_at", "-pk")

    @extend_schema(responses=BatchItemSerializer(many=True))
    @action(detail=True, methods=["get"])
    def items(self, request, pk=None):
        # Not get_object(): the list filters (status=) would apply to the batch itself.
        batch = get_object_or_404(self.get_queryset(), pk=pk)
        qs = batch.items.all().order_by("pk")
        status_filter = request.query_params.get("status")
        if status_filter:
            qs = qs.filter(status=status_filter)
        page = self.paginate_queryset(qs)
        return self.get_paginated_response(BatchItemSerializer(page, many=True).data)
