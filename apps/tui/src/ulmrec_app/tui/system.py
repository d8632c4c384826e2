"""Machine facts for the System screen: GPU (nvidia-smi, else torch when already importable), CPU, memory,
disk used by the runs folder. Each call may take a moment, so the screen runs it in a worker thread."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from ulmrec_app.tui.formatting import human_bytes


@dataclass
class GpuInfo:
    name: str
    memory_used_mb: float | None = None
    memory_total_mb: float | None = None
    utilisation: float | None = None


@dataclass
class SystemInfo:
    gpus: list[GpuInfo] = field(default_factory=list)
    gpu_note: str = ""
    cpus: int = 0
    load: tuple[float, float, float] = (0.0, 0.0, 0.0)
    memory_total: int = 0
    memory_available: int = 0
    runs_bytes: int = 0
    disk_free: int = 0
    disk_total: int = 0


def folder_size(path: Path) -> int:
    """Bytes under ``path`` (links not followed, so reused stages count once)."""
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def nvidia_smi() -> list[GpuInfo] | None:
    """GPUs as nvidia-smi reports them; None when nvidia-smi is absent or fails."""
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        done = subprocess.run([exe, "--query-gpu=name,memory.used,memory.total,utilization.gpu",
                               "--format=csv,noheader,nounits"], capture_output=True, text=True, timeout=10,
                              check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if done.returncode != 0:
        return None
    gpus = []
    for line in done.stdout.strip().splitlines():
        parts = [p.strip() for p in line.split(",")]
        if len(parts) < 4:
            continue

        def num(text: str) -> float | None:
            try:
                return float(text)
            except ValueError:
                return None

        gpus.append(GpuInfo(parts[0], num(parts[1]), num(parts[2]), num(parts[3])))
    return gpus


def torch_gpus() -> list[GpuInfo] | None:
    """GPUs as torch sees them (name and memory only); None when torch or CUDA is unavailable."""
    try:
        import torch
    except Exception:
        return None
    if not torch.cuda.is_available():
        return None
    out = []
    for i in range(torch.cuda.device_count()):
        free, total = torch.cuda.mem_get_info(i)
        out.append(GpuInfo(torch.cuda.get_device_name(i), (total - free) / 2**20, total / 2**20, None))
    return out


def _meminfo() -> tuple[int, int]:
    values: dict[str, int] = {}
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            key, _, rest = line.partition(":")
            values[key] = int(rest.split()[0]) * 1024
    except (OSError, ValueError, IndexError):
        return 0, 0
    return values.get("MemTotal", 0), values.get("MemAvailable", 0)


def collect(runs_dir: Path, *, use_torch: bool | None = None) -> SystemInfo:
    """Gather :class:`SystemInfo`; torch is asked only without nvidia-smi (and not when
    ``ULMREC_TUI_NO_TORCH=1``, which keeps tests from importing it)."""
    if use_torch is None:
        use_torch = os.environ.get("ULMREC_TUI_NO_TORCH") != "1"
    info = SystemInfo(cpus=os.cpu_count() or 0)
    gpus = nvidia_smi()
    if gpus is None and use_torch:
        gpus = torch_gpus()
        info.gpu_note = "" if gpus else "no GPU (no nvidia-smi; torch sees no CUDA device)"
    info.gpus = gpus or []
    if gpus == [] and not info.gpu_note:
        info.gpu_note = "no GPU found"
    with contextlib.suppress(OSError):
        info.load = os.getloadavg()
    info.memory_total, info.memory_available = _meminfo()
    if runs_dir.exists():
        info.runs_bytes = folder_size(runs_dir)
        usage = shutil.disk_usage(runs_dir)
        info.disk_free, info.disk_total = usage.free, usage.total
    return info


def describe(info: SystemInfo, runs_dir: Path) -> str:
    """The System screen's text (Rich markup)."""
    lines = ["[b]GPU[/b]"]
    if info.gpus:
        for gpu in info.gpus:
            mem = (f"{gpu.memory_used_mb / 1024:.1f} / {gpu.memory_total_mb / 1024:.1f} GiB"
                   if gpu.memory_used_mb is not None and gpu.memory_total_mb else "memory ?")
            util = f", {gpu.utilisation:.0f}% busy" if gpu.utilisation is not None else ""
            lines.append(f"  {gpu.name}: {mem}{util}")
    else:
        lines.append(f"  {info.gpu_note or 'no GPU'}")
    lines.append("[b]CPU[/b]")
    lines.append(f"  {info.cpus} cores, load {info.load[0]:.2f} {info.load[1]:.2f} {info.load[2]:.2f}")
    lines.append("[b]Memory[/b]")
    if info.memory_total:
        used = info.memory_total - info.memory_available
        lines.append(f"  {human_bytes(used)} used of {human_bytes(info.memory_total)}")
    lines.append("[b]Disk[/b]")
    lines.append(f"  runs ({runs_dir}): {human_bytes(info.runs_bytes)}")
    if info.disk_total:
        lines.append(f"  free: {human_bytes(info.disk_free)} of {human_bytes(info.disk_total)}")
    return "\n".join(lines)
