"""The `rnn_seq2seq` component: a trainable RNN encoder-decoder that writes a
generated text (for example a review's title) to `doc._.generated`.

Training examples carry their target text on the reference Doc (see
`spacy_rnn.set_target`). `initialize` builds the target vocabulary from
those targets, then sizes and initializes the model. `update` follows spaCy's sequence:
begin_update -> get_loss (cross-entropy over the real target positions;
padding never reaches it; plus the weighted coverage loss of a Seq2Seq.v2
model) -> backprop -> finish_update.

With the copy decoder (`spacy_rnn.Seq2Seq.v2`), the component also gives the
model the id of each source token it reads (`WordVocab.copy_source`): source
words outside the target vocabulary get ids after it, target words among them
are encoded with those ids (so the loss can reach them by copying), and a
generated extended id is written as the source word.

Empty targets: an example whose target is empty or blank is skipped, with a
warning saying how many were; an example with no target at all is an error.
A loss that is not finite stops `update` before any weight changes.

Loading checks every file (cfg, target vocabulary, model) and that the
vocabulary has the size the model was trained with before anything is
loaded (`rnn_seq2seq_checks`): a bad file gives an error that names it,
and the component stays as it was. A component that was never initialized
(e.g. disabled during nlp.initialize()) saves and loads as such, like
spaCy's own components.
"""
import dataclasses
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Literal, Optional, Tuple, Union

import srsly
from spacy import util
from spacy.language import Language
from spacy.pipeline import TrainablePipe
from spacy.pipeline.trainable_pipe import validate_examples
from spacy.tokens import Doc
from spacy.training import Example, validate_get_examples
from spacy.vocab import Vocab
from thinc.api import Config, Model, Optimizer, set_dropout_rate
from thinc.types import Floats2d

from ..layers.encoder_decoder import Generation, Seq2SeqInput, Seq2SeqScores, generate
from ..layers.weights import non_finite_message
from ..scoring import seq2seq_score
from ..target_vocab import EOS, UNK, CopySource, TargetVocab, build_vocab
from ..targets import TARGET_ATTR, get_target
from .rnn_seq2seq_checks import (
    NO_TARGET_VOCAB, SavedParts, check_component_settings, check_saved_parts, read_saved_file,
)

FACTORY = "rnn_seq2seq"
N_INIT_EXAMPLES = 10  # examples shown to the model's initialize

DEFAULT_MODEL = Config().from_str(
    """
[model]
@architectures = "spacy_rnn.Seq2Seq.v1"
width = 128
depth = 1
cell = "lstm"
bidirectional = true
dropout = 0.1
activation = "sigmoid"
decoder = "attention"
target_width = 64
nO = null

[model.tok2vec]
@architectures = "spacy_rnn.HashEmbed.v1"
width = 128
attrs = ["NORM","PREFIX","SUFFIX","SHAPE"]
rows = [5000,1000,2500,2500]
"""
)["model"]


@Language.factory(
    FACTORY,
    assigns=["doc._.generated"],
    default_config={
        "model": DEFAULT_MODEL,
        "output_attr": "generated",
        "vocab_kind": "word",
        "min_freq": 2,
        "max_size": 10000,
        "lowercase": True,
        "beam_size": 4,
        "max_length": 20,
        "length_penalty": 1.0,
        "no_repeat_ngram_size": 0,
        "prior_penalty": 0.0,
        "replace_unk": True,
        "coverage_weight": 1.0,
        "scorer": {"@scorers": "spacy_rnn.seq2seq_scorer.v2", "prefix": "s2s"},
    },
    default_score_weights={
        "s2s_rougeL": 1.0,
        "s2s_rouge1": 0.0,
        "s2s_rouge2": 0.0,
        "s2s_bleu": 0.0,
        "s2s_exact": 0.0,
    },
)
def make_rnn_seq2seq(
    nlp: Language,
    name: str,
    model: Model[Seq2SeqInput, Floats2d],
    output_attr: str,
    vocab_kind: Literal["word", "bpe"],
    min_freq: int,
    max_size: int,
    lowercase: bool,
    beam_size: int,
    max_length: int,
    length_penalty: float,
    no_repeat_ngram_size: int,
    prior_penalty: float,
    replace_unk: bool,
    coverage_weight: float,
    scorer: Optional[Callable],
) -> "RNNSeq2Seq":
    """Create an rnn_seq2seq component.

    model (Model): A `spacy_rnn.Seq2Seq.v1` or `spacy_rnn.Seq2Seq.v2` model.
    output_attr (str): Name of the Doc extension that receives the generated text.
    vocab_kind (str): Target vocabulary: "word" (words and punctuation marks)
        or "bpe" (subwords learnt with the `tokenizers` library).
    min_freq (int): Words (word vocabulary) or merges (BPE) seen fewer times
        in the training targets are left out.
    max_size (int): Largest vocabulary size, special tokens included.
    lowercase (bool): Lowercase targets before building and encoding.
    beam_size (int): 1 for greedy search, more for beam search.
    max_length (int): Most tokens generated per Doc (EOS included).
    length_penalty (float): Beam hypotheses are ranked by log probability /
        length ** length_penalty (0: none; 1: per-token mean).
    no_repeat_ngram_size (int): n > 0: greedy and beam search never repeat an
        n-gram within an output (3: no repeated trigram); 0: no blocking.
    prior_penalty (float): λ ≥ 0: the search ranks outputs by log p(output |
        source) − λ · log p(output), p(output) a unigram model of the
        training targets, which favours words that the targets seldom hold
        over generic ones (0: plain log probability).
    replace_unk (bool): With the attention and copy decoders, write the most
        attended source token in place of each generated <UNK>.
    coverage_weight (float): Weight of the coverage loss in the loss
        (Seq2Seq.v2 with coverage).
    scorer (Optional[Callable]): Scoring method (default ROUGE/BLEU/exact match).
    """
    component = RNNSeq2Seq(
        nlp.vocab, model, name, output_attr=output_attr, vocab_kind=vocab_kind, min_freq=min_freq,
        max_size=max_size, lowercase=lowercase, beam_size=beam_size, max_length=max_length,
        length_penalty=length_penalty, no_repeat_ngram_size=no_repeat_ngram_size, prior_penalty=prior_penalty,
        replace_unk=replace_unk, coverage_weight=coverage_weight, scorer=scorer,
    )
    declare_output(output_attr)
    return component


def declare_output(output_attr: str) -> None:
    """Make the factory's meta name doc._.<output_attr> in `assigns` (what
    nlp.analyze_pipes() reports). spaCy gives each new component the meta its
    factory has at that moment; replacing that meta (not changing it) before
    each component is added leaves earlier components with their own."""
    meta = Language.get_factory_meta(FACTORY)
    Language.set_factory_meta(FACTORY, dataclasses.replace(meta, assigns=[f"doc._.{output_attr}"]))


class RNNSeq2Seq(TrainablePipe):
    """Generate a text for each Doc with an RNN encoder-decoder."""

    def __init__(
        self,
        vocab: Vocab,
        model: Model[Seq2SeqInput, Floats2d],
        name: str = "rnn_seq2seq",
        *,
        output_attr: str = "generated",
        vocab_kind: str = "word",
        min_freq: int = 2,
        max_size: int = 10000,
        lowercase: bool = True,
        beam_size: int = 4,
        max_length: int = 20,
        length_penalty: float = 1.0,
        no_repeat_ngram_size: int = 0,
        prior_penalty: float = 0.0,
        replace_unk: bool = True,
        coverage_weight: float = 1.0,
        scorer: Optional[Callable] = seq2seq_score,
    ):
        check_component_settings(
            name, output_attr, vocab_kind, min_freq, max_size, beam_size, max_length, length_penalty,
            no_repeat_ngram_size, prior_penalty, coverage_weight,
        )
        if model.attrs.get("decoder") == "copy" and vocab_kind != "word":
            raise ValueError(
                f"[{name}] The copy decoder copies whole source words: it needs vocab_kind 'word', got "
                f"{vocab_kind!r}. Set vocab_kind = \"word\" or choose another decoder."
            )
        self.vocab = vocab
        self.model = model
        self.name = name
        self.scorer = scorer
        self.cfg = {
            "output_attr": output_attr,
            "vocab_kind": vocab_kind,
            "min_freq": min_freq,
            "max_size": max_size,
            "lowercase": lowercase,
            "beam_size": beam_size,
            "max_length": max_length,
            "length_penalty": length_penalty,
            "no_repeat_ngram_size": no_repeat_ngram_size,
            "prior_penalty": prior_penalty,
            "replace_unk": replace_unk,
            "coverage_weight": coverage_weight,
        }
        self.target_vocab: Optional[TargetVocab] = None
        if not Doc.has_extension(output_attr):
            Doc.set_extension(output_attr, default=None)

    # Prediction

    def predict(self, docs: Iterable[Doc]) -> List[Generation]:
        """Decode a batch of Docs together (greedy or beam search)."""
        self._check_initialized()
        docs = list(docs)
        sources = self._copy_sources(docs)
        return generate(
            self.model, docs, self.cfg["beam_size"], self.cfg["max_length"], self.cfg["length_penalty"],
            no_repeat_ngram_size=self.cfg["no_repeat_ngram_size"],
            source_ids=None if sources is None else [source.ids for source in sources],
            **self._prior_bonuses(),
        )

    def _prior_bonuses(self) -> Dict[str, Any]:
        """The token_bonus and copy_bonus of `generate`: −prior_penalty × the
        log frequency of each id in the training targets (none at 0)."""
        penalty = self.cfg["prior_penalty"]
        if not penalty:
            return {}
        if self.target_vocab.counts is None:
            raise ValueError(
                f"[{self.name}] 'prior_penalty' needs the counts of the training targets, and this pipeline's "
                "target vocabulary was saved without them (by an older spacy-rnn). Set prior_penalty = 0, or "
                "initialize and train the component again."
            )
        log_frequencies, unseen = self.target_vocab.log_frequencies()
        return {"token_bonus": [-penalty * value for value in log_frequencies], "copy_bonus": -penalty * unseen}

    def set_annotations(self, docs: Iterable[Doc], generations: List[Generation]) -> None:
        """Write each generated text, cut at its first EOS, to doc._.<output_attr>."""
        for doc, generation in zip(docs, generations):
            doc._.set(self.cfg["output_attr"], self.generated_text(doc, generation))

    def generated_text(self, doc: Doc, generation: Generation) -> str:
        """The text of a generation for `doc`: copied words (extended ids) are
        its words, and with replace_unk each <UNK> is its most attended token."""
        unk_words = None
        if self.cfg["replace_unk"] and generation.sources is not None and len(doc):
            unk_words = [
                doc[source].text if token_id == UNK else None
                for source, token_id in zip(generation.sources, generation.ids)
            ]
        sources = self._copy_sources([doc])
        return self.target_vocab.decode(generation.ids, unk_words, () if sources is None else sources[0].extra)

    # Training

    def update(
        self,
        examples: Iterable[Example],
        *,
        drop: float = 0.0,
        sgd: Optional[Optimizer] = None,
        losses: Optional[Dict[str, float]] = None,
    ) -> Dict[str, float]:
        """Learn from a batch of examples whose reference Docs carry targets."""
        if losses is None:
            losses = {}
        losses.setdefault(self.name, 0.0)
        examples = list(examples)
        validate_examples(examples, "RNNSeq2Seq.update")
        self._check_initialized()
        if not any(self._has_targets(examples, "RNNSeq2Seq.update")):
            return losses
        set_dropout_rate(self.model, drop)
        scores, backprop = self.model.begin_update(self._model_input(examples))
        loss, d_scores = self.get_loss(examples, scores)
        if not self.model.ops.xp.isfinite(loss):
            raise ValueError(f"[{self.name}] " + non_finite_message(f"the loss ({loss})"))
        backprop(d_scores)
        if sgd is not None:
            self.finish_update(sgd)
        losses[self.name] += loss
        return losses

    def get_loss(
        self, examples: Iterable[Example], scores: Union[Floats2d, Seq2SeqScores]
    ) -> Tuple[float, Union[Floats2d, Seq2SeqScores]]:
        """Mean cross-entropy of the scores of every target position (EOS
        included) and its gradient. The scores are logits, or the log
        probabilities of the copy decoder (the same formula holds: their
        softmax is themselves). For a Seq2Seq.v2 model, `scores` is (scores,
        coverage losses) and the loss adds coverage_weight × the mean coverage
        loss per target position. `scores` are those of every example; the
        examples whose target is empty (read as a lone EOS) count for nothing:
        no loss, a zero gradient."""
        examples = list(examples)
        counted = self._has_targets(examples, "RNNSeq2Seq.get_loss")
        targets = self._encode_targets(examples)
        scores, coverage = scores if isinstance(scores, tuple) else (scores, None)
        ops = self.model.ops
        gold = ops.xp.asarray([token_id for target in targets for token_id in target], dtype="int64")
        if scores.shape[0] != len(gold):
            raise ValueError(
                f"RNNSeq2Seq.get_loss: got {scores.shape[0]} rows of scores for {len(gold)} target tokens. "
                "Pass the same examples that produced the scores."
            )
        weights = ops.xp.asarray([count for count, target in zip(counted, targets) for _ in target], dtype="float32")
        weights /= max(1.0, float(weights.sum()))  # the mean over the counted target positions
        shifted = scores - scores.max(axis=1, keepdims=True)
        log_probs = shifted - ops.xp.log(ops.xp.exp(shifted).sum(axis=1, keepdims=True))
        rows = ops.xp.arange(len(gold))
        loss = -float((log_probs[rows, gold] * weights).sum())
        d_scores = ops.xp.exp(log_probs)
        d_scores[rows, gold] -= 1.0
        d_scores *= weights[:, None]
        if coverage is None:
            return loss, d_scores
        d_coverage = weights * self.cfg["coverage_weight"]
        return loss + float((coverage * d_coverage).sum()), (d_scores, d_coverage)

    def initialize(
        self,
        get_examples: Callable[[], Iterable[Example]],
        *,
        nlp: Optional[Language] = None,
    ) -> None:
        """Build the target vocabulary from the training targets, then size
        and initialize the model."""
        validate_get_examples(get_examples, "RNNSeq2Seq.initialize")
        examples = list(get_examples())
        examples = [eg for eg, kept in zip(examples, self._has_targets(examples, "RNNSeq2Seq.initialize")) if kept]
        if not examples:
            raise ValueError(
                f"[{self.name}] No training example has a non-empty target, so there is no target vocabulary "
                "to build. Attach the target texts to the reference Docs with "
                "spacy_rnn.set_target(doc, text) and save them with DocBin(store_user_data=True)."
            )
        self.target_vocab = build_vocab(
            self.cfg["vocab_kind"],
            (get_target(eg.reference) for eg in examples),
            min_freq=self.cfg["min_freq"],
            max_size=self.cfg["max_size"],
            lowercase=self.cfg["lowercase"],
        )
        self.target_vocab.count_targets(get_target(eg.reference) for eg in examples)
        self.model.set_dim("nO", len(self.target_vocab))
        self.model.initialize(X=self._model_input(examples[:N_INIT_EXAMPLES]))

    def _has_targets(self, examples: List[Example], where: str) -> List[bool]:
        """Whether each example's target is non-empty. Raises for an example
        without a target; warns about those whose target is empty, which
        training skips. The model still reads their Docs in `update`, so that a
        tok2vec listened to gets back the batch it produced."""
        kept = []
        for example in examples:
            target = get_target(example.reference)
            if target is None:
                raise ValueError(
                    f"[{self.name}] {where}: the reference Doc of an example has no target "
                    f"(doc._.{TARGET_ATTR} is None; text: {example.reference.text[:60]!r}). Set it with "
                    "spacy_rnn.set_target(doc, text) and save the Docs with "
                    "DocBin(store_user_data=True)."
                )
            kept.append(bool(target.strip()))
        if not all(kept):
            warnings.warn(
                f"[{self.name}] {where}: skipped {kept.count(False)} of {len(examples)} examples "
                "whose target text is empty. Remove them from the training data to silence this warning.",
                UserWarning,
            )
        return kept

    def _encode_targets(self, examples: List[Example]) -> List[List[int]]:
        """Target ids of each example, EOS at the end; with the copy decoder,
        target words outside the vocabulary that its source has get their
        extended ids."""
        sources = self._copy_sources([eg.predicted for eg in examples])
        if sources is None:
            return [self.target_vocab.encode(get_target(eg.reference)) + [EOS] for eg in examples]
        return [
            self.target_vocab.encode_with_copies(get_target(eg.reference), source.extra) + [EOS]
            for eg, source in zip(examples, sources)
        ]

    def _model_input(self, examples: List[Example]) -> Seq2SeqInput:
        """(Docs, target ids), and source ids for the copy decoder."""
        docs = [eg.predicted for eg in examples]
        sources = self._copy_sources(docs)
        if sources is None:
            return docs, self._encode_targets(examples)
        return docs, self._encode_targets(examples), [source.ids for source in sources]

    def _copy_sources(self, docs: List[Doc]) -> Optional[List[CopySource]]:
        """What each Doc offers to copy, from the tokens the encoder reads
        (the copy decoder only; None for the others)."""
        if self.model.attrs.get("decoder") != "copy":
            return None
        limit = self.model.attrs["max_source_length"] or None
        return [self.target_vocab.copy_source(token.text for token in doc[:limit]) for doc in docs]

    def _check_initialized(self) -> None:
        if self.target_vocab is None:
            raise ValueError(
                f"[{self.name}] The component has no target vocabulary yet: call nlp.initialize() with "
                "training examples whose reference Docs carry targets (set_target), or load a trained pipeline."
            )

    # Serialization: cfg and target vocabulary first, then the model sized by them.

    def to_bytes(self, *, exclude: Iterable[str] = tuple()) -> bytes:
        serializers = {
            "cfg": lambda: srsly.json_dumps(self.cfg),
            "vocab": lambda: self.vocab.to_bytes(exclude=exclude),
            "target_vocab": self._target_vocab_bytes,
            "model": lambda: self.model.to_bytes(),
        }
        return util.to_bytes(serializers, exclude)

    def from_bytes(self, bytes_data: bytes, *, exclude: Iterable[str] = tuple()) -> "RNNSeq2Seq":
        parts: SavedParts = {}
        deserializers = {
            "cfg": lambda b: parts.update(cfg=("the 'cfg' bytes", b)),
            "vocab": lambda b: self.vocab.from_bytes(b, exclude=exclude),
            "target_vocab": lambda b: parts.update(target_vocab=("the 'target_vocab' bytes", b)),
            "model": lambda b: parts.update(model=("the 'model' bytes", b)),
        }
        util.from_bytes(bytes_data, deserializers, exclude)
        self._load(parts)
        return self

    def to_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> None:
        serializers = {
            "cfg": lambda p: srsly.write_json(p, self.cfg),
            "vocab": lambda p: self.vocab.to_disk(p, exclude=exclude),
            "target_vocab": lambda p: p.write_bytes(self._target_vocab_bytes()),
            "model": lambda p: self.model.to_disk(p),
        }
        util.to_disk(path, serializers, exclude)

    def _target_vocab_bytes(self) -> bytes:
        """The saved target vocabulary; NO_TARGET_VOCAB before initialize, so
        that an uninitialized component saves and loads as spaCy's do."""
        return NO_TARGET_VOCAB if self.target_vocab is None else self.target_vocab.to_bytes()

    def from_disk(self, path: Union[str, Path], *, exclude: Iterable[str] = tuple()) -> "RNNSeq2Seq":
        parts: SavedParts = {}

        def read(name: str) -> Callable[[Path], None]:
            return lambda p: parts.update({name: (str(p), read_saved_file(p, self.name))})

        deserializers = {
            "cfg": read("cfg"),
            "vocab": lambda p: self.vocab.from_disk(p, exclude=exclude),
            "target_vocab": read("target_vocab"),
            "model": read("model"),
        }
        util.from_disk(path, deserializers, exclude)
        self._load(parts)
        return self

    def _load(self, parts: SavedParts) -> None:
        """Check the saved cfg, target vocabulary and model, then load them;
        nothing changes when one of them is bad."""
        cfg, target_vocab = check_saved_parts(self.name, self.cfg, self.target_vocab, self.model, parts)
        if "model" in parts:
            where, data = parts["model"]
            try:
                self.model.from_bytes(data)
            except ValueError as err:
                raise ValueError(f"[{self.name}] Cannot load the model {where}: {err}") from None
        if not Doc.has_extension(cfg["output_attr"]):
            Doc.set_extension(cfg["output_attr"], default=None)
        self.cfg, self.target_vocab = cfg, target_vocab
