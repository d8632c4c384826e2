""":class:`LlmTuner`: the Hugging Face ``Trainer`` the LLM is tuned with — safe checkpoints
(:class:`~ulmrec_align.tuning.checkpoints.SafeTrainer`), the response-only loss of
:mod:`ulmrec_align.tuning.loss`, the budget-sized schedule of :mod:`ulmrec_align.tuning.schedule`,
per-task loss sums for the curves, and one draw of negatives per epoch (``align build --negative-draws``)."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import torch

from ulmrec_align.tuning.checkpoints import SafeTrainer
from ulmrec_align.tuning.data import DrawSampler, EncodedDataset
from ulmrec_align.tuning.loss import LossKind, alignment_loss
from ulmrec_align.tuning.schedule import BudgetSchedule, lambda_scheduler


class LlmTuner(SafeTrainer):
    """``SafeTrainer`` + our loss and schedule. ``task_names[task_id]`` names the tasks of ``task_ids``."""

    def __init__(self, *args: Any, loss_kind: LossKind = "tokens", letter_ids: Sequence[int] = (),
                 schedule: BudgetSchedule | None = None, task_names: Sequence[str] = (),
                 yes_no: tuple[int, int] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.loss_kind: LossKind = loss_kind
        self.letter_ids = list(letter_ids)
        self.yes_no = yes_no
        self.schedule = schedule
        self.task_names = list(task_names)
        # our compute_loss returns a per-batch mean: let Trainer divide by the accumulation steps
        self.model_accepts_loss_kwargs = False
        self._task_sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0])

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """Samples with several draws of negatives (``align build --negative-draws``): one draw per epoch
        (:class:`~ulmrec_align.tuning.data.DrawSampler`); otherwise the Trainer's own sampler."""
        dataset = self.train_dataset if train_dataset is None else train_dataset
        if isinstance(dataset, EncodedDataset) and dataset.redrawn:
            return DrawSampler.of(dataset, seed=self.args.data_seed if self.args.data_seed is not None
                                  else self.args.seed)
        return super()._get_train_sampler(train_dataset)

    def create_scheduler(self, num_training_steps: int, optimizer: Any = None) -> Any:
        if self.schedule is None:
            return super().create_scheduler(num_training_steps, optimizer)
        if self.lr_scheduler is None:
            self.schedule.max_steps = num_training_steps
            self.lr_scheduler = lambda_scheduler(optimizer or self.optimizer, self.schedule)  # type: ignore[assignment]
            self._created_lr_scheduler = True
        return self.lr_scheduler

    def compute_loss(self, model: Any, inputs: dict[str, torch.Tensor], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        task_ids = inputs.pop("task_ids", None)
        loss, row_sum, row_items = alignment_loss(model, inputs, kind=self.loss_kind,
                                                  letter_ids=self.letter_ids, yes_no=self.yes_no)
        if task_ids is not None and self.task_names:
            for task_id, total, items in zip(task_ids.tolist(), row_sum.tolist(), row_items.tolist(),
                                             strict=True):
                sums = self._task_sums[self.task_names[task_id]]
                sums[0] += total
                sums[1] += items
        return (loss, None) if return_outputs else loss

    def pop_task_losses(self) -> dict[str, float]:
        """Mean training loss per task since the last call (per loss item)."""
        out = {task: total / items for task, (total, items) in self._task_sums.items() if items}
        self._task_sums.clear()
        return out
