"""spacy-rnn's precision policy: bf16 mixed precision on the CPU, off by
default. Standard library and torch only: the plain-torch modules of
`spacy_rnn.nn` use it too.

The mode is process-wide: "off" (the default), "on" (forced, even where the
CPU only emulates bf16, slowly), or "auto" (on where the CPU computes bf16
natively: oneDNN's bf16 kernels and the avx512_bf16 or amx_bf16
instructions). Set it with `set_cpu_bf16`, or from a config with the
`spacy_rnn.cpu_bf16.v1` callback. When on, spacy-rnn's torch modules run
their forward pass under `torch.autocast("cpu", dtype=torch.bfloat16)`: the
matrix products in bf16; the modules keep softmaxes, pooling sums and the
state of their own recurrent loops in fp32, and hand fp32 outputs to thinc,
whose losses and optimizer stay fp32, as do the weights.
"""
import logging
import platform
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Set, Tuple

import torch

MODES = ("auto", "on", "off")
BF16_INSTRUCTIONS = ("avx512_bf16", "amx_bf16")  # x86 flags of native bf16 products
X86_MACHINES = ("x86_64", "amd64", "i386", "i686")
CPUINFO = Path("/proc/cpuinfo")

logger = logging.getLogger("spacy_rnn")
_bf16_enabled = False


def cpu_flags() -> Optional[Set[str]]:
    """The x86 CPU's flags from /proc/cpuinfo, or None where it cannot be read."""
    try:
        text = CPUINFO.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() == "flags":
            return set(value.split())
    return None


def bf16_support() -> Tuple[bool, str]:
    """Whether this CPU computes bf16 natively, and why (or why not). On x86,
    oneDNN also offers bf16 on AVX-512 CPUs without bf16 instructions, by
    emulation: that counts as no."""
    x86 = platform.machine().lower() in X86_MACHINES
    flags = cpu_flags() if x86 else None
    found = f" (CPU flags: {bf16_flags_found(flags)})" if x86 else ""
    if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        return False, f"oneDNN has no bf16 kernels on this CPU{found}"
    if x86 and not (flags or set()) & set(BF16_INSTRUCTIONS):
        return False, f"oneDNN would only emulate bf16 on this CPU, more slowly than fp32{found}"
    return True, f"oneDNN computes bf16 natively on this CPU{found}"


def bf16_flags_found(flags: Optional[Set[str]]) -> str:
    if flags is None:
        return "unknown, no /proc/cpuinfo"
    return ", ".join(flag for flag in BF16_INSTRUCTIONS if flag in flags) or "no " + ", ".join(BF16_INSTRUCTIONS)


def set_cpu_bf16(mode: str) -> bool:
    """Set the process's precision mode ("auto", "on" or "off"), log whether
    bf16 is on and why, and return whether it is on."""
    global _bf16_enabled
    check_mode(mode)
    supported, reason = bf16_support()
    if mode == "off":
        _bf16_enabled = False
        logger.info("spacy-rnn: bf16 mixed precision off (mode 'off'); %s.", reason)
    elif mode == "on":
        _bf16_enabled = True
        if supported:
            logger.info("spacy-rnn: bf16 mixed precision on (mode 'on'): %s.", reason)
        else:
            logger.warning("spacy-rnn: bf16 mixed precision on (mode 'on'), though %s: expect it slower.", reason)
    else:
        _bf16_enabled = supported
        logger.info("spacy-rnn: bf16 mixed precision %s (mode 'auto'): %s.", "on" if supported else "off", reason)
    return _bf16_enabled


def check_mode(mode: str) -> None:
    if mode not in MODES:
        raise ValueError(f"Unknown bf16 mode {mode!r}: use one of {', '.join(repr(m) for m in MODES)}.")


def cpu_bf16_enabled() -> bool:
    return _bf16_enabled


@contextmanager
def cpu_autocast() -> Iterator[None]:
    """The CPU autocast of the policy: bf16 matrix products when it is on."""
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=_bf16_enabled):
        yield


def in_callers_precision(task: Callable[[], Any]) -> Callable[[], Any]:
    """`task`, to run on another thread under the caller's CPU autocast
    state (autocast is per thread)."""
    enabled, dtype = torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")

    def run() -> Any:
        with torch.autocast("cpu", dtype=dtype, enabled=enabled):
            return task()

    return run


def autocast_input(x: torch.Tensor) -> torch.Tensor:
    """x in CPU autocast's dtype where autocast is on, else x. An nn.LSTM
    reads it so: oneDNN's bf16 LSTM casts its input so anyway, and where
    oneDNN has no bf16 LSTM, a bf16 input selects torch's own kernel (an fp32
    one would select oneDNN's, which then fails)."""
    if x.device.type == "cpu" and torch.is_autocast_enabled("cpu"):
        return x.to(torch.get_autocast_dtype("cpu"))
    return x
