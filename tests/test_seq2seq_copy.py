"""Copy attention (spacy_rnn.Seq2Seq.v2, decoder "copy"), coverage, n-gram
blocking in the component, and the measures of generic output: a seeded copy
task whose words are all outside the target vocabulary, the extended ids,
the copy mixture, batching, serialization and settings."""
import random

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from spacy.util import load_config, load_model_from_config
from thinc.api import Adam, fix_random_seed

from conftest import REPO
from spacy_rnn.layers.encoder_decoder import Generation
from spacy_rnn.nn.encoder_decoder import MIN_PROBABILITY, EncoderDecoder
from spacy_rnn import set_target
from spacy_rnn.architectures.seq2seq import build_seq2seq_v2
from spacy_rnn.scoring import (
    copied_share, distinct_ratio, novel_word_scores, novel_words, output_measures, seq2seq_score,
)
from spacy_rnn.target_vocab import EOS, SPECIAL_TOKENS, UNK, WordVocab, cut_at_eos

V2 = "spacy_rnn.Seq2Seq.v2"


def made_up_words(n, seed):
    """Distinct six-letter words, e.g. "repupa"."""
    rng = random.Random(seed)
    found = set()
    while len(found) < n:
        found.add("".join(rng.choice("bcdfghjklmnpqrstvwxz") + rng.choice("aeiou") for _ in range(3)))
    return sorted(found)


def sequences_of_new_words(n, seed):
    """n sequences of 2 to 4 words; no word occurs twice, so with min_freq 2
    the target vocabulary holds only the special tokens."""
    rng = random.Random(seed)
    words = made_up_words(4 * n, seed)
    rng.shuffle(words)
    return [" ".join(words[4 * i : 4 * i + rng.randint(2, 4)]) for i in range(n)]


TRAIN = sequences_of_new_words(200, seed=0)
TEST = [text for text in sequences_of_new_words(40, seed=1) if not set(text.split()) & set(" ".join(TRAIN).split())]


def make_nlp(decoder="copy", architecture=V2, component=None, **model):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    settings = {
        "@architectures": architecture,
        "width": 32,
        "target_width": 16,
        "decoder": decoder,
        "dropout": 0.0,
        "tok2vec": {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["ORTH"], "rows": [500]},
        **model,
    }
    nlp.add_pipe("rnn_seq2seq", config={"min_freq": 2, "beam_size": 1, "max_length": 8, **(component or {}),
                                        "model": settings})
    return nlp


def examples_for(nlp, pairs):
    return [Example(nlp.make_doc(source), set_target(nlp.make_doc(source), target)) for source, target in pairs]


def train(nlp, pairs, epochs, batch_size=10):
    examples = examples_for(nlp, pairs)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    rng = random.Random(0)
    for _ in range(epochs):
        rng.shuffle(examples)
        for start in range(0, len(examples), batch_size):
            nlp.update(examples[start : start + batch_size], sgd=optimizer)
    return nlp


def generated(nlp, texts, beam_size=1):
    nlp.get_pipe("rnn_seq2seq").cfg["beam_size"] = beam_size
    return [doc._.generated for doc in nlp.pipe(texts)]


def exact_match(outputs, targets):
    return sum(output == target for output, target in zip(outputs, targets)) / len(targets)


@pytest.fixture(scope="module")
def copy_nlp():
    """A copy decoder trained to copy sequences of words it never has in its
    target vocabulary (200 pairs, 12 epochs)."""
    return train(make_nlp("copy"), [(text, text) for text in TRAIN], epochs=12)


@pytest.fixture(scope="module")
def attention_nlp():
    """The attention decoder (with UNK replacement) on the same task and budget."""
    return train(make_nlp("attention"), [(text, text) for text in TRAIN], epochs=12)


def test_copy_attention_copies_words_outside_the_target_vocabulary(copy_nlp, attention_nlp):
    assert len(TEST) >= 35
    assert len(copy_nlp.get_pipe("rnn_seq2seq").target_vocab) == len(SPECIAL_TOKENS)
    for beam_size in (1, 3):
        assert exact_match(generated(copy_nlp, TEST, beam_size), TEST) >= 0.9
        # Only <UNK> to write: replacing each by the most attended word is not enough.
        assert exact_match(generated(attention_nlp, TEST, beam_size), TEST) < 0.2


def test_copied_words_come_out_as_extended_ids(copy_nlp):
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    docs = [copy_nlp.make_doc(text) for text in TEST[:5]]
    for doc, generation in zip(docs, seq2seq.predict(docs)):
        ids = cut_at_eos(generation.ids)
        assert all(token_id >= len(seq2seq.target_vocab) for token_id in ids)
        assert seq2seq.generated_text(doc, generation) == doc.text


def test_extended_ids_map_back_to_source_words():
    vocab = WordVocab.build(["red blue red blue"])
    blue, red = vocab.encode("blue red")
    n = len(vocab)
    source = vocab.copy_source(["Zebra", "red", "Stripes", "zebra", "n't", "!"])
    # A word outside the vocabulary gets one id per distinct piece, in order; "n't" is no single piece.
    assert source.ids == [n, red, n + 1, n, UNK, n + 2]
    assert source.extra == ["zebra", "stripes", "!"]
    # Target words of the source are reachable by copying; others stay <UNK>.
    assert vocab.encode_with_copies("Zebra, red stripes!", source.extra) == [n, UNK, red, n + 1, n + 2]
    assert vocab.encode_with_copies("Zebra, red stripes!", []) == vocab.encode("Zebra, red stripes!")
    assert vocab.decode([n, red, n + 1, blue, EOS, n], extra=source.extra) == "zebra red stripes blue"


def test_component_writes_the_source_word_of_an_extended_id(copy_nlp):
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    n = len(seq2seq.target_vocab)
    doc = copy_nlp.make_doc("Zebra stripes don't fade")
    generation = Generation(ids=[n + 1, n, UNK, EOS, n + 2], sources=[1, 0, 4, 0, 0])
    assert seq2seq.generated_text(doc, generation) == "stripes zebra fade"
    seq2seq.cfg["replace_unk"] = False
    try:
        assert seq2seq.generated_text(doc, generation) == "stripes zebra <UNK>"
    finally:
        seq2seq.cfg["replace_unk"] = True


def test_batched_copy_decoding_equals_one_doc_at_a_time(copy_nlp):
    """Each batch has its own extended vocabulary: a Doc's output does not
    depend on the words of the others."""
    texts = TEST[:6] + ["", "red", TEST[0] + " " + TEST[1]]
    for beam_size in (1, 3):
        alone = [generated(copy_nlp, [text], beam_size)[0] for text in texts]
        assert generated(copy_nlp, texts, beam_size) == alone


def random_copy_batch(coverage, seed=0):
    """An untrained copy module and a batch of three sources (one empty) whose
    tokens have ids below nO = 10 or extended ones up to 13."""
    torch.manual_seed(seed)
    module = EncoderDecoder(nI=8, nO=10, width=8, target_width=4, decoder="copy", coverage=coverage)
    lengths = [3, 0, 5]
    flat = torch.randn(sum(lengths), 8)
    source_ids = torch.tensor([4, 10, 11, 5, 12, 12, 13, 4])
    return module, flat, lengths, source_ids


@pytest.mark.parametrize("coverage", [False, True])
def test_p_gen_is_a_probability_and_the_mixture_sums_to_one(coverage):
    module, flat, lengths, source_ids = random_copy_batch(coverage)
    module.eval()
    memory = module.encode(flat, lengths, source_ids)
    assert memory.n_classes == 14
    tokens = torch.randint(4, 10, (3, 6))
    output = module.decode(tokens, module.start(memory), memory)
    assert output.scores.shape == (3, 6, 14)
    assert ((output.p_gen >= 0) & (output.p_gen <= 1)).all()
    probabilities = output.scores.exp()
    torch.testing.assert_close(probabilities.sum(dim=2), torch.ones(3, 6), atol=1e-5, rtol=0)
    # The first source has ids 10 and 11 but not 12 or 13: those are out of its reach.
    assert (probabilities[0, :, 12:] <= MIN_PROBABILITY * 1.01).all()
    assert (probabilities[0, :, 10:12] > MIN_PROBABILITY).all()
    # Nothing to copy from an empty source: all generated.
    assert (output.p_gen[1] == 1).all() and (probabilities[1, :, 10:] <= MIN_PROBABILITY * 1.01).all()
    # The copy part is the attention: P(w) - p_gen P_vocab(w) sums the weights of w's source tokens.
    weights = output.attention[2]  # source ids 5, 12, 12, 13, 4
    copy_12 = (1 - output.p_gen[2]) * weights[:, 1:3].sum(dim=1)
    assert (probabilities[2, :, 12] - copy_12).abs().max() < 1e-5


def test_generate_outputs_only_ids_of_the_source():
    module, flat, lengths, source_ids = random_copy_batch(coverage=False)
    module.eval()
    for beam_size in (1, 3):
        ids, sources = module.generate(
            flat, lengths, bos=1, eos=2, unk=UNK, banned=(0, 1), max_length=8, beam_size=beam_size,
            source_ids=source_ids,
        )
        reachable = [{10, 11}, set(), {12, 13}]
        for row, allowed in zip(ids.tolist(), reachable):
            assert {token_id for token_id in row if token_id >= 10} <= allowed
        assert sources.shape == ids.shape


def test_token_and_copy_bonuses_steer_the_search():
    module, flat, lengths, source_ids = random_copy_batch(coverage=False)
    module.eval()
    settings = dict(bos=1, eos=2, unk=UNK, banned=(0, 1), max_length=4, source_ids=source_ids)
    for beam_size in (1, 3):
        plain, _ = module.generate(flat, lengths, beam_size=beam_size, **settings)
        zero, _ = module.generate(flat, lengths, beam_size=beam_size, token_bonus=torch.zeros(10), **settings)
        assert torch.equal(plain, zero)
        favoured = torch.zeros(10)
        favoured[7] = 100.0
        ids, _ = module.generate(flat, lengths, beam_size=beam_size, token_bonus=favoured, **settings)
        assert (ids == 7).all()  # id 7 never ends an output: every step takes it
        ids, _ = module.generate(
            flat, lengths, beam_size=beam_size, token_bonus=torch.zeros(10), copy_bonus=100.0, **settings
        )
        assert (ids[[0, 2], 0] >= 10).all() and (ids[1] < 10).all()  # the empty source has nothing to copy


def test_coverage_loss():
    module, flat, lengths, source_ids = random_copy_batch(coverage=True)
    memory = module.encode(flat, lengths, source_ids)
    output = module.decode(torch.randint(4, 10, (3, 5)), module.start(memory), memory)
    loss = output.coverage_loss
    assert (loss[:, 0] == 0).all()  # nothing covered before the first step
    assert (loss >= 0).all() and (loss <= 1 + 1e-6).all()  # Σ min(a, cov) ≤ Σ a = 1
    assert (loss[1] == 0).all()  # an empty source: no attention, no coverage
    torch.testing.assert_close(output.state.coverage[0].sum(dim=1), torch.tensor([5.0, 0.0, 5.0]))


def test_loss_adds_the_weighted_coverage_loss():
    nlp = make_nlp("copy", component={"coverage_weight": 0.5, "min_freq": 1}, coverage=True)
    pairs = [("red zebra", "red zebra"), ("blue", "blue gnu")]
    train(nlp, pairs, epochs=1)
    seq2seq = nlp.get_pipe("rnn_seq2seq")
    examples = examples_for(nlp, pairs)
    scores, coverage = seq2seq.model.predict(seq2seq._model_input(examples))
    assert scores.shape[0] == coverage.shape[0] == 2 + 1 + 2 + 1  # target ids, EOS included
    loss, (d_scores, d_coverage) = seq2seq.get_loss(examples, (scores, coverage))
    cross_entropy = seq2seq.get_loss(examples, (scores, numpy.zeros_like(coverage)))[0]
    assert loss == pytest.approx(cross_entropy + 0.5 * coverage.mean(), rel=1e-5)
    numpy.testing.assert_allclose(d_coverage, 0.5 / len(coverage))
    assert numpy.isfinite(d_scores).all() and abs(float(d_scores.sum())) < 1e-4


def test_no_repeat_ngram_size_in_the_component(attention_nlp):
    """The attention decoder of the copy task writes <UNK> again and again;
    with no_repeat_ngram_size = 1 no output holds a word twice."""
    seq2seq = attention_nlp.get_pipe("rnn_seq2seq")
    seq2seq.cfg["replace_unk"] = False
    try:
        outputs = generated(attention_nlp, TEST, beam_size=3)
        assert any(len(set(text.split())) < len(text.split()) for text in outputs)
        seq2seq.cfg["no_repeat_ngram_size"] = 1
        for beam_size in (1, 3):
            outputs = generated(attention_nlp, TEST, beam_size)
            assert all(len(set(text.split())) == len(text.split()) for text in outputs)
    finally:
        seq2seq.cfg.update(replace_unk=True, no_repeat_ngram_size=0)


def test_prior_penalty_favours_words_the_targets_seldom_hold(copy_nlp, tmp_path):
    """Every target of the copy task ends with EOS, and no copied word occurs
    in two targets: with a large prior penalty the model copies words to the
    length limit instead of ending. The counts are saved with the pipeline."""
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    assert seq2seq.target_vocab.counts[EOS] == len(TRAIN)
    lengths = [len(text.split()) for text in generated(copy_nlp, TEST)]
    seq2seq.cfg["prior_penalty"] = 10.0
    try:
        penalised = generated(copy_nlp, TEST)
        assert all(len(text.split()) == 8 for text in penalised) and max(lengths) < 8
        copy_nlp.to_disk(tmp_path / "pipeline")
        assert generated(spacy.load(tmp_path / "pipeline"), TEST) == penalised
        counts, seq2seq.target_vocab.counts = seq2seq.target_vocab.counts, None  # as saved by an older version
        try:
            with pytest.raises(ValueError, match="'prior_penalty' needs the counts of the training targets"):
                generated(copy_nlp, TEST)
        finally:
            seq2seq.target_vocab.counts = counts
    finally:
        seq2seq.cfg["prior_penalty"] = 0.0


@pytest.mark.parametrize("coverage", [False, True])
def test_serialization_round_trips_of_a_copy_model(coverage, tmp_path):
    nlp = make_nlp("copy", component={"beam_size": 2, "no_repeat_ngram_size": 2}, coverage=coverage)
    train(nlp, [(text, text) for text in TRAIN[:30]], epochs=3)
    texts = TEST[:5] + ["zebra red", ""]
    expected = generated(nlp, texts, beam_size=2)
    assert any(expected)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert loaded.get_pipe("rnn_seq2seq").cfg == nlp.get_pipe("rnn_seq2seq").cfg
    assert generated(loaded, texts, beam_size=2) == expected
    fresh = make_nlp("copy", coverage=coverage)
    fresh.get_pipe("rnn_seq2seq").from_bytes(nlp.get_pipe("rnn_seq2seq").to_bytes())
    assert generated(fresh, texts, beam_size=2) == expected


def test_copy_config_builds_through_the_registry():
    config = load_config(REPO / "configs" / "seq2seq_titles_copy.cfg")
    nlp = load_model_from_config(config, auto_fill=True, validate=True)
    seq2seq = nlp.get_pipe("rnn_seq2seq")
    assert seq2seq.model.attrs["decoder"] == "copy" and seq2seq.cfg["no_repeat_ngram_size"] == 3
    assert seq2seq.cfg["prior_penalty"] == 0.2 and seq2seq.cfg["beam_size"] == 1
    assert nlp.config["components"]["rnn_seq2seq"]["model"]["@architectures"] == V2
    titles = load_model_from_config(load_config(REPO / "configs" / "seq2seq_titles.cfg"), auto_fill=True)
    assert titles.get_pipe("rnn_seq2seq").model.attrs["decoder"] == "attention"


@pytest.mark.parametrize(
    "component,model,message",
    [
        ({"vocab_kind": "bpe"}, {}, "copy decoder copies whole source words: it needs vocab_kind 'word'"),
        ({"no_repeat_ngram_size": -1}, {}, "'no_repeat_ngram_size' must be 0"),
        ({"coverage_weight": -0.5}, {}, "'coverage_weight' must be 0 or more"),
        ({"prior_penalty": -0.1}, {}, "'prior_penalty' must be 0 \\(none\\) or more"),
        ({}, {"decoder": "repeat", "coverage": True}, "'coverage' needs decoder 'attention' or 'copy'"),
        ({}, {"decoder": "pointer"}, "decoder.*'pointer' is not"),
    ],
)
def test_bad_settings_are_explained(component, model, message):
    with pytest.raises(ValueError, match=message):
        make_nlp(component=component, **model)


def test_copy_decoder_needs_source_ids(copy_nlp):
    docs = [copy_nlp.make_doc(TEST[0])]
    with pytest.raises(ValueError, match="copy decoder needs the target id of every source token"):
        copy_nlp.get_pipe("rnn_seq2seq").model.predict((docs, [[EOS]]))
    with pytest.raises(ValueError, match=r"source ids for \[1\] tokens.*\[\d\] tokens"):
        copy_nlp.get_pipe("rnn_seq2seq").model.predict((docs, [[EOS]], [[UNK]]))
    tok2vec = spacy.registry.architectures.get("spacy_rnn.HashEmbed.v1")(16, ["ORTH"], [100])
    with pytest.raises(ValueError, match="unknown decoder 'pointer'. Set 'decoder' to one of repeat, attention, copy"):
        build_seq2seq_v2(tok2vec, decoder="pointer")


# The measures of generic output


def scored(nlp, triples):
    """Examples (source, target, generated text)."""
    examples = []
    for source, target, output in triples:
        example = Example(nlp.make_doc(source), set_target(nlp.make_doc(source), target))
        example.predicted._.set("generated", output)
        examples.append(example)
    return examples


def test_distinct_ratio_and_copied_share():
    assert distinct_ratio(["Love it!", "love  it!", "Runs small"]) == pytest.approx(2 / 3)
    assert distinct_ratio([]) is None
    # 5 output words, 3 found in their own source ("great" is in the other one's).
    outputs, sources = ["Great dress", "soft, cozy Sweater"], ["the dress is soft", "a great sweater"]
    assert copied_share(outputs, sources) == pytest.approx(2 / 5)
    assert copied_share([""], ["text"]) is None


def test_novel_words():
    training = ["Love it!", "great dress"]
    assert novel_words(["Love the dress", "great", "Tunic: love"], training) == [["the"], [], ["tunic"]]


def test_output_measures_and_novel_word_scores():
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq")  # registers doc._.generated
    examples = scored(nlp, [
        ("The tunic is lovely", "Lovely tunic", "lovely tunic"),
        ("Great dress, love it", "Love it", "love it"),
        ("Fits well", "Love it", "love it"),
        ("no target", "", "ignored output"),
    ])
    assert output_measures(examples) == pytest.approx({"s2s_distinct": 2 / 3, "s2s_copied": 4 / 6})
    scores = novel_word_scores(examples, training_targets=["love it", "lovely dress"], prefix="title")
    assert scores["title_novel_n"] == 1
    assert scores["title_novel_recall"] == 1.0
    assert scores["title_novel_rougeL"] == pytest.approx(1.0)
    none = novel_word_scores(examples, training_targets=["lovely tunic love it"])
    assert none["s2s_novel_n"] == 0 and none["s2s_novel_recall"] is None and none["s2s_novel_rougeL"] is None


def test_scorer_v3_adds_the_measures_to_v2():
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq")
    examples = scored(nlp, [("Great dress", "Great dress", "great dress"), ("Fits", "Fits well", "love it")])
    v2 = spacy.registry.scorers.get("spacy_rnn.seq2seq_scorer.v2")(prefix="t")(examples)
    v3 = spacy.registry.scorers.get("spacy_rnn.seq2seq_scorer.v3")(prefix="t")(examples)
    assert v3 == pytest.approx({**v2, "t_distinct": 1.0, "t_copied": 2 / 4})
    assert v2 == pytest.approx(seq2seq_score(examples, prefix="t"))
    with pytest.raises(ValueError, match="'prefix' must be a name"):
        spacy.registry.scorers.get("spacy_rnn.seq2seq_scorer.v3")(prefix="two words")
