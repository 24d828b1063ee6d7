from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, user_passes_test
from django.http import JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inference import selectors, services
from inference.models import InferenceJob, ModelVersion
from labeling.models import Survey

staff_required = user_passes_test(lambda u: u.is_active and u.is_staff)


@login_required
@staff_required
def model_list(request):
    versions = ModelVersion.objects.prefetch_related("events").all()[:200]
    return render(request, "inference/model_list.html", {"versions": versions})


@login_required
@staff_required
def model_detail(request, pk: int):
    version = get_object_or_404(ModelVersion, pk=pk)
    return render(request, "inference/model_detail.html", {"version": version, "events": version.events.all()})


@login_required
@staff_required
@require_POST
def model_promote(request, pk: int):
    version = get_object_or_404(ModelVersion, pk=pk)
    try:
        services.model_promote(version=version, user=request.user, reason=request.POST.get("reason", "promoted by an admin"))
        messages.success(request, f"{version.name} is now the active model; re-inference queued for surveys it has not scored.")
    except services.IllegalTransition as exc:
        messages.error(request, str(exc))
    return redirect("model-list")


@login_required
@staff_required
@require_POST
def model_rollback(request):
    try:
        version = services.model_rollback(user=request.user, reason=request.POST.get("reason", ""))
        messages.success(request, f"Rolled back: {version.name} is active again.")
    except services.IllegalTransition as exc:
        messages.error(request, str(exc))
    return redirect("model-list")


@login_required
@staff_required
@require_POST
def job_start(request, survey_pk: int):
    survey = get_object_or_404(Survey, pk=survey_pk)
    version_id = request.POST.get("model_version")
    version = (
        ModelVersion.objects.filter(pk=version_id).first() if version_id else selectors.active_model()
    )
    if version is None:
        messages.error(request, "There is no active model. Register one (python manage.py bootstrap_model) or promote one first.")
        return redirect(survey)
    if not survey.images.exists():
        messages.error(request, "The survey has no frames yet.")
        return redirect(survey)
    job = services.job_create(survey=survey, model_version=version, created_by=request.user)
    return redirect(job)


@login_required
@staff_required
def job_detail(request, pk: int):
    job = get_object_or_404(InferenceJob.objects.select_related("survey", "model_version"), pk=pk)
    return render(request, "inference/job_detail.html", {"job": job, "progress": selectors.job_progress(job=job)})


@login_required
@staff_required
def job_status(request, pk: int):
    job = get_object_or_404(InferenceJob, pk=pk)
    return JsonResponse(selectors.job_progress(job=job))


@login_required
@staff_required
@require_POST
def job_cancel(request, pk: int):
    job = get_object_or_404(InferenceJob, pk=pk)
    try:
        services.job_cancel(job=job, user=request.user)
        messages.success(request, "Job cancelled.")
    except services.IllegalTransition as exc:
        messages.error(request, str(exc))
    return redirect(job)


@login_required
@staff_required
@require_POST
def job_retry(request, pk: int):
    job = get_object_or_404(InferenceJob, pk=pk)
    try:
        services.job_retry_failed(job=job, user=request.user)
        messages.success(request, "Failed frames queued again.")
    except services.IllegalTransition as exc:
        messages.error(request, str(exc))
    return redirect(job)


@login_required
def image_scores(request, pk: int):
    from labeling.selectors import images_visible_to

    image = get_object_or_404(images_visible_to(user=request.user), pk=pk)
    data = selectors.image_scores(image=image)
    if data is None:
        return JsonResponse({"detail": "this frame has not been scored yet"}, status=404)
    return JsonResponse(data)
