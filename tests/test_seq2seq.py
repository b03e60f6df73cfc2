"""The rnn_seq2seq component: seeded copy and reverse tasks for both decoders,
greedy and beam search, batching, empty sources and targets, serialization,
the loss and the scorer."""
import random
import warnings

import numpy
import pytest
import spacy
from spacy.tokens import DocBin
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn import get_target, set_target
from spacy_rnn.architectures.seq2seq import build_seq2seq
from spacy_rnn.scoring import seq2seq_score
from spacy_rnn.layers.encoder_decoder import Generation
from spacy_rnn.target_vocab import EOS, UNK, cut_at_eos

COLOURS = "red green blue black white pink grey gold".split()


def sequences(n=20, seed=0, words=COLOURS):
    rng = random.Random(seed)
    return [" ".join(rng.choice(words) for _ in range(rng.randint(2, 5))) for _ in range(n)]


def make_nlp(decoder="attention", component=None, **model):
    fix_random_seed(0)
    nlp = spacy.blank("en")
    config = {
        "min_freq": 1,
        "beam_size": 3,
        "max_length": 8,
        **(component or {}),
        "model": {
            "width": 32,
            "target_width": 16,
            "decoder": decoder,
            "dropout": 0.0,
            "tok2vec": {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["ORTH"], "rows": [300]},
            **model,
        },
    }
    nlp.add_pipe("rnn_seq2seq", config=config)
    return nlp


def examples_for(nlp, pairs):
    return [Example(nlp.make_doc(source), set_target(nlp.make_doc(source), target)) for source, target in pairs]


def train(nlp, pairs, epochs=100, batch_size=10):
    examples = examples_for(nlp, pairs)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    rng = random.Random(0)
    for _ in range(epochs):
        rng.shuffle(examples)
        losses = {}
        for start in range(0, len(examples), batch_size):
            nlp.update(examples[start : start + batch_size], sgd=optimizer, losses=losses)
    return losses["rnn_seq2seq"] / -(-len(examples) // batch_size)


def generated(nlp, texts, beam_size=None):
    seq2seq = nlp.get_pipe("rnn_seq2seq")
    if beam_size is not None:
        seq2seq.cfg["beam_size"] = beam_size
    return [doc._.generated for doc in nlp.pipe(texts)]


@pytest.fixture(scope="module")
def copy_nlp():
    """An attention model that has learnt to copy COLOURS sequences."""
    nlp = make_nlp("attention")
    train(nlp, [(text, text) for text in sequences()])
    return nlp


@pytest.mark.parametrize("decoder", ["repeat", "attention"])
@pytest.mark.parametrize("task", ["copy", "reverse"])
def test_learns_copy_and_reverse_with_greedy_and_beam_search(decoder, task):
    sources = sequences()
    targets = sources if task == "copy" else [" ".join(text.split()[::-1]) for text in sources]
    nlp = make_nlp(decoder)
    loss = train(nlp, list(zip(sources, targets)))
    assert loss < 0.05
    assert generated(nlp, sources, beam_size=1) == targets
    assert generated(nlp, sources, beam_size=3) == targets


@pytest.mark.parametrize(
    "settings",
    [
        {"cell": "gru"},
        {"cell": "rnn", "activation": "sigmoid"},
        {"cell": "rnn", "activation": "tanh", "bidirectional": False},
        {"cell": "lstm", "depth": 2, "bidirectional": False},
    ],
)
def test_every_cell_learns_to_reverse(settings):
    sources = sequences()
    targets = [" ".join(text.split()[::-1]) for text in sources]
    nlp = make_nlp("attention", **settings)
    train(nlp, list(zip(sources, targets)))
    assert generated(nlp, sources, beam_size=2) == targets


def test_unk_is_written_where_the_rare_words_are():
    # Every sequence holds one word seen once: with min_freq=2 it is <UNK> in
    # the target vocabulary, and the model learns to write <UNK> in its place.
    rng = random.Random(1)
    pairs = []
    for i, text in enumerate(sequences(30, seed=1)):
        words = text.split()
        words.insert(rng.randint(0, len(words)), f"rare{i}")
        pairs.append((" ".join(words), " ".join(words)))
    # SHAPE tells the rare words ("xxxxd") apart from the colours ("xxxx").
    tok2vec = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["ORTH", "SHAPE"], "rows": [300, 50]}
    nlp = make_nlp("attention", component={"min_freq": 2, "replace_unk": False}, tok2vec=tok2vec)
    train(nlp, pairs)
    sources = [source for source, _ in pairs]
    outputs = generated(nlp, sources)
    assert [text.replace("<UNK>", f"rare{i}") for i, text in enumerate(outputs)] == sources
    nlp.get_pipe("rnn_seq2seq").cfg["replace_unk"] = True
    replaced = generated(nlp, sources)
    assert not any("<UNK>" in text for text in replaced)
    assert [len(text.split()) for text in replaced] == [len(text.split()) for text in sources]


def test_unk_replacement_takes_the_most_attended_source_token(copy_nlp):
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    red, blue = seq2seq.target_vocab.encode("red blue")
    doc = copy_nlp.make_doc("Zebra red Stripes")
    generation = Generation(ids=[red, UNK, blue, UNK, EOS, UNK], sources=[1, 2, 1, 0, 0, 0])
    assert seq2seq.generated_text(doc, generation) == "red stripes blue zebra"
    assert seq2seq.generated_text(doc, generation._replace(sources=None)) == "red <UNK> blue <UNK>"
    assert seq2seq.generated_text(copy_nlp.make_doc(""), generation) == "red <UNK> blue <UNK>"


@pytest.mark.parametrize("beam_size", [1, 3])
def test_attention_points_at_the_copied_token(copy_nlp, beam_size):
    """What UNK replacement relies on: on the copy task, the most attended
    source token of an output is mostly the token it copies."""
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    seq2seq.cfg["beam_size"] = beam_size
    docs = [copy_nlp.make_doc(text) for text in sequences()]
    hits = total = 0
    for doc, generation in zip(docs, seq2seq.predict(docs)):
        for token_id, source in zip(cut_at_eos(generation.ids), generation.sources):
            hits += doc[source].text == seq2seq.target_vocab.id_to_piece(token_id)
            total += 1
    assert total == sum(len(doc) for doc in docs)
    assert hits / total > 0.8


def test_batched_decoding_equals_one_doc_at_a_time(copy_nlp):
    texts = sequences(12, seed=5) + ["red", "gold pink grey white blue black red green"]
    for beam_size in (1, 3):
        alone = [generated(copy_nlp, [text], beam_size)[0] for text in texts]
        assert generated(copy_nlp, texts, beam_size) == alone
        assert [copy_nlp(text)._.generated for text in texts] == alone


def test_teacher_forced_logits_do_not_depend_on_the_batch(copy_nlp):
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    short = examples_for(copy_nlp, [("red blue", "red blue")])
    long = examples_for(copy_nlp, [("gold pink grey white blue", "gold pink grey white blue black red")])
    (short_docs, short_targets) = [eg.predicted for eg in short], seq2seq._encode_targets(short)
    both_targets = seq2seq._encode_targets(short + long)
    alone = seq2seq.model.predict((short_docs, short_targets))
    batched = seq2seq.model.predict((short_docs + [long[0].predicted], both_targets))
    numpy.testing.assert_allclose(batched[: len(alone)], alone, atol=1e-5)


def test_loss_is_mean_cross_entropy_and_its_gradient(copy_nlp):
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    examples = examples_for(copy_nlp, [("red blue", "red blue"), ("gold", "gold")])
    rng = numpy.random.default_rng(0)
    scores = rng.normal(size=(5, len(seq2seq.target_vocab))).astype("float32")  # 3 + 2 target ids (EOS included)
    loss, d_scores = seq2seq.get_loss(examples, scores)
    gold = [i for target in seq2seq._encode_targets(examples) for i in target]
    log_probs = scores - numpy.log(numpy.exp(scores).sum(axis=1, keepdims=True))
    assert loss == pytest.approx(-log_probs[numpy.arange(5), gold].mean(), rel=1e-5)
    nudged = scores.copy()
    nudged[2, 7] += 1e-2
    assert seq2seq.get_loss(examples, nudged)[0] - loss == pytest.approx(1e-2 * d_scores[2, 7], rel=0.05)
    with pytest.raises(ValueError, match="rows of scores"):
        seq2seq.get_loss(examples[:1], scores)


@pytest.mark.parametrize("vocab_kind", ["word", "bpe"])
@pytest.mark.parametrize("decoder", ["repeat", "attention"])
def test_serialization_round_trips_give_identical_outputs(vocab_kind, decoder, tmp_path):
    pairs = [(text, text) for text in sequences(10)]
    nlp = make_nlp(decoder, component={"vocab_kind": vocab_kind, "max_size": 200, "beam_size": 2})
    train(nlp, pairs, epochs=5)
    texts = [source for source, _ in pairs] + ["zebra red", ""]
    expected = generated(nlp, texts)
    nlp.to_disk(tmp_path / "pipeline")
    loaded = spacy.load(tmp_path / "pipeline")
    assert generated(loaded, texts) == expected
    assert loaded.get_pipe("rnn_seq2seq").target_vocab.to_bytes() == nlp.get_pipe("rnn_seq2seq").target_vocab.to_bytes()
    fresh = make_nlp(decoder, component={"vocab_kind": vocab_kind, "max_size": 200, "beam_size": 2})
    fresh.get_pipe("rnn_seq2seq").from_bytes(nlp.get_pipe("rnn_seq2seq").to_bytes())
    assert generated(fresh, texts) == expected


def test_saved_pipeline_holds_no_pickle(copy_nlp, tmp_path):
    copy_nlp.to_disk(tmp_path / "pipeline")
    component = tmp_path / "pipeline" / "rnn_seq2seq"
    assert sorted(p.name for p in component.iterdir()) == ["cfg", "model", "target_vocab"]
    for path in component.iterdir():
        if path.is_file():
            assert b"\x80\x04\x95" not in path.read_bytes() and b"torch._utils" not in path.read_bytes()


def test_running_before_initialize_is_explained():
    nlp = make_nlp()
    with pytest.raises(ValueError, match="nlp.initialize"):
        nlp("red blue")


def test_empty_source_doc(copy_nlp):
    known = sequences()[0]
    texts = ["", known, ""]
    for beam_size in (1, 3):
        outputs = generated(copy_nlp, texts, beam_size)
        assert all(isinstance(text, str) for text in outputs)
        assert outputs[1] == generated(copy_nlp, [known], beam_size)[0] == known
        assert outputs[0] == outputs[2] == generated(copy_nlp, [""], beam_size)[0]
    assert isinstance(copy_nlp("")._.generated, str)


def test_training_with_an_empty_source_doc():
    nlp = make_nlp()
    pairs = [(text, text) for text in sequences(10)] + [("", "red")]
    losses = [train(nlp, pairs, epochs=1)]
    assert numpy.isfinite(losses).all()
    examples = examples_for(nlp, [("", "red")])
    optimizer = nlp.resume_training()
    assert numpy.isfinite(nlp.update(examples, sgd=optimizer)["rnn_seq2seq"])


def test_empty_targets_are_skipped_with_a_warning(copy_nlp):
    seq2seq = copy_nlp.get_pipe("rnn_seq2seq")
    good = examples_for(copy_nlp, [("red blue", "red blue"), ("gold", "gold")])
    empty = examples_for(copy_nlp, [("grey pink", ""), ("white", "  ")])
    scores = seq2seq.model.predict(([eg.predicted for eg in good], seq2seq._encode_targets(good)))
    mixed = good[:1] + empty + good[1:]
    mixed_scores = seq2seq.model.predict(([eg.predicted for eg in mixed], seq2seq._encode_targets(mixed)))
    with pytest.warns(UserWarning, match="skipped 2 of 4 examples whose target text is empty"):
        loss_with_empty, d_scores = seq2seq.get_loss(mixed, mixed_scores)
    loss, d_good = seq2seq.get_loss(good, scores)
    assert loss_with_empty == pytest.approx(loss, rel=1e-6)
    empty_rows = [len(seq2seq._encode_targets(good[:1])[0]) + i for i in range(2)]  # each empty target: one EOS
    assert numpy.all(d_scores[empty_rows] == 0)
    numpy.testing.assert_allclose(numpy.delete(d_scores, empty_rows, axis=0), d_good, rtol=1e-5, atol=1e-8)
    with pytest.warns(UserWarning, match="skipped 2 of 2"):
        losses = seq2seq.update(empty)
    assert losses == {"rnn_seq2seq": 0.0}


def test_missing_target_is_an_error(copy_nlp):
    example = Example(copy_nlp.make_doc("red"), copy_nlp.make_doc("red"))
    with pytest.raises(ValueError, match="has no target.*set_target"):
        copy_nlp.get_pipe("rnn_seq2seq").update([example])


def test_initialize_needs_a_non_empty_target():
    nlp = make_nlp()
    examples = examples_for(nlp, [("red", ""), ("blue", " ")])
    with pytest.raises(ValueError, match="No training example has a non-empty target"):
        with pytest.warns(UserWarning, match="skipped 2 of 2"):
            nlp.initialize(lambda: examples)


def test_target_travels_in_a_docbin(tmp_path):
    nlp = spacy.blank("en")
    docbin = DocBin(store_user_data=True)
    docbin.add(set_target(nlp.make_doc("a long review text"), "Short title"))
    docbin.to_disk(tmp_path / "train.spacy")
    (doc,) = DocBin().from_disk(tmp_path / "train.spacy").get_docs(nlp.vocab)
    assert get_target(doc) == "Short title"
    with pytest.raises(TypeError, match="must be a string"):
        set_target(doc, None)


def test_generated_text_goes_to_the_configured_extension():
    nlp = make_nlp(component={"output_attr": "title"})
    pairs = [(text, text) for text in sequences(6)]
    train(nlp, pairs, epochs=1)
    doc = nlp("red blue")
    assert isinstance(doc._.title, str)
    scores = nlp.evaluate(examples_for(nlp, pairs))
    assert 0.0 <= scores["s2s_rougeL"] <= 1.0


@pytest.mark.parametrize(
    "component,model,message",
    [
        ({"beam_size": 0}, {}, "'beam_size' must be a positive integer"),
        ({"max_size": 3}, {}, "'max_size' must be an integer above 4"),
        ({"output_attr": "seq2seq_target"}, {}, "holds the training target"),
        ({"vocab_kind": "chars"}, {}, "vocab_kind.*'chars' is not"),
        ({}, {"decoder": "bahdanau"}, "decoder.*'bahdanau' is not"),
        ({}, {"width": 31}, "'width' must be even when 'bidirectional'"),
    ],
)
def test_bad_settings_are_explained(component, model, message):
    with pytest.raises(ValueError, match=message):
        make_nlp(component=component, **model)


def test_bad_architecture_settings_are_explained():
    tok2vec = spacy.registry.architectures.get("spacy_rnn.HashEmbed.v1")(16, ["ORTH"], [100])
    with pytest.raises(ValueError, match="unknown decoder 'bahdanau'. Set 'decoder' to one of repeat, attention"):
        build_seq2seq(tok2vec, decoder="bahdanau")
    with pytest.raises(ValueError, match="'target_width' must be a positive integer"):
        build_seq2seq(tok2vec, target_width=0)


def test_scorer():
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq")  # registers doc._.generated

    def example(prediction, target):
        eg = Example(nlp.make_doc("source"), nlp.make_doc("source"))
        if target is not None:
            set_target(eg.reference, target)
        eg.predicted._.set("generated", prediction)
        return eg

    perfect = [
        example("Love it, so comfy!", "love it, so comfy!"),
        example("great dress for summer", "great dress for summer"),
    ]
    assert seq2seq_score(perfect) == pytest.approx({
        "s2s_rouge1": 1.0, "s2s_rouge2": 1.0, "s2s_rougeL": 1.0, "s2s_bleu": 1.0, "s2s_exact": 1.0,
    })
    # Corpus BLEU counts up to 4-grams: identical titles of fewer words score 0.
    assert seq2seq_score([example("great dress", "great dress")])["s2s_bleu"] == 0.0
    scores = seq2seq_score(
        [example("great dress", "love it"), example("love the top", "love the dress"), example("x", "")]
    )
    assert scores["s2s_exact"] == 0.0
    assert scores["s2s_rouge1"] == pytest.approx((0 + 2 / 3) / 2)
    assert scores["s2s_rouge2"] == pytest.approx((0 + 1 / 2) / 2)
    assert seq2seq_score([example("x", None)])["s2s_rougeL"] is None


def test_unk_rate_of_trained_vocabulary(copy_nlp):
    vocab = copy_nlp.get_pipe("rnn_seq2seq").target_vocab
    assert vocab.unk_rate(["red blue zebra"]) == pytest.approx(1 / 3)
    assert vocab.encode("zebra") == [UNK]


def test_warnings_are_quiet_for_clean_data(copy_nlp):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy_nlp.get_pipe("rnn_seq2seq").update(examples_for(copy_nlp, [("red", "red")]))
