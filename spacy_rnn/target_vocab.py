"""Target vocabularies for sequence to sequence models.

Both kinds put the special tokens at the same fixed ids (PAD, BOS, EOS, UNK),
map anything unknown to UNK, and decode through `TargetVocab.decode`, the one
place where an output is cut at its first EOS. `count_targets` also keeps
how often each id occurs in the training targets (a unigram model, which the
decoder's `prior_penalty` uses), and the counts are saved with the vocabulary:

- `WordVocab`: words and punctuation marks, one id each. A piece written
  right after the previous one, without a space, carries the JOINER prefix,
  so decoding restores the spacing ("love it!" -> love, ￭!). A mark after a
  space ("love it !") is a different piece from a glued one. For copy
  attention it also numbers the source words outside the vocabulary after
  it (`copy_source`, `encode_with_copies`): an extended vocabulary per source.
- `BPEVocab`: subword pieces learnt with the `tokenizers` library (BPE over
  Metaspace words), so rare words are spelled out instead of becoming UNK.
  That library comes with the `seq2seq` extra (`spacy_rnn.extras`).

No spaCy here: the vocabulary serializes to JSON.
"""
import math
import re
import string
from collections import Counter
from typing import TYPE_CHECKING, Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple, Type

import srsly

from .extras import import_seq2seq_extra

if TYPE_CHECKING:
    from tokenizers import Tokenizer

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIAL_TOKENS = ("<PAD>", "<BOS>", "<EOS>", "<UNK>")  # in id order
JOINER = "￭"  # marks a word piece written without a space before it
WORD_PATTERN = re.compile(r"\w+|[^\w\s]")
BPE_NEEDS = "A BPE target vocabulary (vocab_kind 'bpe')"


def cut_at_eos(ids: Iterable[int]) -> List[int]:
    """The ids before the first EOS (all of them when there is none)."""
    kept = []
    for token_id in ids:
        if token_id == EOS:
            break
        kept.append(int(token_id))
    return kept


class CopySource(NamedTuple):
    """What a source offers to copy: the id of each of its tokens (a piece of
    the vocabulary keeps its id; a token that is not a single piece is UNK)
    and `extra`, the pieces outside the vocabulary, whose ids follow it:
    extra[i] has id len(vocab) + i."""

    ids: List[int]
    extra: List[str]


class TargetVocab:
    """Shared behaviour of the target vocabularies; subclasses define how text
    becomes pieces and back."""

    kind = ""

    def __init__(self, lowercase: bool = True):
        self.lowercase = lowercase
        self.counts: Optional[List[int]] = None  # of each id in the training targets, set by count_targets

    def count_targets(self, texts: Iterable[str]) -> None:
        """Count each id in the training targets, with one EOS per target."""
        counts = Counter(token_id for text in texts for token_id in self.encode(text) + [EOS])
        self.counts = [counts[token_id] for token_id in range(len(self))]

    def log_frequencies(self) -> Tuple[List[float], float]:
        """The log relative frequency of each id in the training targets
        (add-one smoothed), and that of a word they never had."""
        if self.counts is None:
            raise ValueError("The target vocabulary has no counts: call count_targets with the training targets.")
        total = math.log(sum(self.counts) + len(self.counts))
        return [math.log(count + 1) - total for count in self.counts], -total

    def __len__(self) -> int:
        raise NotImplementedError

    def encode(self, text: str) -> List[int]:
        """Ids of the pieces of `text`, UNK for unknown ones; no BOS or EOS."""
        raise NotImplementedError

    def id_to_piece(self, token_id: int) -> str:
        raise NotImplementedError

    def join(self, pieces: List[str]) -> str:
        """Text from pieces."""
        raise NotImplementedError

    def unk_replacement(self, word: str) -> str:
        """The piece that stands for a whole source word in place of an UNK."""
        raise NotImplementedError

    def decode(
        self, ids: Iterable[int], unk_words: Optional[Sequence[Optional[str]]] = None, extra: Sequence[str] = ()
    ) -> str:
        """Text of an output: cut at the first EOS; an UNK at position i becomes
        `unk_words[i]` when that is given, and stays "<UNK>" otherwise; an id
        from len(self) on is the piece extra[id - len(self)] (a copied word)."""
        pieces = []
        size = len(self)
        for position, token_id in enumerate(cut_at_eos(ids)):
            word = unk_words[position] if unk_words is not None and position < len(unk_words) else None
            if token_id >= size:
                pieces.append(extra[token_id - size])
            elif token_id == UNK and word:
                pieces.append(self.unk_replacement(word))
            else:
                pieces.append(self.id_to_piece(token_id))
        return self.join(pieces)

    def unk_rate(self, texts: Iterable[str]) -> float:
        """Share of the pieces of `texts` that are UNK."""
        n_pieces = n_unknown = 0
        for text in texts:
            ids = self.encode(text)
            n_pieces += len(ids)
            n_unknown += sum(1 for token_id in ids if token_id == UNK)
        return n_unknown / n_pieces if n_pieces else 0.0

    def to_dict(self) -> Dict:
        raise NotImplementedError

    def to_bytes(self) -> bytes:
        counts = {} if self.counts is None else {"counts": self.counts}
        return srsly.json_dumps(dict(self.to_dict(), kind=self.kind, **counts)).encode("utf8")

    def _normalize(self, text: str) -> str:
        return text.lower() if self.lowercase else text


class WordVocab(TargetVocab):
    """One id per word or punctuation mark seen at least `min_freq` times in
    the training targets, the most frequent first, `max_size` ids at most
    (special tokens included)."""

    kind = "word"

    def __init__(self, pieces: Sequence[str], lowercase: bool = True):
        super().__init__(lowercase)
        if tuple(pieces[: len(SPECIAL_TOKENS)]) != SPECIAL_TOKENS:
            raise ValueError(f"A WordVocab must start with the special tokens {SPECIAL_TOKENS}.")
        self.pieces = list(pieces)
        self.ids = {piece: i for i, piece in enumerate(self.pieces)}

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 1, max_size: int = 10000, lowercase: bool = True):
        counts = Counter(piece for text in texts for piece in split_words(text, lowercase))
        frequent = sorted((p for p, n in counts.items() if n >= min_freq), key=lambda p: (-counts[p], p))
        return cls(list(SPECIAL_TOKENS) + frequent[: max(0, max_size - len(SPECIAL_TOKENS))], lowercase)

    def __len__(self) -> int:
        return len(self.pieces)

    def encode(self, text: str) -> List[int]:
        return [self.ids.get(piece, UNK) for piece in split_words(text, self.lowercase)]

    def id_to_piece(self, token_id: int) -> str:
        return self.pieces[token_id]

    def join(self, pieces: List[str]) -> str:
        text = ""
        for piece in pieces:
            if piece.startswith(JOINER) and piece != JOINER:  # a lone JOINER is the mark itself, written apart
                text += piece[len(JOINER) :]
            else:
                text += (" " if text else "") + piece
        return text

    def unk_replacement(self, word: str) -> str:
        return self._normalize(word)

    def copy_source(self, words: Iterable[str]) -> CopySource:
        """The ids of a source's words (its tokens' texts) for copy attention.
        A word is copied as one piece written after a space."""
        ids, extra = [], {}
        for word in words:
            pieces = split_words(word, self.lowercase)
            if len(pieces) != 1:
                ids.append(UNK)
            elif pieces[0] in self.ids:
                ids.append(self.ids[pieces[0]])
            else:
                ids.append(len(self) + extra.setdefault(pieces[0], len(extra)))
        return CopySource(ids, list(extra))

    def encode_with_copies(self, text: str, extra: Sequence[str]) -> List[int]:
        """`encode`, except that a piece outside the vocabulary that is
        extra[i] (a glued piece: without its JOINER) gets id len(self) + i."""
        copied = {piece: len(self) + i for i, piece in enumerate(extra)}
        ids = []
        for piece in split_words(text, self.lowercase):
            apart = piece[len(JOINER) :] if piece.startswith(JOINER) and piece != JOINER else piece
            ids.append(self.ids.get(piece, copied.get(apart, UNK)))
        return ids

    def to_dict(self) -> Dict:
        return {"pieces": self.pieces, "lowercase": self.lowercase}


def split_words(text: str, lowercase: bool) -> List[str]:
    """Words and single punctuation marks; those glued to the previous piece
    get the JOINER prefix."""
    if lowercase:
        text = text.lower()
    pieces, end = [], None
    for match in WORD_PATTERN.finditer(text):
        pieces.append(JOINER + match.group() if match.start() == end else match.group())
        end = match.end()
    return pieces


class BPEVocab(TargetVocab):
    """Byte-pair-encoding subwords from the `tokenizers` library: Metaspace
    words (whitespace collapsed) split at punctuation, merges seen at least `min_freq` times,
    `max_size` ids at most. ASCII letters, digits and punctuation are always
    in the alphabet (see `alphabet`), so only other unseen characters become
    UNK."""

    kind = "bpe"

    def __init__(self, tokenizer: "Tokenizer", lowercase: bool = True):
        super().__init__(lowercase)
        for token_id, token in enumerate(SPECIAL_TOKENS):
            if tokenizer.token_to_id(token) != token_id:
                raise ValueError(f"A BPEVocab tokenizer must have the special tokens {SPECIAL_TOKENS} at ids 0-3.")
        tokenizer.encode_special_tokens = True  # "<EOS>" typed in a text is text, not the end of the sequence
        self.tokenizer = tokenizer

    @classmethod
    def build(cls, texts: Iterable[str], min_freq: int = 2, max_size: int = 8000, lowercase: bool = True):
        smallest = len(SPECIAL_TOKENS) + len(cls.alphabet(lowercase))
        if max_size < smallest:
            raise ValueError(
                f"A BPE vocabulary needs 'max_size' >= {smallest} (special tokens and the ASCII alphabet), "
                f"got {max_size}."
            )
        tok = import_seq2seq_extra("tokenizers", BPE_NEEDS)
        tokenizer = tok.Tokenizer(tok.models.BPE(unk_token=SPECIAL_TOKENS[UNK]))
        normalizers, pre_tokenizers = tok.normalizers, tok.pre_tokenizers
        steps = [normalizers.Strip(), normalizers.Replace(tok.Regex(r"\s+"), " ")]
        tokenizer.normalizer = normalizers.Sequence(steps + ([normalizers.Lowercase()] if lowercase else []))
        tokenizer.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Metaspace(), pre_tokenizers.Punctuation()])
        tokenizer.decoder = tok.decoders.Metaspace()
        trainer = tok.trainers.BpeTrainer(
            vocab_size=max_size,
            min_frequency=min_freq,
            special_tokens=list(SPECIAL_TOKENS),
            initial_alphabet=list(cls.alphabet(lowercase)),
            show_progress=False,
        )
        tokenizer.train_from_iterator(list(texts), trainer)
        return cls(tokenizer, lowercase)

    @staticmethod
    def alphabet(lowercase: bool) -> str:
        """Characters always in the vocabulary; `max_size` must leave room for
        them and the special tokens."""
        letters = string.ascii_lowercase if lowercase else string.ascii_letters
        return letters + string.digits + string.punctuation

    def __len__(self) -> int:
        return self.tokenizer.get_vocab_size()

    def encode(self, text: str) -> List[int]:
        return self.tokenizer.encode(text, add_special_tokens=False).ids

    def id_to_piece(self, token_id: int) -> str:
        return self.tokenizer.id_to_token(token_id)

    def join(self, pieces: List[str]) -> str:
        return self.tokenizer.decoder.decode(pieces)

    def unk_replacement(self, word: str) -> str:
        return "▁" + self._normalize(word)

    def to_dict(self) -> Dict:
        return {"tokenizer": self.tokenizer.to_str(), "lowercase": self.lowercase}


VOCAB_KINDS: Dict[str, Type[TargetVocab]] = {"word": WordVocab, "bpe": BPEVocab}


def build_vocab(kind: str, texts: Iterable[str], min_freq: int, max_size: int, lowercase: bool) -> TargetVocab:
    """A target vocabulary of the given kind ("word" or "bpe") from training texts."""
    if kind not in VOCAB_KINDS:
        raise ValueError(f"Unknown target vocabulary kind {kind!r}: use one of {', '.join(VOCAB_KINDS)}.")
    if max_size <= len(SPECIAL_TOKENS):
        raise ValueError(
            f"The target vocabulary 'max_size' ({max_size}) must exceed the {len(SPECIAL_TOKENS)} special tokens."
        )
    if min_freq < 1:
        raise ValueError(f"The target vocabulary 'min_freq' must be at least 1, got {min_freq}.")
    return VOCAB_KINDS[kind].build(texts, min_freq=min_freq, max_size=max_size, lowercase=lowercase)


def vocab_from_bytes(data: bytes) -> TargetVocab:
    """Rebuild a vocabulary written by `TargetVocab.to_bytes` (a vocabulary
    saved without counts has none)."""
    msg = srsly.json_loads(data)
    kind = msg.get("kind") if isinstance(msg, dict) else None
    if kind == "word":
        vocab: TargetVocab = WordVocab(msg["pieces"], lowercase=msg["lowercase"])
    elif kind == "bpe":
        tokenizer = import_seq2seq_extra("tokenizers", BPE_NEEDS).Tokenizer.from_str(msg["tokenizer"])
        vocab = BPEVocab(tokenizer, lowercase=msg["lowercase"])
    else:
        raise ValueError(f"Cannot read the target vocabulary: unknown kind {kind!r} (expected 'word' or 'bpe').")
    counts = msg.get("counts")
    if counts is not None and (len(counts) != len(vocab) or not all(isinstance(n, int) and n >= 0 for n in counts)):
        raise ValueError(f"Cannot read the target vocabulary: its counts are not {len(vocab)} counts, one per id.")
    vocab.counts = counts
    return vocab
