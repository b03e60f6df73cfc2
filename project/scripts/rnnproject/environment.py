"""The machine a benchmark ran on: CPU model and the instruction sets that
decide its kernels, the BLAS and oneDNN libraries in use, library versions and
the thread and kernel variables of the environment. Speed ratios only hold
for the kind of CPU and the kernels they were measured with, so every bench
states them beside its figures."""
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Dict, List

import threadpoolctl
import torch

# The instruction sets that change which kernels numpy, BLIS, MKL and oneDNN pick.
ISA_FLAGS = ("avx2", "fma", "avx512f", "avx512_bf16", "avx512_vnni", "amx_tile", "amx_bf16", "amx_int8")
# Variables that pick kernels: a bench's child processes run without them unless asked to keep them.
KERNEL_VARIABLES = ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE", "BLIS_ARCH_TYPE")
# Variables that choose threads or kernels of the libraries a bench times.
VARIABLE_PREFIXES = ("OPENBLAS_", "OMP_", "MKL_", "BLIS_", "GOTO", "DNNL_", "ONEDNN_", "KMP_")
# Variables known to slow a library down when set, and why.
SLOWING_VARIABLES = {
    "OPENBLAS_CORETYPE": "forces OpenBLAS (numpy's BLAS) onto an older core's kernels",
    "OPENBLAS_L2_SIZE": "overrides OpenBLAS's cache blocking",
    "BLIS_ARCH_TYPE": "forces BLIS (thinc's and spaCy's matrix products) onto another architecture's kernels",
    "OPENBLAS_NUM_THREADS": "caps numpy's BLAS threads",
    "MKL_NUM_THREADS": "caps MKL's threads",
    "OMP_NUM_THREADS": "caps OpenMP threads (torch's intra-op threads by default)",
}


def cpu_info() -> Dict[str, str]:
    """The first processor's fields of /proc/cpuinfo (empty off Linux)."""
    path = Path("/proc/cpuinfo")
    if not path.exists():
        return {}
    fields = {}
    for line in path.read_text().splitlines():
        if not line.strip():
            break
        key, _, value = line.partition(":")
        fields[key.strip()] = value.strip()
    return fields


def environment() -> Dict[str, object]:
    """Everything a reader needs to tell whether a bench's ratios apply to
    their machine."""
    cpu = cpu_info()
    flags = set(cpu.get("flags", "").split())
    return {
        "cpu_model": cpu.get("model name") or platform.processor() or platform.machine(),
        "cpu_cores": os.cpu_count(),
        "isa_flags": [flag for flag in ISA_FLAGS if flag in flags],
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()),
        "torch_blas": _torch_build_setting("BLAS_INFO"),
        "blis_kernels": blis_kernels(),
        "torch_threads": torch.get_num_threads(),
        "blas": [_library(info) for info in threadpoolctl.threadpool_info()],
        "versions": {name: _version(name) for name in ("spacy", "thinc", "torch", "numpy", "blis", "fasttext-numpy2-wheel")},
        "variables": {key: value for key, value in sorted(os.environ.items()) if key.startswith(VARIABLE_PREFIXES)},
    }


def blis_kernels() -> str:
    """The sub-configuration (kernel set) that BLIS, thinc's and spaCy's
    matrix product on the CPU, picks for this CPU, as BLIS reports it when
    BLIS_ARCH_DEBUG is set: 'generic' means its slow reference kernels."""
    probe = "import numpy, blis.py; a = numpy.ones((8, 8), dtype='f'); blis.py.gemm(a, a)"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            env={**os.environ, "BLIS_ARCH_DEBUG": "1"})
    found = re.search(r"sub-configuration '([^']+)'", result.stderr)
    return found.group(1) if found else "unknown"


def clean_environ(keep: bool = False) -> Dict[str, str]:
    """os.environ without the variables that force a library's kernels
    (KERNEL_VARIABLES), so that each library picks its own for the CPU."""
    return dict(os.environ) if keep else {k: v for k, v in os.environ.items() if k not in KERNEL_VARIABLES}


def warnings_for(env: Dict[str, object]) -> List[str]:
    """One line per variable set that is known to slow a library down, and
    one if BLIS falls back to its reference kernels on an x86 CPU with AVX2."""
    found = [f"{key}={value} is set: it {SLOWING_VARIABLES[key]}" for key, value in env["variables"].items()
             if key in SLOWING_VARIABLES]
    if env["blis_kernels"] == "generic" and "avx2" in env["isa_flags"]:
        found.append("BLIS (thinc's CPU matrix product) does not know this CPU and runs its generic reference "
                     "kernels, several times slower than the AVX2 kernels of numpy's OpenBLAS")
    return found


def markdown(env: Dict[str, object]) -> str:
    """The environment as a few lines of Markdown, for a bench's header."""
    blas = "; ".join(
        f"{lib['internal_api']} {lib['version'] or ''}".strip()
        + (f", {lib['architecture']} kernels" if lib["architecture"] else "") + f", {lib['threads']} threads"
        for lib in env["blas"]
    )
    versions = ", ".join(f"{name} {version}" for name, version in env["versions"].items() if version)
    variables = ", ".join(f"`{key}={value}`" for key, value in env["variables"].items()) or "none set"
    lines = [
        f"- CPU: {env['cpu_model']}, {env['cpu_cores']} cores; ISA: {', '.join(env['isa_flags']) or 'none of note'}; "
        f"torch kernels: {env['torch_cpu_capability']}, oneDNN bf16: {'yes' if env['onednn_bf16'] else 'no'}",
        f"- Libraries (threadpoolctl): {blas}; BLIS (thinc): {env['blis_kernels']} kernels; "
        f"torch's BLAS: {env['torch_blas']}; {versions}",
        f"- Thread and kernel variables: {variables}",
    ]
    lines += [f"- **Warning**: {warning}" for warning in warnings_for(env)]
    return "\n".join(lines)


def _library(info: Dict[str, object]) -> Dict[str, object]:
    return {"internal_api": info.get("internal_api"), "version": info.get("version"),
            "architecture": info.get("architecture"), "threads": info.get("num_threads")}


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return ""


def _torch_build_setting(name: str) -> str:
    found = re.search(rf"{name}=([^,\s]+)", torch.__config__.show())
    return found.group(1) if found else "unknown"
