"""Synthetic demo data: an aerial sea-ice survey with polar bears and Web-style photos.

Django-free (numpy + Pillow). See ``labeling.demo.synth`` for the public API.
"""

from labeling.demo.synth import (
    DemoBear,
    DemoFrame,
    DemoManifest,
    WebPhoto,
    generate_demo_survey,
    load_manifest,
    render_frame,
)

__all__ = [
    "DemoBear",
    "DemoFrame",
    "DemoManifest",
    "WebPhoto",
    "generate_demo_survey",
    "load_manifest",
    "render_frame",
]
