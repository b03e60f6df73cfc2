"""Target vocabularies: special tokens at fixed ids, encode/decode round trips,
unknown pieces -> <UNK>, outputs cut at the first <EOS>, serialization."""
import math
from functools import partial

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from spacy_rnn.target_vocab import (
    BOS, EOS, PAD, SPECIAL_TOKENS, UNK, BPEVocab, WordVocab, build_vocab, cut_at_eos, split_words, vocab_from_bytes,
)

TITLES = [
    "Love it!",
    "love this dress",
    "Great dress, love it",
    "Beautiful dress!",
    "Runs small",
    "Not for me.",
    "great top, runs small",
    "Love the color!",
]


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_special_tokens_at_fixed_ids(kind):
    assert (PAD, BOS, EOS, UNK) == (0, 1, 2, 3)
    vocab = build_vocab(kind, TITLES, min_freq=1, max_size=200, lowercase=True)
    assert [vocab.id_to_piece(i) for i in range(4)] == list(SPECIAL_TOKENS)
    assert all(i > UNK for text in TITLES for i in vocab.encode(text))


def test_word_pieces_keep_spacing():
    assert split_words("Love it! runs small, don't", lowercase=True) == [
        "love", "it", "￭!", "runs", "small", "￭,", "don", "￭'", "￭t",
    ]


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_round_trip_of_known_text(kind):
    vocab = build_vocab(kind, TITLES, min_freq=1, max_size=500, lowercase=False)
    for text in TITLES:
        assert vocab.decode(vocab.encode(text)) == text


def test_word_vocab_lowercases_and_normalizes_spaces():
    vocab = WordVocab.build(TITLES, min_freq=1)
    assert vocab.decode(vocab.encode("LOVE   it!")) == "love it!"
    assert vocab.decode(vocab.encode(" Runs\tsmall ")) == "runs small"


def test_unknown_words_become_unk():
    vocab = WordVocab.build(TITLES, min_freq=1)
    ids = vocab.encode("love zebra stripes!")
    assert ids[1:3] == [UNK, UNK] and UNK not in (ids[0], ids[3])
    assert vocab.decode(ids) == "love <UNK> <UNK>!"
    assert vocab.unk_rate(["love zebra stripes!"]) == pytest.approx(0.5)


def test_min_freq_and_max_size():
    vocab = WordVocab.build(TITLES, min_freq=2, max_size=1000)
    assert "love" in vocab.ids and "beautiful" not in vocab.ids
    assert vocab.encode("beautiful") == [UNK]
    small = WordVocab.build(TITLES, min_freq=1, max_size=6)
    assert len(small) == 6
    assert small.pieces[4:] == ["love", "dress"]  # the two most frequent pieces


def test_decode_cuts_at_first_eos():
    vocab = WordVocab.build(TITLES, min_freq=1)
    love, it = vocab.encode("love it")
    assert cut_at_eos([love, it, EOS, love, EOS]) == [love, it]
    assert cut_at_eos([love, it]) == [love, it]
    assert vocab.decode([love, EOS, it, it]) == "love"
    assert vocab.decode([EOS, love]) == ""


def test_unk_replacement_by_source_words():
    vocab = WordVocab.build(TITLES, min_freq=1)
    ids = vocab.encode("love zebra!")
    assert vocab.decode(ids, unk_words=[None, "Zebra", None]) == "love zebra!"
    bpe = BPEVocab.build(TITLES, min_freq=1, max_size=100)
    love = bpe.encode("love")
    unk_words = [None] * len(love) + ["Zebra"]
    assert bpe.decode(love + [UNK, EOS], unk_words) == "love zebra"
    assert bpe.decode(love + [UNK, EOS]) == "love<UNK>"


def test_bpe_spells_out_rare_words_instead_of_unk():
    bpe = BPEVocab.build(TITLES, min_freq=1, max_size=100)
    words = WordVocab.build(TITLES, min_freq=1)
    text = "lovely sweater, great colors"
    assert bpe.unk_rate([text]) == 0.0 < words.unk_rate([text])
    assert bpe.decode(bpe.encode(text)) == text
    assert len(bpe) == 100


BPE = BPEVocab.build(TITLES, min_freq=1, max_size=120)


@settings(max_examples=50, deadline=None)
@given(st.text(alphabet=BPEVocab.alphabet(lowercase=True) + " ", max_size=30))
def test_bpe_round_trips_any_text_of_its_alphabet(text):
    single_spaced = " ".join(text.split())
    assert UNK not in BPE.encode(text)
    assert BPE.decode(BPE.encode(text) + [EOS, PAD]) == single_spaced


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_serialization_round_trip(kind):
    vocab = build_vocab(kind, TITLES, min_freq=1, max_size=100, lowercase=True)
    loaded = vocab_from_bytes(vocab.to_bytes())
    assert type(loaded) is type(vocab) and len(loaded) == len(vocab)
    for text in TITLES + ["unseen zebra words"]:
        assert loaded.encode(text) == vocab.encode(text)
        assert loaded.decode(loaded.encode(text)) == vocab.decode(vocab.encode(text))


@pytest.mark.parametrize("kind", ["word", "bpe"])
def test_counts_of_the_training_targets_round_trip(kind):
    vocab = build_vocab(kind, TITLES, min_freq=1, max_size=100, lowercase=True)
    assert vocab.counts is None and vocab_from_bytes(vocab.to_bytes()).counts is None
    vocab.count_targets(TITLES)
    assert vocab.counts[EOS] == len(TITLES) and sum(vocab.counts) == sum(len(vocab.encode(t)) + 1 for t in TITLES)
    assert vocab.counts[PAD] == vocab.counts[BOS] == 0
    loaded = vocab_from_bytes(vocab.to_bytes())
    assert loaded.counts == vocab.counts
    log_frequencies, unseen = loaded.log_frequencies()
    assert sum(math.exp(value) for value in log_frequencies) == pytest.approx(1.0)
    assert unseen == log_frequencies[PAD] < min(value for value, n in zip(log_frequencies, loaded.counts) if n)


def test_word_counts_rank_generic_words_above_specific_ones():
    vocab = build_vocab("word", TITLES, min_freq=1, max_size=100, lowercase=True)
    vocab.count_targets(TITLES)
    log_frequencies, _ = vocab.log_frequencies()
    [love], [beautiful] = vocab.encode("love"), vocab.encode("beautiful")
    assert log_frequencies[love] > log_frequencies[beautiful]


def test_bad_counts_are_explained():
    vocab = build_vocab("word", TITLES, min_freq=1, max_size=100, lowercase=True)
    with pytest.raises(ValueError, match="count_targets"):
        vocab.log_frequencies()
    vocab.counts = [1, 2]
    with pytest.raises(ValueError, match=f"not {len(vocab)} counts"):
        vocab_from_bytes(vocab.to_bytes())


def test_bad_settings_are_explained():
    with pytest.raises(ValueError, match="kind"):
        build_vocab("chars", TITLES, 1, 100, True)
    with pytest.raises(ValueError, match="max_size"):
        build_vocab("word", TITLES, 1, 4, True)
    with pytest.raises(ValueError, match="max_size' >= 72"):
        BPEVocab.build(TITLES, min_freq=1, max_size=60)
    with pytest.raises(ValueError, match="min_freq"):
        build_vocab("bpe", TITLES, 0, 100, True)
    with pytest.raises(ValueError, match="unknown kind"):
        vocab_from_bytes(b'{"kind": "chars"}')


@settings(max_examples=200, deadline=None)
@given(st.text(), st.booleans())
@example("love ￭ it￭ \x1c x\u0301 İ", True)  # the joiner mark itself, odd whitespace, combining marks
def test_word_vocab_round_trips_any_unicode_text(text, lowercase):
    """Built from the text itself: every piece is known, and decoding gives the
    text back with whitespace runs as single spaces (lowercased if asked)."""
    vocab = WordVocab.build([text], min_freq=1, lowercase=lowercase)
    ids = vocab.encode(text)
    assert UNK not in ids and all(UNK < i < len(vocab) for i in ids)
    expected = " ".join((text.lower() if lowercase else text).split())
    assert vocab.decode(ids + [EOS, PAD]) == expected
    assert vocab_from_bytes(vocab.to_bytes()).decode(ids) == expected


@settings(max_examples=100, deadline=None)
@given(st.text(), st.text())
def test_word_vocab_never_fails_on_unseen_unicode(seen, unseen):
    vocab = WordVocab.build([seen], min_freq=1)
    ids = vocab.encode(unseen)
    assert all(0 <= i < len(vocab) for i in ids)
    assert isinstance(vocab.decode(ids), str)


@settings(max_examples=100, deadline=None)
@given(st.text())
def test_bpe_vocab_round_trips_any_unicode_text_it_was_built_from(text):
    vocab = BPEVocab.build([text], min_freq=1, max_size=400, lowercase=True)
    ids = vocab.encode(text)
    assert all(0 <= i < len(vocab) for i in ids)
    decoded = vocab.decode(ids + [EOS])
    assert "".join(decoded.split()) == "".join(text.lower().replace("▁", " ").split())


@pytest.mark.parametrize("kind", ["word", "bpe"])
@pytest.mark.parametrize("lowercase", [True, False])
def test_special_token_names_typed_in_a_text_are_text(kind, lowercase):
    text = "x <EOS> y <PAD> <UNK> <BOS>"
    build = WordVocab.build if kind == "word" else partial(BPEVocab.build, max_size=400)
    vocab = build([text], min_freq=1, lowercase=lowercase)
    for loaded in (vocab, vocab_from_bytes(vocab.to_bytes())):
        ids = loaded.encode(text)
        assert not set(ids) & {PAD, BOS, EOS, UNK}
        assert "".join(loaded.decode(ids).split()) == "".join((text.lower() if lowercase else text).split())
