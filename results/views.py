"""The survey report page and its exports. Views parse, check permissions, call one service,
selector or export, render."""

from __future__ import annotations

from urllib.parse import urlencode

from django.contrib.auth.decorators import login_required, user_passes_test
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_POST

from labeling.models import Survey
from results import estimate, exports, selectors, services

staff_required = user_passes_test(lambda u: u.is_active and u.is_staff)


def int_or_none(raw: str | None) -> int | None:
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


def report_params(query) -> dict:
    """The report's query parameters, cleaned: unknown values fall back to the defaults."""
    method = query.get("method") or estimate.DEFAULT_METHOD
    sort = query.get("sort") or "score"
    return {
        "version_id": int_or_none(query.get("version")),
        "method": method if method in estimate.METHODS else estimate.DEFAULT_METHOD,
        "sort": sort if sort in selectors.FRAME_SORTS else "score",
        "descending": query.get("dir", "desc") != "asc",
        "page": query.get("page") or 1,
    }


@login_required
@staff_required
def survey_report(request, pk: int):
    """The report from its stored snapshot (see ``results.services.report_serve``); only the
    frame table's page is read live."""
    survey = get_object_or_404(Survey, pk=pk)
    params = report_params(request.GET)
    served = services.report_serve(
        survey=survey, version_id=params["version_id"], method=params["method"]
    )
    report = served.figures
    frames = selectors.frame_page(
        survey=survey,
        version_id=None if report.version is None else report.version.pk,
        per_frame=report.bears_per_frame,
        sort=params["sort"],
        descending=params["descending"],
        page=params["page"],
        count=report.counts.frames_total,
        scored=report.counts.frames_scored,
    )
    keep = {}
    if params["version_id"] is not None and report.version is not None:
        keep["version"] = report.version.pk
    if params["method"] != estimate.DEFAULT_METHOD:
        keep["method"] = params["method"]

    def url(**extra) -> str:
        return "?" + urlencode(keep | extra)

    sort_links = {
        key: url(sort=key, dir="asc" if frames.sort == key and frames.descending else "desc")
        for key in selectors.FRAME_SORTS
    }
    page_links = {
        "previous": url(
            sort=frames.sort,
            dir="desc" if frames.descending else "asc",
            page=frames.page.previous_page_number(),
        )
        if frames.page.has_previous()
        else None,
        "next": url(
            sort=frames.sort,
            dir="desc" if frames.descending else "asc",
            page=frames.page.next_page_number(),
        )
        if frames.page.has_next()
        else None,
    }
    export_query = "?" + urlencode({"version": report.version.pk}) if report.version else ""
    return render(
        request,
        "results/report.html",
        {
            "survey": survey,
            "report": report,
            "frames": frames,
            "served": served,
            "keep": keep,
            "counts": report.counts,
            "estimate": report.estimate,
            "methods": estimate.METHODS,
            "method_label": estimate.METHODS[params["method"]],
            "sort_links": sort_links,
            "page_links": page_links,
            "export_query": export_query,
        },
    )


@login_required
@staff_required
@require_POST
def survey_report_refresh(request, pk: int):
    """The "Refresh now" button: recompute the report's snapshot at once (whatever its
    freshness), then show it. Runs in the request, as the first view of a survey does: seconds at most."""
    survey = get_object_or_404(Survey, pk=pk)
    version_id = int_or_none(request.POST.get("version"))
    services.report_refresh(survey_id=survey.pk, version_id=version_id, force=True)
    keep = {}
    if version_id is not None:
        keep["version"] = version_id
    method = request.POST.get("method")
    if method in estimate.METHODS and method != estimate.DEFAULT_METHOD:
        keep["method"] = method
    target = reverse("survey-report", args=[survey.pk])
    return redirect(target + ("?" + urlencode(keep) if keep else ""))


@login_required
@staff_required
def survey_export(request, pk: int, fmt: str):
    if fmt not in exports.FORMATS:
        raise Http404("unknown export format")
    survey = get_object_or_404(Survey, pk=pk)
    return exports.export_response(
        survey=survey,
        fmt=fmt,
        version_id=int_or_none(request.GET.get("version")),
        confirmed_only=request.GET.get("confirmed") in ("1", "true", "yes"),
        include_web=request.GET.get("web", "1") not in ("0", "false", "no"),
    )
