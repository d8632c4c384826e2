"""The stage graph: which ``ulmrec`` commands each stage runs, with which inputs, into which outputs.

A stage's commands get two kinds of options: those the pipeline wires (inputs from upstream stages, the
output path, ``--no-progress``) and the config's settings for that stage, which are exactly the command's
own options (checked against the command, see :mod:`ulmrec_app.pipeline.commands`). The stages and what they
run (the paths: :class:`ulmrec_app.pipeline.layout.RunLayout`)::

    data       ulmrec data [synthetic|download] + prepare
    users      ulmrec data users
    index      ulmrec index build
    retrieve   ulmrec retrieve train   (--resume), or retrieve tune with a [retrieve.tune] table (--resume)
    align      ulmrec align build
    train      ulmrec align train      (--resume)
    rank       ulmrec align rank
    eval       ulmrec eval metrics (ULMRec) + on the retriever's candidates alone
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ulmrec_app.pipeline.commands import (
    CommandSpec,
    command_spec,
    normalise_key,
    producing_package,
    to_argv,
    validate_settings,
)
from ulmrec_app.pipeline.config import RunConfig, StageName
from ulmrec_app.pipeline.errors import PipelineError
from ulmrec_app.pipeline.layout import (
    DATASET,
    INDEX,
    METRICS,
    MODEL,
    PREDICTIONS,
    RETRIEVER,
    RETRIEVER_EVAL,
    SAMPLES,
    USER_TEXTS,
    RunLayout,
    default_n_candidates,
    default_pool_size,
)

#: Options that name paths but are not inputs of the stage.
NOT_INPUTS = frozenset({"out", "cache_dir"})
#: Above this many bytes an external input is fingerprinted by names, sizes and times instead of content.
CONTENT_HASH_LIMIT = 512 * 1024 * 1024
#: Options that never change what a stage produces (display and control switches).
_NOT_IDENTITY = frozenset({"progress", "force", "resume"})


@dataclass
class Invocation:
    """One ``ulmrec`` command of a stage."""

    path: tuple[str, ...]
    spec: CommandSpec | None                     # None: the command is not installed (yet)
    wired: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    inputs: dict[str, Path] = field(default_factory=dict)      # external inputs among the settings

    def argv(self, *, resume: str | None = None) -> list[str]:
        values = {**self.wired, **self.settings}
        if resume:
            values[resume] = True
        if self.spec is not None:
            return to_argv(self.spec, values)
        argv = ["ulmrec", *self.path]                    # not installed: the flags as the config names them
        for name, value in values.items():
            argv += [f"--{name.replace('_', '-')}", str(value)] if value is not True else [
                f"--{name.replace('_', '-')}"]
        return argv

    def effective_options(self) -> dict[str, Any]:
        """Every option's value as the command will see it: the config's setting, else the command's own
        default (paths, the pipeline's wiring and progress/force/resume switches left out)."""
        if self.spec is None:
            return {}
        values: dict[str, Any] = {}
        for name, option in sorted(self.spec.options.items()):
            if name in self.wired or name in self.inputs or name in _NOT_IDENTITY or option.is_path:
                continue
            values[name] = self.settings.get(name, option.default)
        if self.spec.resolve is not None:
            try:
                resolved = self.spec.resolve(dict(self.settings))
            except Exception:
                resolved = {}
            values.update({f"{k}": v for k, v in resolved.items() if k not in values})
        return json.loads(json.dumps(values, default=str))

    def identity(self) -> dict[str, Any]:
        """What the config hash covers: the command and every option except paths inside the run and the
        paths of external inputs (their content is hashed as an input instead)."""
        settings = {k: ("<input>" if k in self.inputs else v) for k, v in self.settings.items()}
        fixed = {k: v for k, v in self.wired.items() if not isinstance(v, Path)}
        return {"command": list(self.path), "options": {**fixed, **settings}}


@dataclass
class StagePlan:
    """A stage of one run: its folder, commands, upstream stages and outputs."""

    name: str
    folder: Path
    commands: list[Invocation]
    depends: list[str]
    outputs: list[str]
    resume_option: str | None = None
    resume_globs: tuple[str, ...] = ()

    @property
    def installed(self) -> bool:
        return all(c.spec is not None for c in self.commands)

    @property
    def missing_commands(self) -> list[str]:
        return ["ulmrec " + " ".join(c.path) for c in self.commands if c.spec is None]

    @property
    def external_inputs(self) -> dict[str, Path]:
        found: dict[str, Path] = {}
        for command in self.commands:
            for name, path in command.inputs.items():
                found[f"{' '.join(command.path)} --{name.replace('_', '-')}"] = path
        return found

    def effective_options(self) -> dict[str, dict[str, Any]]:
        """``{"align build": {option: effective value}}`` for each command (see
        :meth:`Invocation.effective_options`)."""
        return {" ".join(c.path): c.effective_options() for c in self.commands}

    def code_versions(self) -> dict[str, str]:
        """``{distribution: version}`` of the packages whose commands this stage runs."""
        found: dict[str, str] = {}
        for command in self.commands:
            producer = producing_package(command.path[0])
            if producer is not None:
                found[producer[0]] = producer[1]
        return found

    def has_checkpoint(self) -> bool:
        return any(any(self.folder.glob(pattern)) for pattern in self.resume_globs)


def _resolve(value: Any, option_is_path: bool, base: Path) -> Any:
    if isinstance(value, list):
        return [_resolve(v, option_is_path, base) for v in value]
    if not isinstance(value, str) or not value:
        return value
    candidate = Path(value).expanduser()
    if candidate.is_absolute():
        return str(candidate)
    if option_is_path or (base / candidate).exists():
        return str((base / candidate).resolve())
    return value


def _invocation(path: tuple[str, ...], settings: dict[str, Any], wired: dict[str, Any], *, where: str,
                base: Path, defaults: dict[str, Any] | None = None,
                bases: dict[str, Path] | None = None) -> Invocation:
    spec = command_spec(path)
    settings = {**(defaults or {}), **settings}
    if spec is None:
        return Invocation(path=path, spec=None, wired=wired, settings=dict(settings))
    if "progress" in spec.options and "progress" not in settings:
        wired = {**wired, "progress": False}
    managed = frozenset(wired) | {"resume", "force"}
    checked = validate_settings(spec, settings, where=where, managed=managed)
    inputs: dict[str, Path] = {}
    for name, value in list(checked.items()):
        option = spec.options[name]
        checked[name] = _resolve(value, option.is_path, (bases or {}).get(name, base))
        if name in NOT_INPUTS or not isinstance(checked[name], str):
            continue
        target = Path(checked[name])
        if target.is_absolute() and target.exists():
            inputs[name] = target
        elif option.is_path:
            raise PipelineError(f"{where}.{name}: {checked[name]} does not exist")
    missing = [n for n, o in spec.options.items() if o.required and n not in checked and n not in wired]
    if missing:
        raise PipelineError(f"{where}: `{spec.title}` needs {', '.join(missing)}")
    return Invocation(path=path, spec=spec, wired=wired, settings=checked, inputs=inputs)


def active_stages(config: RunConfig) -> list[str]:
    """The run's stages in order; the no-index baseline drops those that only serve the index (``users``,
    ``index``)."""
    return [s.name for s in STAGE_LIST if s.name in config.stages and (config.uses_index or not s.index_only)]


@dataclass(frozen=True)
class _Context:
    """What every stage builder sees: the config, where each stage writes, and how to name a setting."""

    config: RunConfig
    stages: list[str]
    layout: RunLayout
    folder: dict[str, Path]
    out: dict[str, Path]
    base: Path
    where: str

    @property
    def index_value(self) -> Any:
        return self.out["index"] if self.config.uses_index else "none"

    @property
    def index_deps(self) -> list[str]:
        return ["index"] if self.config.uses_index else []

    def invocation(self, path: tuple[str, ...], settings: dict[str, Any], wired: dict[str, Any], key: str,
                   defaults: dict[str, Any] | None = None) -> Invocation:
        # each setting's relative path resolves against the config file that set it (a base config's
        # paths stay its own when another config extends it)
        bases = {normalise_key(name): Path(self.config.base_for(f"{key}.{name}")) for name in settings}
        return _invocation(path, settings, wired, where=self.where + key, base=self.base, defaults=defaults,
                           bases=bases)


#: ``(commands, depends, outputs or None)`` of one stage.
_Built = tuple[list[Invocation], list[str], list[str] | None]


def _data_stage(c: _Context, s: dict[str, Any]) -> _Built:
    commands: list[Invocation] = []
    raw = c.layout.raw
    wired: dict[str, Any] = {"out": c.out["data"]}
    if "synthetic" in c.config.data:
        commands.append(c.invocation(("data", "synthetic"), c.config.data["synthetic"], {"out": raw},
                                     "data.synthetic"))
        wired.update(source="amazon", path=raw)
    elif "download" in c.config.data:
        commands.append(c.invocation(("data", "download"), c.config.data["download"],
                                     {"out": raw, "quiet": True}, "data.download"))
        wired.update(source="amazon", path=raw)
    commands.append(c.invocation(("data", "prepare"), dict(c.config.data.get("prepare", {})), wired,
                                 "data.prepare"))
    return commands, [], None


def _users_stage(c: _Context, s: dict[str, Any]) -> _Built:
    return [c.invocation(("data", "users"), s, {"folder": c.out["data"], "out": c.out["users"]}, "users")], \
        ["data"], None


def _index_stage(c: _Context, s: dict[str, Any]) -> _Built:
    """``index build`` from the users' review texts; with ``vectors = "retriever"`` (collaborative codes),
    from the retriever's user vectors instead (``retrieve user-vectors`` first; ``vectors_kind`` = state |
    item-mean), so the stage then comes after ``retrieve``."""
    source = s.get("vectors")
    if source is None:
        return [c.invocation(("index", "build"), s, {"users": c.out["users"], "out": c.out["index"]},
                             "index")], ["users"], None
    if source != "retriever":
        raise PipelineError(f"{c.where}index.vectors: only \"retriever\" (the retriever's user vectors) is "
                            f"known, got {source!r}")
    vectors = c.layout.user_vectors
    export = {"kind": s["vectors_kind"]} if "vectors_kind" in s else {}
    settings = {k: v for k, v in s.items() if k not in ("vectors", "vectors_kind")}
    share = _setting(settings, "cold_share", 0.0)
    if not isinstance(share, bool) and isinstance(share, (int, float)) and share > 0:
        raise PipelineError(f"{c.where}index.cold_share: holds users out of a fit of review texts; the "
                            "retriever's user vectors (vectors = \"retriever\") cover every user, so it does "
                            "not apply: leave cold_share out, or build the index from texts")
    return [c.invocation(("retrieve", "user-vectors"), export,
                         {"data": c.out["data"], "retriever": c.out["retrieve"], "out": vectors,
                          "force": True}, "index"),
            c.invocation(("index", "build"), settings,
                         {"vectors": vectors / "vectors.safetensors", "ids": vectors / "ids.json",
                          "out": c.out["index"]}, "index")], ["data", "retrieve"], None


def _retrieve_stage(c: _Context, s: dict[str, Any]) -> _Built:
    wired = {"data": c.out["data"], "out": c.out["retrieve"]}
    if "tune" not in s:
        return [c.invocation(("retrieve", "train"), s, wired, "retrieve")], ["data"], None
    tune = s["tune"]   # [retrieve.tune]: `retrieve tune` (validation-only search) instead of `train`
    if not isinstance(tune, dict) or len(s) > 1:
        raise PipelineError(f"{c.where}retrieve.tune: give `ulmrec retrieve tune` options in a "
                            "[retrieve.tune] table and nothing else in [retrieve] (a base "
                            "RetrieverConfig goes in retrieve.tune.config)")
    return [c.invocation(("retrieve", "tune"), tune, wired, "retrieve.tune")], ["data"], None


def _align_stage(c: _Context, s: dict[str, Any]) -> _Built:
    if "index" in s and str(s["index"]).lower() != "none":
        raise PipelineError(f"{c.config.source}: align.index: only \"none\" (the no-index baseline) "
                            f"may be set; otherwise the pipeline passes its own index stage")
    settings = {k: v for k, v in s.items() if k != "index"}
    _check_controls(c, settings, "align")
    _check_limits(c, settings, "align")
    wired = {"data": c.out["data"], "index": c.index_value,
             "candidates": c.layout.candidates, "out": c.out["align"]}
    if _negatives(settings) == "retriever":
        wired["retriever"] = c.out["retrieve"]               # hard negatives: the retriever per prefix
    build = c.invocation(("align", "build"), settings, wired, "align")
    _check_cold_start(c, settings)   # after the values themselves are checked
    _check_redraws(c, settings)
    return [build], ["data", "retrieve", *c.index_deps], None


def _check_redraws(c: _Context, settings: dict[str, Any]) -> None:
    """``negative_draws`` > 1 only with random negatives (the rule ``align build`` applies, asked here so that
    ``--dry-run`` refuses it before a stage starts)."""
    from ulmrec_align.tasks.schema import redraw_conflict

    draws = _setting(settings, "negative_draws")
    conflict = None if draws is None else redraw_conflict(int(draws), _negatives(settings))
    if conflict is not None:
        raise PipelineError(f"{c.config.source}: align.negative_draws: {conflict}")


def _negatives(settings: dict[str, Any]) -> str:
    """``align build --negatives`` as the command will take it: the table's, else its answer kind's default
    (the answer registry's ``Answer.negatives``: the retriever's pools for relevance answers)."""
    from ulmrec_align.prompts.answers.registry import ANSWERS
    from ulmrec_align.prompts.config import PromptConfig

    given = _setting(settings, "negatives")
    if given is not None:
        return str(given)
    answer = ANSWERS.get(str(_setting(settings, "answer", PromptConfig.model_fields["answer"].default)))
    return answer.negatives if answer is not None else "random"   # an unknown answer is refused by its check


def _check_controls(c: _Context, settings: dict[str, Any], table: str) -> None:
    """The code controls (``index_permute``, ``index_random``) replace user codes: they need an index, and
    one of them at a time (as ``align build`` and ``align rank`` refuse)."""
    given = [k for k in settings if normalise_key(k) in ("index_permute", "index_random")
             and settings[k] is not None]
    if given and not c.config.uses_index:
        raise PipelineError(f"{c.where}{table}.{given[0]}: replaces the users' codes, but this run has no "
                            "user index (align.index = \"none\"); drop it, or use a config with an index")
    if len(given) > 1:
        raise PipelineError(f"{c.where}{table}: index_permute and index_random are two different controls; "
                            "give one")


def _check_same_controls(c: _Context, rank: dict[str, Any]) -> None:
    """A model tuned on controlled codes (``[align] index_permute`` / ``index_random``) ranks with the same
    control, as ``align rank`` refuses otherwise (unless ``any_index``)."""
    from ulmrec_eval.runtime.errors import InputError
    from ulmrec_eval.runtime.provenance import check_made_with

    if _setting(rank, "any_index") is True:
        return

    def controls(table: dict[str, Any]) -> dict[str, Any]:
        return {f"--{name.replace('_', '-')}": _setting(table, name)
                for name in ("index_permute", "index_random")}

    try:
        check_made_with(controls(c.config.align), controls(rank), artifact="the tuned model")
    except InputError as exc:
        raise PipelineError(f"{c.where}rank: {exc} ([align] and [rank] index_permute / index_random must be "
                            "the same)") from None


def _check_limits(c: _Context, settings: dict[str, Any], table: str) -> None:
    """Options that multiply work or scale scores, within the limits their commands hold them to
    (:mod:`ulmrec_eval.runtime.limits`): ``align.task_weight`` and ``rank.fuse_retriever``."""
    from ulmrec_eval.runtime.errors import InputError
    from ulmrec_eval.runtime.limits import check_fusion_weight, check_task_weight

    for key, value in settings.items():
        name = normalise_key(key)
        try:
            if name == "task_weight":
                for item in value if isinstance(value, list) else [value]:
                    task, _, weight = str(item).partition("=")
                    number = _number(weight)
                    if number is not None:
                        check_task_weight(task.strip(), number)
            elif name == "fuse_retriever" and str(value).strip().lower() != "auto":
                number = _number(value)
                if number is not None:
                    check_fusion_weight(number)
        except InputError as exc:
            raise PipelineError(f"{c.where}{table}.{key}: {exc}") from None


def _check_cold_start(c: _Context, align: dict[str, Any]) -> None:
    """``[align] cold_share`` holds users out of the LLM's training; with a user index, the index must have
    held the same users out of its fit (``[index] cold_share`` and ``cold_seed`` alike), as ``align build``
    refuses otherwise."""
    from ulmrec_eval.cold_start import check_same_cold_start
    from ulmrec_eval.runtime.errors import InputError

    if not c.config.uses_index:
        return

    def share_and_seed(table: dict[str, Any]) -> tuple[float, int]:
        share = _number(_setting(table, "cold_share", 0.0))
        seed = _number(_setting(table, "cold_seed", 0))
        return (share or 0.0, int(seed or 0))

    try:
        check_same_cold_start(share_and_seed(c.config.index), share_and_seed(align))
    except InputError as exc:
        raise PipelineError(f"{c.where}align.cold_share: {exc} ([index] and [align] cold_share, "
                            "cold_seed)") from None


def _setting(table: dict[str, Any], name: str, default: Any = None) -> Any:
    """The value a stage table gives the option ``name`` under any spelling of its key (``pool_size``,
    ``pool-size``: :func:`~ulmrec_app.pipeline.commands.normalise_key`), else ``default``."""
    if name in table:
        return table[name]
    return next((value for key, value in table.items() if normalise_key(key) == name), default)


def _number(value: Any) -> float | None:
    """``value`` as a float (None: not a number; the command's own check says so)."""
    if isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _train_stage(c: _Context, s: dict[str, Any]) -> _Built:
    wired = {"samples": c.out["align"], "out": c.out["train"]}
    return [c.invocation(("align", "train"), s, wired, "train")], ["align"], None


def _rank_stage(c: _Context, s: dict[str, Any]) -> _Built:
    _check_controls(c, s, "rank")
    _check_limits(c, s, "rank")
    _check_same_controls(c, s)
    wired = {"model": c.out["train"], "data": c.out["data"], "index": c.index_value,
             "candidates": c.layout.candidates, "out": c.out["rank"]}
    return [c.invocation(("align", "rank"), s, wired, "rank", defaults={"split": "test"})], \
        ["train", "data", "retrieve", *c.index_deps], None


def _eval_stage(c: _Context, s: dict[str, Any]) -> _Built:
    config = c.config
    pool = _setting(config.retrieve, "pool_size")
    # the LLM ranks the first n_candidates of the retriever's pool: that is the N of its subset
    llm_pool = _setting(config.align, "n_candidates")
    pool = default_pool_size() if pool is None else pool
    llm_pool = default_n_candidates() if llm_pool is None else llm_pool
    defaults = {"split": _setting(config.rank, "split", "test"), "retrieved_n": min(int(pool), int(llm_pool))}
    commands, outputs = [], []
    ranked = "rank" in c.stages
    if ranked:
        wired = {"predictions": c.out["rank"], "out": c.out["eval"]}
        commands.append(c.invocation(("eval", "metrics"), s, wired, "eval", defaults=defaults))
        outputs.append(METRICS)
    retriever = {"predictions": c.layout.candidates, "out": c.layout.retriever_eval}
    commands.append(c.invocation(("eval", "metrics"), s, retriever, "eval", defaults=defaults))
    outputs.append(RETRIEVER_EVAL)
    return commands, ["retrieve", *(["rank"] if ranked else [])], outputs


@dataclass(frozen=True)
class Stage:
    """One pipeline stage, declared once in :data:`STAGE_LIST` (docs/pipeline.md, "Adding a stage")."""

    name: StageName                  # its folder runs/<name>/<stage>/ and its table in the run config
    output: str                      # its main output, relative to its folder (the names of layout.py)
    build: Callable[[_Context, dict[str, Any]], _Built]   # its settings -> commands, upstream stages, outputs
    #: ``(option, checkpoint globs in its folder)``: a killed attempt that left a checkpoint continues with
    #: ``--option`` (None: the stage starts over)
    resume: tuple[str, tuple[str, ...]] | None = None
    index_only: bool = False         # serves only the user index: the no-index baseline leaves it out


#: The stages, in their usual order (a stage moves after the stages its builder says it needs). Each stage's
#: key figures for the run list, if any, are in :data:`ulmrec_app.pipeline.figures._EXTRACTORS`.
STAGE_LIST: tuple[Stage, ...] = (
    Stage("data", DATASET, _data_stage),
    Stage("users", USER_TEXTS, _users_stage, index_only=True),
    Stage("index", INDEX, _index_stage, index_only=True),
    Stage("retrieve", RETRIEVER, _retrieve_stage,       # `retrieve train` and `retrieve tune` checkpoints
          resume=("resume", (f"{RETRIEVER}/checkpoint.safetensors", f"{RETRIEVER}.trials/plan.json"))),
    Stage("align", SAMPLES, _align_stage),
    Stage("train", MODEL, _train_stage,                  # `align train` stages its checkpoints in T.partial
          resume=("resume", (f"{MODEL}.partial/checkpoint-*",))),
    Stage("rank", PREDICTIONS, _rank_stage),
    Stage("eval", METRICS, _eval_stage),
)
#: The stages by name.
STAGE: dict[str, Stage] = {stage.name: stage for stage in STAGE_LIST}


def _dependency_order(c: _Context, stages: list[str]) -> list[str]:
    """``stages`` in their usual order, except that a stage moves after the stages it needs (the index of
    collaborative codes needs ``retrieve``)."""
    needs = {name: [d for d in STAGE[name].build(c, c.config.settings(name))[1] if d in stages]
             for name in stages}
    ordered: list[str] = []
    while len(ordered) < len(stages):
        ready = next((n for n in stages if n not in ordered and all(d in ordered for d in needs[n])), None)
        if ready is None:
            raise PipelineError(f"{c.config.source}: stages depend on each other in a circle")
        ordered.append(ready)
    return ordered


def build_plans(config: RunConfig, run_dir: Path) -> list[StagePlan]:
    """One :class:`StagePlan` per active stage, in order (:data:`STAGE_LIST`); config problems raise
    :class:`PipelineError`."""
    stages = active_stages(config)
    layout = RunLayout(run_dir)
    folder: dict[str, Path] = {s.name: layout.folder(s.name) for s in STAGE_LIST}
    out: dict[str, Path] = {s.name: folder[s.name] / s.output for s in STAGE_LIST}
    context = _Context(config=config, stages=stages, layout=layout, folder=folder, out=out,
                       base=Path(config.base_dir), where=f"{config.source}: ")
    plans: list[StagePlan] = []
    for name in _dependency_order(context, stages):
        stage = STAGE[name]
        commands, depends, outputs = stage.build(context, config.settings(name))
        for dep in depends:
            if dep not in stages:
                raise PipelineError(f"{config.source}: stages: {name} needs {dep}, which is not in stages")
        option, globs = stage.resume or (None, ())
        plans.append(StagePlan(name=name, folder=folder[name], commands=commands, depends=depends,
                               outputs=outputs or [stage.output], resume_option=option, resume_globs=globs))
    return plans
