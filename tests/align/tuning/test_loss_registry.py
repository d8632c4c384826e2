"""The registries of losses and answer kinds: one module per entry, and every reader takes its choices and
rules from them (the config Literals, the answer/loss pairing, the collator's extras, the report's chance
level)."""

from __future__ import annotations

import itertools
import typing

import pytest

from ulmrec_align.losses.base import Loss
from ulmrec_align.losses.registry import BUILTIN_MODULES, LOSS_NAMES, LOSSES, get_loss, pairing_error
from ulmrec_align.prompts.answers.registry import ANSWER_NAMES, ANSWERS, get_answer
from ulmrec_align.prompts.config import PromptConfig
from ulmrec_align.tuning.config import TrainSettings
from ulmrec_eval.runtime.errors import InputError


def test_the_config_literals_are_the_registries() -> None:
    assert typing.get_args(TrainSettings.model_fields["loss"].annotation) == LOSS_NAMES
    assert typing.get_args(PromptConfig.model_fields["answer"].annotation) == ANSWER_NAMES
    assert LOSS_NAMES[:4] == ("tokens", "letters", "choices", "relevance")     # the built-ins, in this order
    assert ANSWER_NAMES[:3] == ("letter", "title", "relevance")
    assert all(f"'{name}'" in (TrainSettings.model_fields["loss"].description or "") for name in LOSS_NAMES)


@pytest.mark.parametrize("module", BUILTIN_MODULES)
def test_each_loss_module_declares_one_loss_named_like_it(module: str) -> None:
    loss = LOSSES[module.rsplit(".", 1)[1]]
    assert isinstance(loss, Loss)
    assert loss.name == loss.name.lower()
    assert loss.summary
    assert type(loss).__module__ == module


# (loss, pools, null prompt, yes/no ids): what the collator and the trainer add for each loss
EXTRAS = [("tokens", False, False, False), ("letters", False, False, False), ("choices", True, True, False),
          ("relevance", True, False, True)]


@pytest.mark.parametrize(("name", "pools", "null_prompt", "yes_no"), EXTRAS)
def test_what_each_loss_asks_of_its_batches(name: str, pools: bool, null_prompt: bool, yes_no: bool) -> None:
    loss = get_loss(name)
    assert (loss.pools, loss.null_prompt, loss.yes_no) == (pools, null_prompt, yes_no)


def _old_is_ranking_loss(loss: str, answer: str) -> bool:
    """The experiment report's rule before the registry (ulmrec_app/experiment/report.py), plus the
    relevance loss: a cross-entropy over the pool, held to ln N like the others."""
    return loss in ("choices", "relevance") or (loss == "letters" and answer == "letter")


def _old_pairing_refused(loss: str, answer: str) -> bool:
    """``align train``'s rule before the registry (tuning/train.py)."""
    return (answer == "relevance") != (loss == "relevance")


@pytest.mark.parametrize(("loss", "answer"), list(itertools.product(LOSS_NAMES, ANSWER_NAMES)))
def test_the_rules_read_from_the_registry_are_the_old_ones(loss: str, answer: str) -> None:
    assert (pairing_error(answer, loss) is not None) == _old_pairing_refused(loss, answer)
    if not _old_pairing_refused(loss, answer):
        assert get_loss(loss).ranks_candidates(answer) == _old_is_ranking_loss(loss, answer)


def test_a_refused_pairing_names_both_sides() -> None:
    assert pairing_error("letter", "relevance") == (
        "--loss relevance trains samples answered by relevance only: these samples answer by letter and "
        "--loss is relevance")
    assert pairing_error("relevance", "letters") == (
        "samples answered by relevance train with --loss relevance only: these samples answer by relevance "
        "and --loss is letters")


def test_answer_kinds_declare_what_the_commands_read() -> None:
    assert {a.name for a in ANSWERS.values() if a.per_candidate} == {"title", "relevance"}
    assert {a.name: a.negatives for a in ANSWERS.values()} == {"letter": "random", "title": "random",
                                                              "relevance": "retriever"}
    assert get_answer("title").scored_by == "title likelihood"
    assert get_answer("letter").scored_by is None


def test_unknown_names_list_the_registered_ones() -> None:
    with pytest.raises(InputError, match="registered: tokens, letters, choices, relevance"):  # then added
        get_loss("focal")
    with pytest.raises(InputError, match="registered: letter, title, relevance"):
        get_answer("word")
