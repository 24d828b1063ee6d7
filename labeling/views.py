"""Pages for surveys, batches, frames and Web images. Views parse, check permissions, call one
service or selector, render."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required, user_passes_test
from django.core.files.storage import default_storage
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from labeling import deepzoom, selectors, services
from labeling.forms import SurveyForm, UploadForm, UrlCsvForm
from labeling.models import IngestBatch, Survey, SurveyImage, WebImage

staff_required = user_passes_test(lambda u: u.is_active and u.is_staff)


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


@login_required
def home(request):
    return redirect("survey-list")


@login_required
def survey_list(request):
    visible = selectors.surveys_visible_to(user=request.user).values("pk")
    surveys = selectors.survey_list().filter(pk__in=visible)
    return render(request, "labeling/survey_list.html", {"surveys": surveys})


@login_required
@staff_required
@require_http_methods(["GET", "POST"])
def survey_create(request):
    form = SurveyForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        survey = services.survey_create(created_by=request.user, **form.cleaned_data)
        messages.success(request, f"Survey {survey.name} created.")
        return redirect(survey)
    return render(request, "labeling/survey_form.html", {"form": form})


@login_required
def survey_detail(request, pk: int):
    survey = get_object_or_404(selectors.surveys_visible_to(user=request.user, include_archived=True), pk=pk)
    page = Paginator(selectors.survey_images(survey=survey), 60).get_page(request.GET.get("page"))
    batches = [
        selectors.batch_progress(batch=b) | {"obj": b} for b in survey.batches.all()[:10]
    ]
    return render(
        request,
        "labeling/survey_detail.html",
        {"survey": survey, "page": page, "batches": batches, "upload_form": UploadForm()},
    )


def _incoming_from_request(request) -> list[services.IncomingFile]:
    return [
        services.IncomingFile(name=f.name, fileobj=f, size=f.size)
        for f in request.FILES.getlist("files")
    ]


def _batch_created_response(request, batch: IngestBatch):
    if _wants_json(request):
        return JsonResponse(
            {"batch": batch.pk, "url": batch.get_absolute_url(),
             "status_url": f"{batch.get_absolute_url()}status/"},
            status=202,
        )
    return redirect(batch)


def _upload_error(request, message: str, back: str):
    if _wants_json(request):
        return JsonResponse({"error": message}, status=400)
    messages.error(request, message)
    return redirect(back)


@login_required
@staff_required
@require_POST
def survey_upload(request, pk: int):
    survey = get_object_or_404(Survey, pk=pk)
    incoming = _incoming_from_request(request)
    if not incoming:
        return _upload_error(request, "Choose at least one file to upload.", survey.get_absolute_url())
    batch = services.batch_create(
        target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.UPLOAD, survey=survey,
        files=incoming, created_by=request.user,
    )
    return _batch_created_response(request, batch)


@login_required
@staff_required
def batch_detail(request, pk: int):
    batch = get_object_or_404(IngestBatch.objects.select_related("survey"), pk=pk)
    return render(
        request, "labeling/batch_detail.html",
        {"batch": batch, "progress": selectors.batch_progress(batch=batch)},
    )


@login_required
@staff_required
def batch_status(request, pk: int):
    batch = get_object_or_404(IngestBatch, pk=pk)
    return JsonResponse(selectors.batch_progress(batch=batch))


@login_required
def image_detail(request, pk: int):
    image = get_object_or_404(
        selectors.images_visible_to(user=request.user).select_related("survey"), pk=pk
    )
    return render(request, "labeling/image_detail.html", {"image": image})


def _dzi_cache_dir(image: SurveyImage) -> Path:
    return Path(settings.DATA_DIR) / "deepzoom" / f"{image.pk}-{image.sha256[:16]}"


@login_required
def image_dzi(request, pk: int):
    image = get_object_or_404(selectors.images_visible_to(user=request.user), pk=pk)
    return HttpResponse(
        deepzoom.dzi_xml(image.width, image.height), content_type="application/xml"
    )


@login_required
def image_dzi_tile(request, pk: int, level: int, col: int, row: int):
    image = get_object_or_404(selectors.images_visible_to(user=request.user), pk=pk)
    try:
        data = deepzoom.render_tile(
            lambda: default_storage.open(image.file.name, "rb"),
            image.width, image.height, level, col, row, _dzi_cache_dir(image),
        )
    except ValueError:
        raise Http404("no such tile") from None
    response = HttpResponse(data, content_type="image/jpeg")
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
def web_image_list(request):
    qs = WebImage.objects.select_related("near_duplicate_of").order_by("-created_at", "pk")
    page = Paginator(qs, 60).get_page(request.GET.get("page"))
    batches = [
        selectors.batch_progress(batch=b) | {"obj": b}
        for b in IngestBatch.objects.filter(target=IngestBatch.Target.WEB)[:5]
    ]
    return render(
        request, "labeling/web_image_list.html",
        {"page": page, "batches": batches, "upload_form": UploadForm(), "csv_form": UrlCsvForm()},
    )


@login_required
@staff_required
@require_POST
def web_upload(request):
    incoming = _incoming_from_request(request)
    if not incoming:
        return _upload_error(request, "Choose at least one file to upload.", "/web/")
    batch = services.batch_create(
        target=IngestBatch.Target.WEB, source=IngestBatch.Source.UPLOAD, files=incoming,
        created_by=request.user,
    )
    return _batch_created_response(request, batch)


@login_required
@staff_required
@require_POST
def web_import_urls(request):
    form = UrlCsvForm(request.POST, request.FILES)
    if not form.is_valid():
        return _upload_error(request, "Choose a CSV file of URLs.", "/web/")
    raw = form.cleaned_data["csv_file"].read()
    try:
        text = raw.decode("utf-8-sig")
        batch = services.batch_create_from_url_csv(csv_text=text, created_by=request.user)
    except UnicodeDecodeError:
        return _upload_error(request, "The CSV must be UTF-8 text.", "/web/")
    except ValueError as exc:
        return _upload_error(request, str(exc), "/web/")
    return _batch_created_response(request, batch)
