"""What to do with each stage: skip (unchanged), run, resume (a killed attempt left a checkpoint), reuse
(another run under the same runs folder has the identical stage done) or wait (its process is running).

A stage is unchanged when its ``config_hash`` (its commands and options, minus paths) and its
``input_hashes`` (each upstream stage's ``output_hash``, the content of each external input file) equal the
ones in its manifest and its outputs are as it wrote them (size and mtime of each file; a file whose mtime
moved is re-hashed), so a stage never builds on an output cut or edited since.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from ulmrec_app.pipeline.manifest import StageManifest, changed_outputs, sha256_json, sha256_path
from ulmrec_app.pipeline.stages import CONTENT_HASH_LIMIT, StagePlan

Action = Literal["skip", "run", "resume", "reuse", "wait"]


@dataclass
class Decision:
    action: Action
    reason: str
    config_hash: str
    input_hashes: dict[str, str]
    reuse_from: Path | None = None
    manifest: StageManifest | None = None
    effective_options: dict[str, dict[str, Any]] = field(default_factory=dict)
    code_versions: dict[str, str] = field(default_factory=dict)


def staleness(manifest: StageManifest, effective: dict[str, dict[str, Any]],
              versions: dict[str, str]) -> str | None:
    """Why a stage whose config and inputs are unchanged must still rerun: the code that produced it has
    another version now (``code changed: ulmrec-align 0.1.0 → 0.2.0``) or an option the config leaves at
    its default has another default (``default changed: align build --n-candidates 20 → 10``); None when
    neither. Manifests written before these records are compared on what they hold (``package_versions``)."""
    recorded = manifest.code_versions or {k: v for k, v in manifest.package_versions.items() if k in versions}
    moved = [f"{name} {recorded[name]} → {now}" for name, now in sorted(versions.items())
             if name in recorded and recorded[name] != now]
    if moved:
        return "code changed: " + ", ".join(moved)
    changed = []
    for command, options in effective.items():
        before = manifest.effective_options.get(command)
        if before is None:
            continue
        for name, value in options.items():
            if name in before and before[name] != value:
                changed.append(f"{command} --{name.replace('_', '-')} {before[name]} → {value}")
    if changed:
        shown = "; ".join(changed[:3]) + (f" and {len(changed) - 3} more" if len(changed) > 3 else "")
        return "default changed: " + shown
    return None


def fingerprint(path: Path) -> str:
    """Content hash of an external input; above :data:`CONTENT_HASH_LIMIT` bytes, a hash of the file names,
    sizes and modification times (a 13 GB model is not re-read on every run)."""
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    total = sum(f.stat().st_size for f in files)
    if total <= CONTENT_HASH_LIMIT:
        return sha256_path(path)
    digest = hashlib.sha256()
    for file in files:
        st = file.stat()
        digest.update(f"{file.relative_to(path) if file != path else file.name}\0{st.st_size}\0"
                      f"{st.st_mtime_ns}\n".encode())
    return "stat:" + digest.hexdigest()


def config_hash(plan: StagePlan) -> str:
    return sha256_json({"stage": plan.name, "commands": [c.identity() for c in plan.commands]})


def input_hashes(plan: StagePlan, upstream: dict[str, StageManifest]) -> dict[str, str]:
    """``stage:<dep>`` -> the dependency's output hash; ``file:<option>`` -> the input's fingerprint."""
    hashes = {f"stage:{dep}": upstream[dep].output_hash or "" for dep in plan.depends}
    for key, path in plan.external_inputs.items():
        hashes[f"file:{key}"] = fingerprint(path)
    return hashes


def outputs_exist(plan: StagePlan, folder: Path | None = None) -> bool:
    base = folder or plan.folder
    return all((base / name).exists() for name in plan.outputs)


def outputs_changed(plan: StagePlan, manifest: StageManifest, folder: Path | None = None) -> list[str]:
    """Output files changed since the stage wrote them (a file cut or edited by hand): empty when intact or
    when ``manifest`` predates the record of its files."""
    if not manifest.output_files:
        return []
    return changed_outputs(folder or plan.folder, manifest.output_files, plan.outputs)


def _matches(manifest: StageManifest | None, chash: str, ihashes: dict[str, str]) -> bool:
    return manifest is not None and manifest.config_hash == chash and manifest.input_hashes == ihashes


def find_reusable(plan: StagePlan, runs_dir: Path, chash: str, ihashes: dict[str, str],
                  effective: dict[str, dict[str, Any]] | None = None,
                  versions: dict[str, str] | None = None) -> Path | None:
    """A done stage folder of another run with the same config and inputs (the real folder, not a link)."""
    own = plan.folder.resolve() if plan.folder.exists() else None
    if not runs_dir.is_dir():
        return None
    for run in sorted(runs_dir.iterdir()):
        candidate = run / plan.name
        if not candidate.is_dir() or candidate.is_symlink() or candidate.resolve() == own:
            continue
        try:
            manifest = StageManifest.load_or_none(candidate)
        except Exception:
            continue
        if manifest is not None and manifest.status == "done" and _matches(manifest, chash, ihashes) \
                and outputs_exist(plan, candidate) and not outputs_changed(plan, manifest, candidate) \
                and staleness(manifest, effective or {}, versions or {}) is None:
            return candidate
    return None


def decide(plan: StagePlan, upstream: dict[str, StageManifest], runs_dir: Path, *, forced: bool) -> Decision:
    """The :class:`Decision` for ``plan`` given its upstream stages' (done) manifests."""
    chash = config_hash(plan)
    ihashes = input_hashes(plan, upstream)
    effective, versions = plan.effective_options(), plan.code_versions()
    decision = _decide(plan, upstream, runs_dir, forced=forced, chash=chash, ihashes=ihashes,
                       effective=effective, versions=versions)
    decision.effective_options, decision.code_versions = effective, versions
    return decision


def _decide(plan: StagePlan, upstream: dict[str, StageManifest], runs_dir: Path, *, forced: bool, chash: str,
            ihashes: dict[str, str], effective: dict[str, dict[str, Any]],
            versions: dict[str, str]) -> Decision:
    try:
        manifest = StageManifest.load_or_none(plan.folder)
    except Exception:
        manifest = None
    status = manifest.effective_status() if manifest is not None else None
    if manifest is not None and status == "running":
        return Decision("wait", f"already running (pid {manifest.pid})", chash, ihashes, manifest=manifest)
    if forced:
        return Decision("run", "forced", chash, ihashes, manifest=manifest)
    same = _matches(manifest, chash, ihashes)
    tampered = outputs_changed(plan, manifest) if manifest is not None and status == "done" else []
    stale = staleness(manifest, effective, versions) if manifest is not None and same else None
    if same and status == "done" and outputs_exist(plan) and not tampered and stale is None:
        return Decision("skip", "unchanged", chash, ihashes, manifest=manifest)
    if stale is not None and status == "done":
        return Decision("run", stale, chash, ihashes, manifest=manifest)
    if same and status in ("failed", "stopped") and plan.resume_option and plan.has_checkpoint():
        return Decision("resume", f"{status} attempt left a checkpoint", chash, ihashes, manifest=manifest)
    reusable = find_reusable(plan, runs_dir, chash, ihashes, effective, versions)
    if reusable is not None:
        return Decision("reuse", f"same config and inputs as {reusable.parent.name}", chash, ihashes,
                        reuse_from=reusable)
    if manifest is None:
        reason = "not run yet"
    elif tampered and same:
        shown = ", ".join(tampered[:3]) + (f" and {len(tampered) - 3} more" if len(tampered) > 3 else "")
        reason = f"output changed since it was written: {shown}"
    elif manifest.config_hash != chash:
        reason = "config changed"
    elif manifest.input_hashes != ihashes:
        changed = sorted(k for k in {*ihashes, *manifest.input_hashes}
                         if ihashes.get(k) != manifest.input_hashes.get(k))
        reason = "input changed: " + ", ".join(k.split(":", 1)[1] for k in changed)
    elif status != "done":
        reason = f"last attempt {status}" + ("" if not plan.resume_option else ", no checkpoint")
    else:
        reason = "outputs missing"
    return Decision("run", reason, chash, ihashes, manifest=manifest)


def link_reused(plan: StagePlan, source: Path) -> None:
    """Make ``plan.folder`` a relative link to ``source`` (a stage folder of another run)."""
    import shutil

    folder = plan.folder
    if folder.is_symlink():
        folder.unlink()
    elif folder.exists():
        shutil.rmtree(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(os.path.relpath(source.resolve(), folder.parent.resolve()), folder)
