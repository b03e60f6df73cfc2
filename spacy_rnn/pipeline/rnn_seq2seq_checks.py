"""Checks of the rnn_seq2seq component: its settings, and the parts of a
saved component (cfg, target vocabulary, model), checked with each other
before anything is loaded, so that a bad file gives an error that names it
and the component stays as it was."""
from pathlib import Path
from typing import Any, Dict, Optional, Tuple

import srsly
from thinc.api import Model

from ..target_vocab import SPECIAL_TOKENS, VOCAB_KINDS, TargetVocab, vocab_from_bytes
from ..targets import TARGET_ATTR

NO_TARGET_VOCAB = b"null"  # JSON: the saved target vocabulary of an uninitialized component
SavedParts = Dict[str, Tuple[str, bytes]]  # part ("cfg", "target_vocab", "model") -> (where it comes from, its bytes)
SETTINGS_CHECKED = (
    "output_attr", "vocab_kind", "min_freq", "max_size", "beam_size", "max_length", "length_penalty",
    "no_repeat_ngram_size", "prior_penalty", "coverage_weight",
)


def read_saved_file(path: Path, component: str) -> bytes:
    """The bytes of a file of a saved component, or an error that says the pipeline is incomplete."""
    try:
        return path.read_bytes()
    except OSError as err:
        raise ValueError(
            f"[{component}] Cannot read {path} ({err.strerror}): the saved pipeline is incomplete. Save or "
            "download it again."
        ) from None


def json_object(data: bytes) -> Optional[Dict[str, Any]]:
    """The JSON object that `data` holds, or None."""
    try:
        value = srsly.json_loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def saved_output_size(data: bytes) -> Optional[int]:
    """The number of target ids a saved model was trained with (None when the
    data is not a readable model; loading it then explains why)."""
    try:
        return srsly.msgpack_loads(data)["nodes"][0]["dims"]["nO"]
    except Exception:  # any damage: left to the model's own checks
        return None


def check_saved_parts(
    name: str, cfg: Dict[str, Any], target_vocab: Optional[TargetVocab], model: Model, parts: SavedParts
) -> Tuple[Dict[str, Any], Optional[TargetVocab]]:
    """The settings and target vocabulary of the component `name` once the
    saved `parts` are loaded over its `cfg` and `target_vocab`, checked: the
    settings, and that the vocabulary has the size the model (the saved one,
    or `model` when no model is among the parts) was trained with. Raises a
    ValueError that names the bad part."""
    cfg = dict(cfg)
    if "cfg" in parts:
        where, data = parts["cfg"]
        saved = json_object(data)
        if saved is None or set(saved) - set(cfg):
            raise ValueError(f"[{name}] {where} is not the settings file of an rnn_seq2seq component.")
        cfg.update(saved)
        check_component_settings(name, **{key: cfg[key] for key in SETTINGS_CHECKED})
    if "target_vocab" in parts:
        where, data = parts["target_vocab"]
        try:
            target_vocab = None if data == NO_TARGET_VOCAB else vocab_from_bytes(data)
        except Exception as err:  # JSON, tokenizers and format errors alike
            raise ValueError(
                f"[{name}] Cannot read the target vocabulary {where}: {err}. Save or download the pipeline "
                "again."
            ) from None
    where, data = parts.get("model", ("of the component", None))
    trained_ids = model.maybe_get_dim("nO") if data is None else saved_output_size(data)
    if trained_ids is not None and (target_vocab is None or trained_ids != len(target_vocab)):
        size = "no" if target_vocab is None else len(target_vocab)
        raise ValueError(
            f"[{name}] The target vocabulary ({size} ids) does not match the model "
            f"{where}, trained with {trained_ids} target ids: they come from different trainings. "
            "Save or download the whole pipeline again."
        )
    return cfg, target_vocab


def check_component_settings(
    name: str,
    output_attr: str,
    vocab_kind: str,
    min_freq: int,
    max_size: int,
    beam_size: int,
    max_length: int,
    length_penalty: float,
    no_repeat_ngram_size: int,
    prior_penalty: float,
    coverage_weight: float,
) -> None:
    """Raise a ValueError naming the first bad setting and how to fix it."""
    if not output_attr or not output_attr.isidentifier():
        raise ValueError(
            f"[{name}] 'output_attr' must be a valid extension name such as 'generated', got {output_attr!r}."
        )
    if output_attr == TARGET_ATTR:
        raise ValueError(f"[{name}] 'output_attr' cannot be {TARGET_ATTR!r}: that extension holds the training target.")
    if vocab_kind not in VOCAB_KINDS:
        raise ValueError(f"[{name}] unknown 'vocab_kind' {vocab_kind!r}: use one of {', '.join(VOCAB_KINDS)}.")
    for setting, value in (("min_freq", min_freq), ("beam_size", beam_size), ("max_length", max_length)):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"[{name}] '{setting}' must be a positive integer, got {value!r}.")
    if not isinstance(max_size, int) or max_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"[{name}] 'max_size' must be an integer above {len(SPECIAL_TOKENS)} (the special tokens), "
            f"got {max_size!r}."
        )
    if length_penalty < 0:
        raise ValueError(f"[{name}] 'length_penalty' must be 0 or more, got {length_penalty!r}.")
    if not isinstance(no_repeat_ngram_size, int) or no_repeat_ngram_size < 0:
        raise ValueError(
            f"[{name}] 'no_repeat_ngram_size' must be 0 (no blocking) or a positive integer, got "
            f"{no_repeat_ngram_size!r}."
        )
    if not prior_penalty >= 0:
        raise ValueError(f"[{name}] 'prior_penalty' must be 0 (none) or more, got {prior_penalty!r}.")
    if not coverage_weight >= 0:
        raise ValueError(f"[{name}] 'coverage_weight' must be 0 or more, got {coverage_weight!r}.")
