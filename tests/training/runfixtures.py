"""Small labelled surveys and tiny training settings for the training-run tests.

Frames are 256 px JPEGs (the ingest minimum is 224); the survey's ground sample distance makes a
bear 4 px long, so 32 px training tiles hold one comfortably and ResNet-50 runs fast on them.
"""

from __future__ import annotations

import hashlib
import io

import numpy as np
import torch
from django.core.files.base import ContentFile
from django.core.files.storage import default_storage
from django.utils import timezone
from PIL import Image

from inference import services as inference_services
from inference.engine.checkpoint import Checkpoint, Preprocessing, build_model, save_checkpoint
from inference.models import ModelVersion
from labeling.models import LabelItem, QueueKind, SurveyImage, WebImage
from tests.inference.jobfixtures import survey_with_frames
from training.dataset import TRAIN, VAL, frame_split

TINY_CONFIG = {
    "epochs": 2,
    "lr": 1e-3,
    "batch_size": 8,
    "min_positives": 2,
    "freeze": "none",
    "optimizer": "adamw",
    "tile_size": 32,
    "precision": "fp32",
    "num_workers": 0,
}


def bear_item(
    frame: SurveyImage,
    x: float,
    y: float,
    *,
    kind: str = QueueKind.CANDIDATES,
    when=None,
    tile: int = 32,
) -> LabelItem:
    x0, y0 = int(max(0, x - tile / 2)), int(max(0, y - tile / 2))
    return LabelItem.objects.create(
        kind=kind,
        survey_id=frame.survey_id,
        image=frame,
        x0=x0,
        y0=y0,
        x1=x0 + tile,
        y1=y0 + tile,
        centre_x=x,
        centre_y=y,
        score=0.9,
        status=LabelItem.Status.RETIRED,
        consensus=LabelItem.Answer.BEAR,
        consensus_points=[[x, y]],
        retired_at=when or timezone.now(),
    )


def empty_item(
    frame: SurveyImage,
    x0: int,
    y0: int,
    *,
    kind: str = QueueKind.CANDIDATES,
    when=None,
    tile: int = 32,
) -> LabelItem:
    return LabelItem.objects.create(
        kind=kind,
        survey_id=frame.survey_id,
        image=frame,
        x0=x0,
        y0=y0,
        x1=x0 + tile,
        y1=y0 + tile,
        score=0.7,
        status=LabelItem.Status.RETIRED,
        consensus=LabelItem.Answer.NO_BEAR,
        retired_at=when or timezone.now(),
    )


def labelled_survey(*, frames: int = 8, name: str = "Labelled survey"):
    """A survey whose frames each hold one confirmed bear and one rejected candidate, with bear
    frames on both sides of the split (the tests set BEARSITE_VAL_PERCENT to 50)."""
    survey = survey_with_frames(frames, size=(256, 256), name=name)
    images = list(survey.images.order_by("pk"))
    splits = {frame_split(f.sha256) for f in images}
    assert splits == {TRAIN, VAL}, "the test frames must fall on both sides of the split"
    for i, frame in enumerate(images):
        bear_item(frame, 60 + 10 * i, 80)
        empty_item(frame, 150, 150)
    return survey, images


def web_photo(
    *,
    box=(40, 30, 120, 70),
    size=(200, 160),
    author: str = "A. Photographer",
    colour=(220, 40, 40),
    seed: int = 0,
) -> WebImage:
    """A Web photo: grey noise with a coloured rectangle where the "bear" is."""
    rng = np.random.default_rng(seed)
    w, h = size
    pixels = rng.integers(90, 140, size=(h, w, 3), dtype=np.uint8)
    x0, y0, x1, y1 = box
    pixels[y0:y1, x0:x1] = colour
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="PNG")
    data = buf.getvalue()
    sha = hashlib.sha256(data).hexdigest()
    name = default_storage.save(f"web/{sha}.png", ContentFile(data))
    return WebImage.objects.create(
        file=name,
        original_name=f"photo{seed}.png",
        sha256=sha,
        phash=sha[:16],
        format="PNG",
        width=w,
        height=h,
        author=author,
        source_url="https://example.org/p.png",
    )


def usable_web_item(web: WebImage, boxes) -> LabelItem:
    return LabelItem.objects.create(
        kind=QueueKind.WEB,
        web_image=web,
        status=LabelItem.Status.RETIRED,
        consensus=LabelItem.Answer.USABLE,
        consensus_boxes=[list(b) for b in boxes],
        retired_at=timezone.now(),
    )


def tiny_checkpoint(path, seed: int = 0) -> str:
    torch.manual_seed(seed)
    ckpt = Checkpoint(
        state_dict=build_model().state_dict(),
        init="random",
        preprocessing=Preprocessing(tile_size=32),
    )
    save_checkpoint(ckpt, path)
    return str(path)


def registered(
    tmp_path, name: str, *, active: bool = False, threshold: float = 0.5
) -> ModelVersion:
    version = inference_services.model_register(
        checkpoint_path=tiny_checkpoint(tmp_path / f"{name}.pt"),
        name=name,
        review_threshold=threshold,
    )
    if active:
        inference_services.model_promote(version=version, start_inference=False)
        version.refresh_from_db()
    return version
