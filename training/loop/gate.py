"""The promotion gate: does a newly trained model replace the active one?

A pure function of the two models' figures on the same validation split (no torch, no Django),
so the decision can be recomputed and shown to a user from the stored figures.

Rules, in order:
1. The candidate must reach the target recall (with bears in the split). A model that misses
   bears is never promoted, however few false alarms it raises.
2. With no active model, a candidate that reaches the target recall is promoted.
3. An active model that itself misses the target recall (measured at its stored threshold) is
   replaced by a candidate that reaches it.
4. Otherwise the candidate must raise fewer false positives per frame at the target recall, by
   the margin: ``new <= active * (1 - margin)`` and ``new < active``. A tie is a rejection
   (switching models costs a re-inference), and an active model with no false positives at all
   cannot be beaten on this figure.

``margin`` is relative: 0.1 asks for at least 10 % fewer false positives per frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .evaluate import EvalMetrics

DEFAULT_MARGIN = 0.05


@dataclass(frozen=True)
class Decision:
    promote: bool
    reason: str
    figures: dict[str, Any] = field(default_factory=dict)


def decide_promotion(
    new: EvalMetrics,
    active: EvalMetrics | None,
    *,
    target_recall: float = 0.95,
    margin: float = DEFAULT_MARGIN,
) -> Decision:
    """Promote ``new`` over ``active`` or not, with the reason and the figures that decided it.

    Raises ValueError when the two were measured on different splits (a wiring error, not a
    verdict on the model).
    """
    if not 0 < target_recall <= 1:
        raise ValueError(f"target_recall must be in (0, 1], got {target_recall}")
    if not 0 <= margin < 1:
        raise ValueError(f"margin must be in [0, 1), got {margin}")
    if active is not None and new.split_id and active.split_id and new.split_id != active.split_id:
        raise ValueError(
            "the new and the active model were evaluated on different validation splits; "
            "evaluate both on the same split before deciding"
        )
    figures: dict[str, Any] = {
        "target_recall": target_recall,
        "margin": margin,
        "new_recall": new.recall,
        "new_precision": new.precision,
        "new_fp_per_frame": new.fp_per_frame,
        "new_threshold": new.threshold,
        "new_ap": new.ap,
        "frames": new.frames,
        "positives": new.positives,
    }
    if active is not None:
        figures |= {
            "active_recall": active.recall,
            "active_precision": active.precision,
            "active_fp_per_frame": active.fp_per_frame,
            "active_threshold": active.threshold,
            "active_ap": active.ap,
        }

    def reaches(m: EvalMetrics) -> bool:
        return m.positives > 0 and m.recall >= target_recall - 1e-12

    if new.positives == 0:
        return Decision(
            False, "the validation split holds no bears, so recall cannot be measured", figures
        )
    if not reaches(new):
        return Decision(
            False,
            f"recall {new.recall:.3f} misses the target {target_recall:.3f}",
            figures,
        )
    if active is None:
        return Decision(
            True,
            f"no active model; recall {new.recall:.3f} reaches the target {target_recall:.3f} "
            f"with {new.fp_per_frame:.3f} false positives per frame",
            figures,
        )
    if not reaches(active):
        return Decision(
            True,
            f"the active model misses the target recall ({active.recall:.3f} < "
            f"{target_recall:.3f}); the new one reaches it ({new.recall:.3f})",
            figures,
        )
    required = active.fp_per_frame * (1 - margin)
    reduction = (
        (active.fp_per_frame - new.fp_per_frame) / active.fp_per_frame
        if active.fp_per_frame > 0
        else 0.0
    )
    figures |= {"required_fp_per_frame": required, "relative_reduction": reduction}
    if new.fp_per_frame < active.fp_per_frame and new.fp_per_frame <= required + 1e-12:
        return Decision(
            True,
            f"{new.fp_per_frame:.3f} false positives per frame against {active.fp_per_frame:.3f} "
            f"({reduction:.1%} fewer, margin {margin:.1%}) at recall >= {target_recall:.3f}",
            figures,
        )
    if new.fp_per_frame >= active.fp_per_frame:
        why = "no fewer false positives per frame"
    else:
        why = f"only {reduction:.1%} fewer false positives per frame, margin is {margin:.1%}"
    return Decision(
        False,
        f"{why}: {new.fp_per_frame:.3f} against {active.fp_per_frame:.3f} (needs <= "
        f"{required:.3f}) at recall >= {target_recall:.3f}",
        figures,
    )
