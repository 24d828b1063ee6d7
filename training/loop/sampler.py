"""The balanced batch sampler: every mini-batch holds bear tiles, every negative is seen each epoch.

Bears are rare (about one per thousand survey frames), so a plain shuffle would give batches with
no bear at all. Following Chabot et al. (2022), each batch of ``batch_size`` (64) holds at least
``min_positives`` bear tiles; the positives are oversampled by cycling through them, each repeat
with its own augmentation seed so that no two copies are the same picture.

Invariants, for every epoch (tests assert each of them):

1. Every negative index appears exactly once. The negatives decide the epoch's length; hard
   negatives (rejected candidates) are therefore all seen every epoch.
2. There are ``len(self)`` batches and every batch holds exactly ``batch_size`` slots: nothing is
   dropped and no batch is short. The batch count is the smallest that (a) leaves room for
   ``min_positives`` in every batch and (b) gives every positive at least one slot:
   ``max(ceil(N / (batch_size - min_positives)), ceil((N + P) / batch_size))``.
3. Negatives are spread evenly over the batches (batch counts differ by at most one), so every
   batch holds at least ``min_positives`` positives; slots left over go to positives ("topping
   up"). :attr:`last_batch_report` says how the last batch, and the epoch, were filled.
4. Positives come from a cycle: a shuffled permutation of all positives, consumed in order and
   reshuffled when used up. Within an epoch every positive therefore appears either
   ``floor(k)`` or ``ceil(k)`` times, ``k = positive slots / P``; which ones get the extra
   appearance changes from epoch to epoch.
5. The order depends only on ``(labels, batch_size, min_positives, seed, epoch)``: the sampler
   draws from its own ``torch.Generator`` seeded with ``seed + epoch`` (set with
   :meth:`set_epoch`), never from the global RNG, so a resumed run replays the same epochs.

Each slot is an ``(index, aug_seed)`` pair: ``index`` into the dataset, ``aug_seed`` a
non-negative int that seeds that slot's augmentation (see :mod:`training.loop.augment`).
Negatives get a seed too: a run that augmented only bears would teach the network to recognise
augmentation artefacts (a slight blur from rescaling) as "bear".
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass

import torch
from torch.utils.data import Sampler

Slot = tuple[int, int]  # (dataset index, augmentation seed)
_SEED_HIGH = 2**31 - 1


@dataclass(frozen=True)
class EpochPlan:
    """How one epoch is filled; the same for every epoch of a sampler."""

    batches: int
    batch_size: int
    negatives: int
    positives: int
    negatives_per_batch: tuple[int, int]  # (fewest, most)
    positive_slots: int
    positive_repeats: float  # positive slots / distinct positives
    last_batch_negatives: int
    last_batch_positives: int
    last_batch_topped_up: int  # positives beyond min_positives in the last batch

    def as_dict(self) -> dict:
        d = asdict(self)
        d["negatives_per_batch"] = list(self.negatives_per_batch)
        return d

    def describe(self) -> str:
        return (
            f"{self.batches} batches of {self.batch_size}; {self.negatives} negatives each seen "
            f"once ({self.negatives_per_batch[0]}-{self.negatives_per_batch[1]} per batch); "
            f"{self.positive_slots} positive slots from {self.positives} bear tiles "
            f"(each used {self.positive_repeats:.2f}x on average, augmented); last batch: "
            f"{self.last_batch_negatives} negatives + {self.last_batch_positives} positives "
            f"({self.last_batch_topped_up} topped up beyond the minimum), full size, not dropped"
        )


class BalancedBatchSampler(Sampler[list[Slot]]):
    """Batches of ``(index, aug_seed)`` with at least ``min_positives`` bear tiles each.

    ``labels[i]`` is 1 for a bear tile and 0 for background. See the module docstring for the
    invariants. Use as ``DataLoader(dataset, batch_sampler=sampler)``; call
    :meth:`set_epoch` before each epoch.
    """

    def __init__(
        self,
        labels: Sequence[int],
        *,
        batch_size: int = 64,
        min_positives: int = 8,
        seed: int = 0,
    ) -> None:
        if batch_size < 2:
            raise ValueError(f"batch_size must be at least 2, got {batch_size}")
        if not 1 <= min_positives < batch_size:
            raise ValueError(
                f"min_positives must be between 1 and batch_size - 1 ({batch_size - 1}), "
                f"got {min_positives}"
            )
        bad = sorted({int(v) for v in labels} - {0, 1})
        if bad:
            raise ValueError(f"labels must be 0 (background) or 1 (bear); found {bad}")
        self.positives = [i for i, v in enumerate(labels) if int(v) == 1]
        self.negatives = [i for i, v in enumerate(labels) if int(v) == 0]
        if not self.positives:
            raise ValueError(
                "the training set holds no bear tiles (label 1); a balanced batch needs at "
                "least one to oversample"
            )
        if not self.negatives:
            raise ValueError(
                "the training set holds no background tiles (label 0); an epoch is defined by "
                "its negatives and a classifier needs both classes"
            )
        self.batch_size = batch_size
        self.min_positives = min_positives
        self.seed = seed
        self.epoch = 0
        self.plan = self._plan()

    def _plan(self) -> EpochPlan:
        n, p, b = len(self.negatives), len(self.positives), self.batch_size
        batches = max(math.ceil(n / (b - self.min_positives)), math.ceil((n + p) / b))
        lo, extra = divmod(n, batches)
        # The first `extra` batches take one more negative, so the last batch has `lo`.
        slots = batches * b - n
        return EpochPlan(
            batches=batches,
            batch_size=b,
            negatives=n,
            positives=p,
            negatives_per_batch=(lo, lo + (1 if extra else 0)),
            positive_slots=slots,
            positive_repeats=slots / p,
            last_batch_negatives=lo,
            last_batch_positives=b - lo,
            last_batch_topped_up=b - lo - self.min_positives,
        )

    @property
    def last_batch_report(self) -> dict:
        """How the epoch, and its last batch, are filled (plain data, plus a sentence)."""
        return {**self.plan.as_dict(), "text": self.plan.describe()}

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def state_dict(self) -> dict:
        return {"seed": self.seed, "epoch": self.epoch}

    def load_state_dict(self, state: dict) -> None:
        self.seed = int(state["seed"])
        self.epoch = int(state["epoch"])

    def __len__(self) -> int:
        return self.plan.batches

    def __iter__(self) -> Iterator[list[Slot]]:
        g = torch.Generator().manual_seed(self.seed + self.epoch)
        plan = self.plan
        negatives = torch.tensor(self.negatives)[torch.randperm(plan.negatives, generator=g)]
        positives = torch.tensor(self.positives)
        cycles = math.ceil(plan.positive_slots / plan.positives)
        stream = torch.cat(
            [positives[torch.randperm(plan.positives, generator=g)] for _ in range(cycles)]
        )[: plan.positive_slots]
        aug_seeds = torch.randint(0, _SEED_HIGH, (plan.batches * plan.batch_size,), generator=g)
        lo, extra = divmod(plan.negatives, plan.batches)
        neg_at = pos_at = 0
        for i in range(plan.batches):
            n_neg = lo + (1 if i < extra else 0)
            n_pos = plan.batch_size - n_neg
            batch = torch.cat([negatives[neg_at : neg_at + n_neg], stream[pos_at : pos_at + n_pos]])
            neg_at += n_neg
            pos_at += n_pos
            # Mixed order inside the batch; harmless for training, and a reader of a batch
            # does not see the negatives first.
            batch = batch[torch.randperm(plan.batch_size, generator=g)]
            seeds = aug_seeds[i * plan.batch_size : (i + 1) * plan.batch_size]
            yield list(zip(batch.tolist(), seeds.tolist(), strict=True))
