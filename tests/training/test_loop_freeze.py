"""Freezing: a frozen prefix does not move, frozen BatchNorm keeps its statistics, the rest learns."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from inference.engine.checkpoint import build_model
from training.loop.freeze import FREEZE_LEVELS, apply_freeze

PREFIX = {
    "none": [],
    "stem": ["conv1", "bn1"],
    "layer1": ["conv1", "bn1", "layer1"],
    "layer2": ["conv1", "bn1", "layer1", "layer2"],
    "layer3": ["conv1", "bn1", "layer1", "layer2", "layer3"],
}
ALL = ["conv1", "bn1", "layer1", "layer2", "layer3", "layer4", "fc"]


@pytest.fixture(autouse=True)
def one_thread():
    # Tiny tensors: on a shared 2-core box the thread pool's hand-offs cost more than they win.
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def pristine():
    torch.manual_seed(0)
    return build_model()


def snapshot(module: nn.Module) -> dict[str, torch.Tensor]:
    # Parameters and BatchNorm running statistics (buffers).
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def changed(before: dict, module: nn.Module) -> set[str]:
    return {k for k, v in module.state_dict().items() if not torch.equal(before[k], v)}


@pytest.mark.parametrize("level", FREEZE_LEVELS)
def test_frozen_prefix_stays_put_while_the_rest_learns(pristine, level):
    model = apply_freeze(copy.deepcopy(pristine), level)
    keys_before = list(pristine.state_dict())
    model.train()
    frozen = [getattr(model, n) for n in PREFIX[level]]
    # Frozen BatchNorm stays in eval mode even after model.train(); the rest trains.
    for m in frozen:
        assert all(not sub.training for sub in m.modules())
    assert model.layer4.training and model.fc.training
    before = {n: snapshot(getattr(model, n)) for n in ALL}

    seen_grad = {}
    last = frozen[-1] if frozen else None

    def record(_module, _inputs, out):
        seen_grad["req"] = out.requires_grad  # returns None: the output is left alone

    if last is not None:
        last.register_forward_hook(record)
    opt = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.1, momentum=0.0)
    x = torch.rand(4, 3, 32, 32)
    loss = nn.functional.cross_entropy(model(x), torch.tensor([0, 1, 0, 1]))
    loss.backward()
    opt.step()

    for name in ALL:
        moved = changed(before[name], getattr(model, name))
        if name in PREFIX[level]:
            assert not moved, f"{name} is frozen at level {level} but {sorted(moved)[:3]} changed"
            assert all(p.grad is None for p in getattr(model, name).parameters())
        else:
            assert moved, f"{name} should train at level {level}"
    # BatchNorm statistics right after the frozen prefix moved (they run in train mode).
    first_free = next(n for n in ALL if n not in PREFIX[level])
    bn_stats = [
        k for k in changed(before[first_free], getattr(model, first_free)) if "running" in k
    ]
    if first_free != "conv1":
        assert bn_stats
    # The frozen prefix ran without building a graph.
    if last is not None:
        assert seen_grad["req"] is False
    # The checkpoint format is untouched.
    assert list(model.state_dict()) == keys_before
    assert type(model) is type(pristine)


def test_changing_level_unfreezes_and_eval_still_means_eval(pristine):
    model = apply_freeze(copy.deepcopy(pristine), "layer3")
    apply_freeze(model, "stem")
    assert all(p.requires_grad for p in model.layer1.parameters())
    assert not any(p.requires_grad for p in model.conv1.parameters())
    model.train()
    assert model.layer1.training and not model.bn1.training
    model.eval()
    assert not any(m.training for m in model.modules())
    with pytest.raises(ValueError, match="unknown freeze level"):
        apply_freeze(model, "layer4")
