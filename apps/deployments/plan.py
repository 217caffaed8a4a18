"""The rollout plan contract, checked once: a strategy and its steps. A step either sets the new version's traffic
weight (then bakes, then runs the analysis if the weight is below 100) or is a manual-judgement pause.

Defaults: canary 10% -> 50% -> 100% with 30 s of bake per step; blue/green prepares the new variant at 0% and
switches 100% at once, keeping the old one for an instant rollback during the post-promotion watch; all at once is
one step to 100%."""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from apps.deployments.errors import InvalidDeployment
from apps.deployments.models import Strategy

MAX_STEPS = 20
MAX_BAKE_SECONDS = 24 * 3600
DEFAULT_BAKE_SECONDS = 30
DEFAULT_CANARY_STEPS: tuple[dict[str, Any], ...] = (
    {"weight": 10, "bake_seconds": DEFAULT_BAKE_SECONDS},
    {"weight": 50, "bake_seconds": DEFAULT_BAKE_SECONDS},
    {"weight": 100},
)


@dataclass(frozen=True)
class Step:
    weight: int | None  # None: a pause for manual judgement
    bake_seconds: int = 0

    @property
    def pause(self) -> bool:
        return self.weight is None

    @property
    def analyzed(self) -> bool:
        """Steps below 100% are judged before the next; 100% is the promotion."""
        return self.weight is not None and self.weight < 100


def _step(raw: Any, index: int) -> Step:
    field = f"steps[{index}]"
    if not isinstance(raw, dict):
        raise InvalidDeployment('A step is {"weight": 10, "bake_seconds": 60} or {"pause": true}.', field=field)
    unknown = set(raw) - {"weight", "bake_seconds", "pause"}
    if unknown:
        raise InvalidDeployment(f"Unknown step keys: {', '.join(sorted(unknown))}.", field=field)
    if raw.get("pause") is True and set(raw) == {"pause"}:
        return Step(weight=None)
    weight, bake = raw.get("weight"), raw.get("bake_seconds", 0)
    if isinstance(weight, bool) or not isinstance(weight, int) or not 1 <= weight <= 100:
        raise InvalidDeployment("A step's weight is a whole percentage from 1 to 100.", field=f"{field}.weight")
    if isinstance(bake, bool) or not isinstance(bake, int) or not 0 <= bake <= MAX_BAKE_SECONDS:
        raise InvalidDeployment(
            f"bake_seconds is a whole number from 0 to {MAX_BAKE_SECONDS}.", field=f"{field}.bake_seconds"
        )
    return Step(weight=weight, bake_seconds=bake)


def plan_steps(*, strategy: str, steps: Sequence[Any] | None) -> list[Step]:
    """The steps a deployment runs. Weights must rise and the last step must reach 100%."""
    if strategy not in Strategy.values:
        raise InvalidDeployment(f"Strategy is one of {', '.join(Strategy.values)}.", field="strategy")
    if strategy != Strategy.CANARY:
        if steps:
            raise InvalidDeployment("Only a canary takes steps.", field="steps")
        return [Step(weight=100)]
    raw_steps = list(DEFAULT_CANARY_STEPS) if not steps else list(steps)
    if not isinstance(steps, list | tuple | None) or len(raw_steps) > MAX_STEPS:
        raise InvalidDeployment(f"Give a list of at most {MAX_STEPS} steps.", field="steps")
    planned = [_step(raw, index) for index, raw in enumerate(raw_steps)]
    weights = [step.weight for step in planned if step.weight is not None]
    if any(later <= earlier for earlier, later in itertools.pairwise(weights)):
        raise InvalidDeployment("Each step's weight must be above the one before.", field="steps")
    if not weights or weights[-1] != 100:
        raise InvalidDeployment("The last weight step must be 100 (the promotion).", field="steps")
    if planned[-1].pause:
        raise InvalidDeployment("A canary cannot end on a pause.", field="steps")
    return planned


def as_json(steps: Sequence[Step]) -> list[dict[str, Any]]:
    return [
        {"pause": True} if step.pause else {"weight": step.weight, "bake_seconds": step.bake_seconds} for step in steps
    ]
