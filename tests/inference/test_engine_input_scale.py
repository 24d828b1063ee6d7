"""A model that sees its tiles averaged down (``input_scale``): the checkpoint carries the
factor, the predictor applies it exactly as the plain network on box-averaged tiles would, and
training records it in what it writes."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference.engine.checkpoint import (
    CheckpointError,
    Preprocessing,
    build_model,
    load_checkpoint,
    model_from_checkpoint,
    save_checkpoint,
)
from inference.engine.predictor import FP32_ATOL, Predictor
from inference.engine.tiling import plan_tiles
from tests.inference.engine_helpers import make_checkpoint, make_frame


def _scaled(seed: int = 0, scale: int = 2):
    ckpt = make_checkpoint(seed=seed)
    ckpt.preprocessing = Preprocessing(input_scale=scale)
    return ckpt


def test_the_factor_survives_a_checkpoint_round_trip_and_a_bad_one_is_refused(tmp_path):
    path = tmp_path / "m.pt"
    save_checkpoint(_scaled(scale=4), path)
    loaded = load_checkpoint(path)
    assert loaded.preprocessing.input_scale == 4
    assert loaded.preprocessing.network_input_px == 56
    assert type(model_from_checkpoint(loaded)).__name__ == "ScaledInputResNet"

    payload = torch.load(path, weights_only=True)
    payload["preprocessing"]["input_scale"] = 3
    torch.save(payload, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match="input_scale must be one of 1, 2, 4"):
        load_checkpoint(tmp_path / "bad.pt")
    # Older checkpoints carry no factor: full resolution.
    del payload["preprocessing"]["input_scale"]
    torch.save(payload, tmp_path / "old.pt")
    assert load_checkpoint(tmp_path / "old.pt").preprocessing.input_scale == 1


def test_the_predictor_scores_what_the_plain_network_gives_on_averaged_tiles():
    ckpt = _scaled(scale=2)
    image = make_frame(300, 500, seed=0)
    tiles = plan_tiles(300, 500, tile=224, min_overlap=0)
    got = Predictor(ckpt, device="cpu", precision="fp32", batch_size=8).predict_array(image).grid

    # Reference: the ordinary ResNet-50 with the same weights, on each tile averaged 2 x 2.
    plain = build_model("resnet50", num_classes=2)
    plain.load_state_dict(ckpt.state_dict)
    plain.eval()
    mean = torch.tensor(ckpt.preprocessing.mean).view(1, 3, 1, 1)
    std = torch.tensor(ckpt.preprocessing.std).view(1, 3, 1, 1)
    crops = []
    for r in range(tiles.rows):
        for c in range(tiles.cols):
            x0, y0, x1, y1 = tiles.box(r, c)
            crops.append(torch.from_numpy(image[y0:y1, x0:x1].copy()).permute(2, 0, 1))
    x = (torch.stack(crops).float() / 255 - mean) / std
    with torch.no_grad():
        want = plain(F.avg_pool2d(x, 2)).softmax(1)[:, ckpt.positive_index]
    want = want.numpy().reshape(tiles.shape)
    assert got.shape == want.shape
    assert np.abs(got - want).max() <= FP32_ATOL
    # The same weights at full resolution score differently: the factor is really applied.
    full = Predictor(make_checkpoint(seed=0), device="cpu", precision="fp32", batch_size=8)
    assert np.abs(full.predict_array(image).grid - got).max() > 10 * FP32_ATOL


def test_a_training_configuration_with_an_impossible_factor_says_why():
    from training.loop.train import TrainConfig

    assert TrainConfig(input_scale=2).problems() == []
    assert "input_scale must be one of 1, 2, 4, got 3" in "; ".join(
        TrainConfig(input_scale=3).problems()
    )
    assert "tile_size must be a multiple of input_scale (4), got 226" in "; ".join(
        TrainConfig(input_scale=4, tile_size=226).problems()
    )
