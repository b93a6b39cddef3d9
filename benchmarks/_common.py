"""Helpers shared by the benchmark scripts: timing, machine description, Markdown sections."""
from __future__ import annotations

import os
import platform
import time
from pathlib import Path


def best_of(repeat: int, fn) -> float:
    """Smallest wall time of ``repeat`` calls of ``fn`` (seconds)."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def machine(pinned: int | None = None) -> str:
    """CPU model, visible cores (and how many the benchmark used), Python version."""
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    pin = f", benchmark pinned to {pinned}" if pinned else ""
    return f"{cpu}, {os.cpu_count()} cores visible{pin}; Python {platform.python_version()}"


def write_section(path: Path, section: str, mark: str) -> None:
    """Replace the text between two ``mark`` lines of ``path`` (or append it), atomically; say so."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if mark in text:
        head, _, rest = text.partition(mark)
        _, _, tail = rest.partition(mark)
        text = head + section + tail
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path.with_suffix(".tmp")
    tmp.write_text(text)
    tmp.replace(path)
    print(f"wrote {path}")


def command_line(script: str, argv) -> str:
    """How the benchmark was called: ``python benchmarks/<script> <arguments>``."""
    import sys

    return " ".join([f"python benchmarks/{script}", *(argv if argv is not None else sys.argv[1:])])


def markdown_table(frame, digits: int = 3) -> str:
    """A pandas table as Markdown (numbers to ``digits`` decimals), without the optional tabulate."""
    def cell(v):
        return f"{v:.{digits}f}" if isinstance(v, float) else f"{v:,}" if isinstance(v, int) else str(v)

    lines = ["| " + " | ".join(map(str, frame.columns)) + " |", "|" + "---|" * len(frame.columns)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in frame.itertuples(index=False)]
    return "\n".join(lines)
