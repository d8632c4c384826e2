"""Paraphrased instruction templates per alignment task (the input lines are fixed per task).

Training picks one template per sample, deterministically from the seed; ranking always uses template 0 of
``next_item``, so scores are comparable across users. Template ids read ``"<task>/<number>"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ulmrec_align.prompts.config import PromptConfig

TEMPLATES: dict[str, tuple[str, ...]] = {
    "next_item": (
        "Given the user's purchase history in chronological order, choose the item the user is most "
        "likely to buy next from the candidate pool. Answer with the letter of that candidate.",
        "Here is what this user bought so far, oldest first. Which candidate will they buy next? "
        "Reply with its letter only.",
        "Predict the user's next purchase among the lettered candidates, using their past purchases. "
        "Give the candidate's letter.",
    ),
    "index_to_pref": (
        "Describe the preferences of the user with this index.",
        "What does the user with this index like? Summarise their preferences in one sentence.",
        "Write a short summary of the tastes of the user identified by this index.",
    ),
    "pref_to_index": (
        "Which user index belongs to the user with these preferences?",
        "Give the index of the user whose preferences are described below.",
        "A user is described by the preferences below. Write their user index.",
    ),
    "history_to_index": (
        "Given this purchase history in chronological order, write the index of the user who made it.",
        "Which user index matches the purchase history below?",
        "Identify the user by index from their purchases, oldest first.",
    ),
    "rating": (
        "How would the user with this index rate the item below, from 1 to 5? Answer with the number.",
        "Predict the star rating (1-5) this user gives the item. Reply with one digit.",
        "Given the user's index and an item, guess the user's rating of it on a 1 to 5 scale.",
    ),
    "intent": (
        "The user with this index describes what they are looking for. Choose the matching item from the "
        "candidate pool and answer with its letter.",
        "Find the candidate that fits this user's stated need. Reply with its letter only.",
        "Using the user's index and their request, pick the right candidate. Give the letter.",
    ),
}

#: ``next_item`` with ``answer = "title"``: no candidate pool, the answer is the next item's title.
NEXT_TITLE_TEMPLATES: tuple[str, ...] = (
    "Given the user's purchase history in chronological order, write the title of the item the user is "
    "most likely to buy next.",
    "Here is what this user bought so far, oldest first. Write the title of what they will buy next.",
    "Predict the user's next purchase from their past purchases. Give the item's title.",
)


#: ``next_item`` with ``answer = "relevance"``: no candidate pool; each candidate follows as a continuation.
#: The question is asked here, once a prompt, so that a candidate's continuation is its title and a short cue.
NEXT_RELEVANCE_TEMPLATES: tuple[str, ...] = (
    "Given the user's purchase history in chronological order, judge whether the user will buy the "
    "candidate item next. Answer Yes or No.",
    "Here is what this user bought so far, oldest first. Decide whether they will buy the candidate next: "
    "answer Yes or No.",
    "From the user's past purchases, tell whether the candidate below is their next purchase. Answer Yes "
    "or No.",
)
#: ``next_item`` with relevance answers and no history in the prompt (``history_items = 0``): the user is
#: known by their code or text alone.
NEXT_RELEVANCE_USER_TEMPLATES: tuple[str, ...] = (
    "Given what is known about the user, judge whether the user will buy the candidate item next. Answer "
    "Yes or No.",
    "Here is this user. Decide whether they will buy the candidate next: answer Yes or No.",
    "From what the user is like, tell whether the candidate below is their next purchase. Answer Yes or No.",
)
#: The cue after each candidate's title; its answer is one of :data:`RELEVANCE_ANSWERS`. (The question used to
#: follow every title, "Would the user buy it next? Answer:": 7 more tokens a candidate, 70 a user;
#: ``bench/relevance_format_speed.py``.)
RELEVANCE_CUE = "Answer:"
#: (positive, negative) answers whose first-token log-odds is a candidate's relevance score.
RELEVANCE_ANSWERS = ("Yes", "No")


def next_item_templates(answer: str, *, history: bool = True) -> tuple[str, ...]:
    """The ``next_item`` instructions for an answer kind (``"letter"``, ``"title"`` or ``"relevance"``);
    ``history=False``: relevance prompts that show no history (``PromptConfig.history_items = 0``)."""
    if answer == "title":
        return NEXT_TITLE_TEMPLATES
    if answer == "relevance":
        return NEXT_RELEVANCE_TEMPLATES if history else NEXT_RELEVANCE_USER_TEMPLATES
    return TEMPLATES["next_item"]


def prompt_instructions(prompt: PromptConfig) -> tuple[str, ...]:
    """The ``next_item`` instructions of prompts sized by ``prompt``: its answer kind, with or without the
    history (``history_items = 0``) — one rule for building, ranking and the ``Recommender``."""
    return next_item_templates(prompt.answer, history=prompt.history_items > 0)


def relevance_continuation(title: str) -> str:
    """What follows the user's prompt for one candidate: ``"Candidate: <title>\nAnswer:"``; the score is read
    at its last token."""
    return f"Candidate: {title}\n{RELEVANCE_CUE}"


def template_id(task: str, number: int) -> str:
    """``"next_item/0"``."""
    return f"{task}/{number}"


def preference_line(text: str) -> str:
    """The input line that shows a user's preference text (``pref_to_index``, ``--user-text`` prompts)."""
    return f"Preferences: {text}"
