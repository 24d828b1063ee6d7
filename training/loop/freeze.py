"""Freezing a prefix of ResNet-50 for fine-tuning.

Levels, each freezing everything before it too:

- ``none``: everything trains.
- ``stem``: ``conv1`` and ``bn1``, the layers "up to the first fork" (the first residual block
  branches after the stem): Chabot et al.'s choice and the default.
- ``layer1``, ``layer2``, ``layer3``: the stem plus residual stages up to that one.

Invariants after :func:`apply_freeze`:
- Frozen parameters have ``requires_grad=False``; every other parameter has ``True``.
- Frozen BatchNorm layers stay in eval mode whatever ``model.train()`` is called with, so their
  running mean and variance (ImageNet's statistics) never move and they normalise with them.
- The frozen prefix runs without gradients: its parameters need none and the input needs none,
  so autograd records nothing there (no activations kept, no backward through it). This is
  what makes freezing cheaper, not only safer.
- The model's class and ``state_dict`` keys are untouched, so checkpoints stay plain torchvision
  ResNet-50 weights that :mod:`inference.engine.checkpoint` loads.
"""

from __future__ import annotations

import types

from torch import nn

FREEZE_LEVELS = ("none", "stem", "layer1", "layer2", "layer3")
_PREFIXES = {
    "none": (),
    "stem": ("conv1", "bn1"),
    "layer1": ("conv1", "bn1", "layer1"),
    "layer2": ("conv1", "bn1", "layer1", "layer2"),
    "layer3": ("conv1", "bn1", "layer1", "layer2", "layer3"),
}


def frozen_modules(model: nn.Module, level: str) -> list[nn.Module]:
    """The top-level modules that ``level`` freezes."""
    if level not in _PREFIXES:
        raise ValueError(
            f"unknown freeze level {level!r}; choose one of {', '.join(FREEZE_LEVELS)}"
        )
    return [getattr(model, name) for name in _PREFIXES[level]]


def _train_keeping_frozen_eval(self: nn.Module, mode: bool = True) -> nn.Module:
    # nn.Module.train, then put the frozen prefix back in eval (BatchNorm uses running stats).
    nn.Module.train(self, mode)
    for m in self._bearsite_frozen:  # noqa: SLF001 - set by apply_freeze
        m.eval()
    return self


def apply_freeze(model: nn.Module, level: str) -> nn.Module:
    """Freeze ``model``'s prefix up to ``level`` in place (idempotent; a new level replaces the
    old one) and return it.

    ``train()`` is overridden on this instance rather than by subclassing or swapping in
    FrozenBatchNorm2d, because either would change the class or the ``state_dict`` keys that the
    checkpoint format relies on.
    """
    frozen = frozen_modules(model, level)
    frozen_ids = {id(p) for m in frozen for p in m.parameters()}
    for p in model.parameters():
        p.requires_grad_(id(p) not in frozen_ids)
    model._bearsite_frozen = frozen  # plain attribute: a list is not registered as a submodule
    model.freeze_level = level
    model.train = types.MethodType(_train_keeping_frozen_eval, model)
    model.train(model.training)
    return model


def trainable_parameters(model: nn.Module) -> list[nn.Parameter]:
    return [p for p in model.parameters() if p.requires_grad]
