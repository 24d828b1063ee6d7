"""Small registered models and frames for job tests (shared by the inference test modules)."""

from __future__ import annotations

import io

import numpy as np
import torch

from inference import services
from inference.engine.checkpoint import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    Checkpoint,
    build_model,
    save_checkpoint,
)
from labeling import services as labeling_services
from labeling.models import IngestBatch, Survey
from tests.labeling import images as img


def spread_model(seed: int = 0):
    """A random ResNet-50 whose P(bear) varies across tiles instead of saturating at 0 or 1.

    Random weights give near-constant logits with a large offset; the head is re-centred and
    scaled on a few sample tiles, so scores spread around 0.5 and thresholds can split them."""
    torch.manual_seed(seed)
    model = build_model("resnet50", num_classes=2).eval()
    tiles = []
    for i in range(4):  # tiles like the ones the tests score: the same image generator
        frame = np.asarray(img.frame_image(444, 444, seed=500 + i), dtype=np.float32) / 255
        for y, x in ((0, 0), (220, 220)):
            tiles.append(frame[y : y + 224, x : x + 224])
    mean, std = np.array(IMAGENET_MEAN, np.float32), np.array(IMAGENET_STD, np.float32)
    sample = torch.from_numpy(((np.stack(tiles) - mean) / std).transpose(0, 3, 1, 2).copy())
    body = torch.nn.Sequential(*list(model.children())[:-1])
    with torch.no_grad():
        feats = body(sample).flatten(1)
        direction = model.fc.weight[1] - model.fc.weight[0]
        logits = feats @ direction
        scale = 2.0 / float(logits.std().clamp_min(1e-6))
        model.fc.weight.zero_()
        model.fc.bias.zero_()
        model.fc.weight[1] = direction * scale
        model.fc.bias[1] = -float(logits.mean()) * scale
    return model


def register_model(tmp_path, *, threshold: float = 0.5, name: str = "test-model", seed: int = 0):
    model = spread_model(seed)
    ckpt = Checkpoint(state_dict=model.state_dict(), init="random")
    path = tmp_path / f"{name}.pt"
    save_checkpoint(ckpt, path)
    return services.model_register(checkpoint_path=path, name=name, review_threshold=threshold)


def survey_with_frames(n: int, *, size=(444, 444), corrupt: tuple[int, ...] = (), name="Job survey") -> Survey:
    # gsd 50 cm/px: a 2 m animal is 4 px, so a 444 px frame is 2 x 2 tiles (origins 0 and 220)
    survey = Survey.objects.create(name=name, gsd_cm=50.0)
    files = []
    for i in range(n):
        files.append(
            labeling_services.IncomingFile(
                name=f"f{i:03d}.jpg", fileobj=io.BytesIO(img.jpeg_bytes(*size, seed=500 + i)), size=None
            )
        )
    batch = labeling_services.batch_create(
        target=IngestBatch.Target.SURVEY, source=IngestBatch.Source.API, survey=survey, files=files,
        enqueue=False,
    )
    for item in batch.items.all():
        labeling_services.item_ingest(item_id=item.pk)
    for i in corrupt:
        # Damage the stored file after ingest (a disk error, a file replaced by mistake).
        frame = survey.images.get(original_name=f"f{i:03d}.jpg")
        with open(frame.file.path, "r+b") as fh:
            data = fh.read()
            fh.seek(0)
            fh.truncate()
            fh.write(data[: len(data) // 3])
    return survey
