"""What kind of CPU this is: its model name and the vector/matrix extensions that decide which
kernels are fast (AVX2, AVX-512, VNNI for int8, AVX-512 BF16 / AMX for bf16).

The benchmarks print it so that figures from different machine kinds can be told apart (the
predictor's choice of graph, :mod:`journeyformer.inference.choice`, is probed per process, so it
follows the machine without being keyed by it). No torch.
"""

from __future__ import annotations

import os
import platform

# The extensions worth naming, in the order printed.
EXTENSIONS = ("sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512_vnni",
              "avx512_bf16", "avx512_fp16", "amx_tile", "amx_bf16", "amx_int8")  # fmt: skip


def cpu_info() -> tuple[str, list[str], int]:
    """(CPU model name, the :data:`EXTENSIONS` it has, logical cores this process may use).

    Reads ``/proc/cpuinfo`` (Linux); elsewhere the name is ``platform.processor()`` and no
    extensions are listed.
    """
    name, flags = "", set()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name") and not name:
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags") and not flags:
                    flags = set(line.split(":", 1)[1].split())
    except OSError:
        pass
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not on Linux
        cores = os.cpu_count() or 1
    return name or platform.processor() or "unknown", [e for e in EXTENSIONS if e in flags], cores


def cpu_line() -> str:
    """One line naming the CPU, e.g. ``CPU: AMD EPYC; 2 logical cores; extensions: avx2 ...``."""
    name, extensions, cores = cpu_info()
    return f"CPU: {name}; {cores} logical cores; extensions: {' '.join(extensions) or 'none listed'}"
