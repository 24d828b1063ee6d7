"""The balanced batch sampler keeps its documented invariants, and its statistics are fair."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
import torch

from training.loop.augment import AugmentParams, augment
from training.loop.data import TileDataset, array_sample
from training.loop.sampler import BalancedBatchSampler


def labels_for(negatives: int, positives: int) -> list[int]:
    # Interleave so that positives are not simply the last indices.
    labels = [0] * negatives + [1] * positives
    rng = np.random.default_rng(negatives * 1000 + positives)
    rng.shuffle(labels)
    return labels


def epoch_batches(sampler: BalancedBatchSampler, epoch: int) -> list[list[tuple[int, int]]]:
    sampler.set_epoch(epoch)
    return list(sampler)


CASES = [
    # (negatives, positives, batch_size, min_positives)
    (1000, 40, 64, 8),  # the survey case: many negatives, few bears
    (130, 3, 64, 8),  # very few bears: each repeated many times
    (10, 3, 64, 8),  # fewer negatives than one batch
    (100, 300, 64, 8),  # more bears than background (Web images): every bear still seen
    (56, 1, 64, 8),  # exactly one batch of negatives, a single bear
    (57, 5, 16, 4),  # negatives do not divide evenly
]


@pytest.mark.parametrize(("n_neg", "n_pos", "batch_size", "min_pos"), CASES)
def test_every_epoch_keeps_the_invariants(n_neg, n_pos, batch_size, min_pos):
    labels = labels_for(n_neg, n_pos)
    sampler = BalancedBatchSampler(labels, batch_size=batch_size, min_positives=min_pos, seed=3)
    for epoch in range(3):
        batches = epoch_batches(sampler, epoch)
        assert len(batches) == len(sampler)
        # Every batch is full: nothing dropped, nothing short.
        assert all(len(b) == batch_size for b in batches)
        pos_counts = Counter()
        neg_counts = Counter()
        for b in batches:
            idx = [i for i, _seed in b]
            n_in_batch = sum(labels[i] for i in idx)
            assert n_in_batch >= min_pos
            pos_counts.update(i for i in idx if labels[i] == 1)
            neg_counts.update(i for i in idx if labels[i] == 0)
        # Every negative exactly once.
        assert neg_counts == Counter(i for i, y in enumerate(labels) if y == 0)
        # Every positive at least once, all within one use of each other (a cycle).
        assert set(pos_counts) == {i for i, y in enumerate(labels) if y == 1}
        k = sampler.plan.positive_slots / n_pos
        assert set(pos_counts.values()) <= {math.floor(k), math.ceil(k)}
        # Negatives are spread evenly over the batches.
        per_batch = [sum(1 for i, _ in b if labels[i] == 0) for b in batches]
        assert max(per_batch) - min(per_batch) <= 1
        # The report describes the last batch as it really is.
        report = sampler.last_batch_report
        last = batches[-1]
        assert report["last_batch_negatives"] == sum(1 for i, _ in last if labels[i] == 0)
        assert report["last_batch_positives"] == sum(1 for i, _ in last if labels[i] == 1)
        assert report["batches"] == len(batches)
        assert "not dropped" in report["text"]


def test_the_batch_count_is_the_smallest_that_fits():
    # 1000 negatives at 56 per batch need 18 batches; 18 * 8 = 144 positive slots >= 40 bears.
    assert len(BalancedBatchSampler(labels_for(1000, 40))) == 18
    # 300 bears + 100 negatives need ceil(400 / 64) = 7 batches so every bear gets a slot.
    assert len(BalancedBatchSampler(labels_for(100, 300))) == 7
    # Fewer negatives than a batch: one batch, topped up with repeated bears.
    s = BalancedBatchSampler(labels_for(10, 3))
    assert len(s) == 1
    assert s.last_batch_report["last_batch_positives"] == 54
    assert s.last_batch_report["last_batch_topped_up"] == 54 - 8


def test_order_is_fixed_by_seed_plus_epoch_and_leaves_global_rng_alone():
    labels = labels_for(200, 10)
    a = BalancedBatchSampler(labels, seed=5)
    b = BalancedBatchSampler(labels, seed=5)
    torch.manual_seed(123)
    expected_next = torch.rand(3)
    torch.manual_seed(123)
    first = epoch_batches(a, 0)
    assert torch.equal(torch.rand(3), expected_next), (
        "the sampler must not draw from the global RNG"
    )
    assert first == epoch_batches(b, 0)
    assert epoch_batches(a, 1) != first, "epochs must differ"
    # The generator is seeded with seed + epoch.
    assert epoch_batches(BalancedBatchSampler(labels, seed=6), 0) == epoch_batches(a, 1)
    # A sampler restored from state replays the same epoch (resume).
    c = BalancedBatchSampler(labels, seed=0)
    a.set_epoch(7)
    c.load_state_dict(a.state_dict())
    assert list(c) == list(a)


def chi_square(counts: np.ndarray) -> float:
    expected = counts.sum() / counts.size
    return float(((counts - expected) ** 2 / expected).sum())


def test_positive_use_and_negative_placement_are_uniform_over_epochs():
    # The positive slots per epoch are not a multiple of the 7 bears, so some bears appear once
    # more than others in each epoch; which ones must rotate fairly across epochs.
    labels = labels_for(57, 7)
    sampler = BalancedBatchSampler(labels, batch_size=16, min_positives=4, seed=0)
    k = sampler.plan.positive_slots / 7
    assert k != int(k)
    positives = [i for i, y in enumerate(labels) if y == 1]
    first_negative = next(i for i, y in enumerate(labels) if y == 0)
    pos_totals = Counter()
    batch_of_negative = Counter()
    seeds = []
    epochs = 400
    for epoch in range(epochs):
        batches = epoch_batches(sampler, epoch)
        for bi, b in enumerate(batches):
            for i, seed in b:
                seeds.append(seed)
                if labels[i] == 1:
                    pos_totals[i] += 1
                elif i == first_negative:
                    batch_of_negative[bi] += 1
    # Chi-square against uniform; 0.1 % critical values: 6 df -> 22.46, 3 df -> 16.27.
    assert chi_square(np.array([pos_totals[i] for i in positives])) < 22.46
    assert chi_square(np.array([batch_of_negative[b] for b in range(len(sampler))])) < 16.27
    # Augmentation seeds are practically never reused, so repeated bears look different.
    assert len(set(seeds)) > 0.999 * len(seeds)


@pytest.mark.parametrize(
    ("labels", "kwargs", "message"),
    [
        ([0] * 20, {}, "no bear tiles"),
        ([1] * 20, {}, "no background tiles"),
        ([0, 1, 2], {}, "labels must be 0"),
        ([0, 1] * 10, {"min_positives": 0}, "min_positives"),
        ([0, 1] * 10, {"batch_size": 8, "min_positives": 8}, "min_positives"),
        ([0, 1] * 10, {"batch_size": 1}, "batch_size"),
    ],
)
def test_impossible_requests_are_refused_clearly(labels, kwargs, message):
    with pytest.raises(ValueError, match=message):
        BalancedBatchSampler(labels, **kwargs)


def test_repeated_bears_arrive_augmented_differently_through_a_dataloader():
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (24, 24, 3), dtype=np.uint8) for _ in range(12)]
    samples = [
        array_sample(t, label=int(i < 2), group=f"f{i}", key=f"k{i}") for i, t in enumerate(tiles)
    ]
    ds = TileDataset(samples, tile_size=24, augment=True)
    sampler = BalancedBatchSampler(ds.labels, batch_size=8, min_positives=4, seed=0)
    loader = torch.utils.data.DataLoader(ds, batch_sampler=sampler)
    batches = list(loader)
    assert len(batches) == len(sampler)
    x, y = batches[0]
    assert x.dtype == torch.uint8 and tuple(x.shape) == (8, 3, 24, 24)
    assert int(y.sum()) >= 4
    bear_views = torch.cat([b[0][b[1] == 1] for b in batches])
    # Two bears, at least 8 slots: copies of one bear must not all be the same picture.
    distinct = {bytes(v.numpy().tobytes()) for v in bear_views}
    assert len(distinct) > 2


def test_augmentation_is_a_mild_label_preserving_change():
    rng = np.random.default_rng(1)
    tile = torch.from_numpy(rng.integers(0, 255, (3, 32, 32), dtype=np.uint8))
    before = tile.clone()
    out = augment(tile, torch.Generator().manual_seed(7))
    assert torch.equal(tile, before), "the input tile must not be modified"
    assert out.dtype == torch.uint8 and out.shape == tile.shape
    assert torch.equal(out, augment(tile, torch.Generator().manual_seed(7))), (
        "seeded = reproducible"
    )
    # Without jitter, the result is exactly one of the eight rotations/reflections, and all
    # eight occur.
    plain = AugmentParams(scale_jitter=0, brightness_jitter=0)
    views = set()
    for seed in range(64):
        v = augment(tile, torch.Generator().manual_seed(seed), plain)
        views.add(v.numpy().tobytes())
    expected = set()
    for k in range(4):
        r = torch.rot90(tile, k, (1, 2))
        expected.add(r.contiguous().numpy().tobytes())
        expected.add(torch.flip(r, (2,)).contiguous().numpy().tobytes())
    assert views == expected
    # Brightness and scale stay mild: mean brightness within the 15 % jitter (plus rounding).
    flat = torch.full((3, 32, 32), 100, dtype=torch.uint8)
    for seed in range(20):
        m = augment(flat, torch.Generator().manual_seed(seed)).float().mean().item()
        assert 84 <= m <= 116
