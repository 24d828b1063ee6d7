"""Pages: the runs list with the launch form, a run's live page, its JSON, cancel, snapshot."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required, user_passes_test
from django.core.files.storage import default_storage
from django.http import FileResponse, Http404, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from inference.services import IllegalTransition
from training import selectors, services
from training.forms import LaunchForm
from training.models import TrainingRun

staff_required = user_passes_test(lambda u: u.is_active and u.is_staff)


@login_required
@staff_required
def run_list(request):
    form = LaunchForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            run = services.run_create(
                trigger=TrainingRun.Trigger.ADMIN,
                config=data["config"],
                base_version=data["base_version"],
                margin=data["margin"],
                created_by=request.user,
            )
        except IllegalTransition as exc:
            messages.error(request, str(exc))
        except ValueError as exc:
            form.add_error(None, str(exc))
        else:
            messages.success(request, f"Training run #{run.pk} queued for the GPU worker.")
            return redirect(run)
    return render(
        request,
        "training/run_list.html",
        {
            "runs": selectors.runs_recent(),
            "form": form,
            "busy": selectors.run_busy(),
            "retrain": selectors.retrain_status(),
        },
    )


@login_required
@staff_required
def run_detail(request, pk: int):
    run = get_object_or_404(
        TrainingRun.objects.select_related("base_version", "produced_version", "compared_version"),
        pk=pk,
    )
    return render(
        request,
        "training/run_detail.html",
        {
            "run": run,
            "progress": selectors.run_progress(run=run),
            "metrics": selectors.run_metrics(run=run),
        },
    )


@login_required
@staff_required
def run_status(request, pk: int):
    run = get_object_or_404(TrainingRun.objects.select_related("produced_version"), pk=pk)
    data = selectors.run_progress(run=run)
    if run.is_finished:
        data["metrics"] = selectors.run_metrics(run=run)
    return JsonResponse(data)


@login_required
@staff_required
@require_POST
def run_cancel(request, pk: int):
    run = get_object_or_404(TrainingRun, pk=pk)
    try:
        services.run_cancel(run=run, user=request.user)
        messages.success(request, "Cancel requested: the run stops after its current step.")
    except IllegalTransition as exc:
        messages.error(request, str(exc))
    return redirect(run)


@login_required
@staff_required
def run_snapshot(request, pk: int):
    """The full list of tiles the run trained and validated on (JSON)."""
    run = get_object_or_404(TrainingRun, pk=pk)
    if not run.snapshot_file or not default_storage.exists(run.snapshot_file.name):
        raise Http404("This run has no snapshot yet.")
    return FileResponse(
        default_storage.open(run.snapshot_file.name, "rb"),
        as_attachment=True,
        filename=f"training-run-{run.pk}-snapshot.json",
        content_type="application/json",
    )
