"""Template tags that draw the report's charts as inline SVG (see ``results.charts``).

``mark_safe`` is right here: ``results.charts`` escapes every text it writes into the SVG."""

from django import template
from django.urls import reverse
from django.utils.safestring import mark_safe

from results import charts

register = template.Library()


@register.simple_tag
def map_svg(data):
    return mark_safe(charts.map_svg(data, frame_url=lambda pk: reverse("image-detail", args=[pk])))


@register.simple_tag
def timeline_svg(data):
    return mark_safe(charts.timeline_svg(data))


@register.simple_tag
def histogram_svg(data):
    return mark_safe(charts.histogram_svg(data))


@register.simple_tag
def pr_svg(curves):
    return mark_safe(charts.pr_svg(curves))


@register.filter
def percent(value, digits: int = 1):
    """0.0123 -> "1.2 %"; None -> "–"."""
    if value is None:
        return "–"
    return f"{value * 100:.{int(digits)}f} %"
