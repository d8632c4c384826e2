"""A learning-rate schedule sized to the training that actually runs.

The Hugging Face schedules size warm-up and decay to the *planned* steps (epochs × samples / batch); with a
time budget (``--max-minutes``) training stops long before, so the learning rate never leaves warm-up. Here
the decay runs over the **progress fraction**

    p = min(1, max(step / max_steps, elapsed / budget))

so it ends where training ends, whichever of the step count or the time budget ends it first; warm-up is
``warmup_steps`` optimizer steps (linear from 0), or, when that is not given, the first 5 % of ``p``:

    lr(step) = peak · min(1, step / warmup) · d(p),   d = 1 (constant) | 1 − p (linear) | (1 + cos πp) / 2

The factor is a pure function of the step and the training clock (which survives ``--resume``), so it needs
no state of its own in a checkpoint.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

from ulmrec_align.models.train_manifest import ScheduleKind

__all__ = ["DEFAULT_WARMUP_SHARE", "BudgetSchedule", "ScheduleKind", "lambda_scheduler"]
#: Warm-up share of the progress fraction when no --warmup-steps is given.
DEFAULT_WARMUP_SHARE = 0.05


@dataclass
class BudgetSchedule:
    """``factor(step)``: the multiplier of the peak learning rate at optimizer step ``step``.

    ``clock()`` returns the training seconds so far (all sessions); ``budget_seconds`` None = no time budget.
    """

    kind: ScheduleKind
    max_steps: int
    warmup_steps: int | None
    budget_seconds: float | None
    clock: Callable[[], float]

    def progress(self, step: int) -> float:
        """p in [0, 1]: the share of the run done, by steps or by time, whichever is further."""
        by_steps = step / self.max_steps if self.max_steps > 0 else 0.0
        by_time = self.clock() / self.budget_seconds if self.budget_seconds else 0.0
        return min(1.0, max(by_steps, by_time))

    def warmup(self, step: int, p: float) -> float:
        if self.warmup_steps is not None:
            return 1.0 if self.warmup_steps <= 0 else min(1.0, step / self.warmup_steps)
        return min(1.0, p / DEFAULT_WARMUP_SHARE)

    def decay(self, p: float) -> float:
        if self.kind == "constant":
            return 1.0
        if self.kind == "linear":
            return max(0.0, 1.0 - p)
        return 0.5 * (1.0 + math.cos(math.pi * p))

    def factor(self, step: int) -> float:
        p = self.progress(step)
        return self.warmup(step, p) * self.decay(p)

    def __call__(self, step: int) -> float:  # torch's LambdaLR calls lr_lambda(step)
        return self.factor(step)


def lambda_scheduler(optimizer: object, schedule: BudgetSchedule) -> object:
    """A ``torch.optim.lr_scheduler.LambdaLR`` driven by ``schedule`` (its state is only the step count)."""
    from torch.optim.lr_scheduler import LambdaLR

    class _BudgetLR(LambdaLR):
        def state_dict(self) -> dict[str, object]:  # the schedule object is rebuilt, never saved
            return {k: v for k, v in self.__dict__.items() if k not in ("optimizer", "lr_lambdas")}

        def load_state_dict(self, state_dict: dict[str, object]) -> None:
            self.__dict__.update(state_dict)

    return _BudgetLR(optimizer, lr_lambda=schedule)  # type: ignore[arg-type]
