"""Hardening: unusual texts and very long Docs through every component, alone
and in mixed batches; nlp.pipe with contexts; training data that cannot
train; NaN/inf; the same seed giving the same weights."""
import math
import warnings

import numpy
import pytest
import spacy
from spacy.training import Example
from thinc.api import Adam, fix_random_seed

from spacy_rnn import set_target

EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["NORM", "SHAPE"], "rows": [200, 50]}
LONG_TEXT = "word " * 50_000  # 50,000 tokens
ODD_TEXTS = [
    "",
    " ",
    "\n\t  \n",
    "x",
    "😀🎉👍🏽",
    "中文文本测试，没有空格",
    "مرحبا بالعالم",
    "e\u0301\u0301 n\u0303 \u0915\u094d\u0937",  # combining marks
    "\x00\x07\x1b[31m\u200b\ufeff\x7f",  # control and invisible characters
    LONG_TEXT,
]
NORMAL = ["what a great film", "an awful, dull film", "fine"]
PAIRS = [("red blue", "red blue"), ("green", "green"), ("blue gold red", "blue gold red"), ("pink", "pink")]


def textcat_model(cell):
    return {"@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, "cell": cell, "width": 16,
            "tok2vec": EMBED}


def textcat_nlp(cell):
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat", config={"model": textcat_model(cell)})
    return nlp


def encoder_nlp():
    """A shared tok2vec whose encoder is RNNEncoder.v1, feeding a textcat."""
    nlp = spacy.blank("en")
    encode = {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 16, "cell": "lstm"}
    nlp.add_pipe("tok2vec", config={"model": {"@architectures": "spacy.Tok2Vec.v2", "embed": EMBED, "encode": encode}})
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "tok2vec"}
    textcat = {"@architectures": "spacy.TextCatReduce.v1", "exclusive_classes": True, "use_reduce_first": False,
               "use_reduce_last": False, "use_reduce_max": False, "use_reduce_mean": True, "tok2vec": listener}
    nlp.add_pipe("textcat", config={"model": textcat})
    return nlp


def seq2seq_nlp(**model):
    nlp = spacy.blank("en")
    config = {"min_freq": 1, "beam_size": 2, "max_length": 6,
              "model": {"width": 16, "target_width": 8, "dropout": 0.0, "tok2vec": EMBED, **model}}
    nlp.add_pipe("rnn_seq2seq", config=config)
    return nlp


def cats_examples(nlp):
    return [Example.from_dict(nlp.make_doc(text), {"cats": {"POS": float(i == 0), "NEG": float(i != 0)}})
            for i, text in enumerate(NORMAL)]


def seq2seq_examples(nlp):
    return [Example(nlp.make_doc(source), set_target(nlp.make_doc(source), target)) for source, target in PAIRS]


def trained(nlp, examples, steps=3):
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    for _ in range(steps):
        nlp.update(examples, sgd=optimizer)
    return nlp


PIPELINES = {
    "textcat-lstm": lambda: trained(*with_examples(textcat_nlp("lstm"), cats_examples)),
    "textcat-gru": lambda: trained(*with_examples(textcat_nlp("gru"), cats_examples)),
    "textcat-rnn": lambda: trained(*with_examples(textcat_nlp("rnn"), cats_examples)),
    "tok2vec-encoder": lambda: trained(*with_examples(encoder_nlp(), cats_examples)),
    "seq2seq": lambda: trained(*with_examples(seq2seq_nlp(), seq2seq_examples)),
}


def with_examples(nlp, make_examples):
    return nlp, make_examples(nlp)


def output(doc):
    """What the pipeline wrote on a Doc, checked to be defined: the generated
    text, or the cats and the tok2vec tensor (None where there is none)."""
    if doc.has_extension("generated") and doc._.generated is not None:
        assert isinstance(doc._.generated, str)
        return doc._.generated
    assert set(doc.cats) == {"POS", "NEG"} and all(math.isfinite(v) for v in doc.cats.values())
    if len(doc):
        assert sum(doc.cats.values()) == pytest.approx(1.0, abs=1e-5)
    tensor = doc.tensor if doc.tensor.size else None
    if tensor is not None:
        assert tensor.shape == (len(doc), 16) and numpy.isfinite(tensor).all()
    return doc.cats, tensor


def result(nlp, doc):
    """`output`, less the cats of an empty Doc: spaCy's textcat gives zeros
    to a batch of empty Docs without asking the model, and inside a mixed
    batch the model's scores of an empty input (see the README)."""
    got = output(doc)
    return (None, got[1]) if not len(doc) and not isinstance(got, str) else got


def assert_same(got, expected):
    if isinstance(expected, str):
        assert got == expected
        return
    if expected[0] is not None:
        assert got[0] == pytest.approx(expected[0], abs=1e-5)
    if expected[1] is not None:
        numpy.testing.assert_allclose(got[1], expected[1], atol=1e-5)


@pytest.fixture(scope="module", params=sorted(PIPELINES))
def pipeline(request):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return PIPELINES[request.param]()


def test_odd_texts_alone_and_in_mixed_batches(pipeline):
    alone = [result(pipeline, pipeline(text)) for text in ODD_TEXTS + NORMAL]
    mixed = [text for pair in zip(ODD_TEXTS, NORMAL * 4) for text in pair] + ODD_TEXTS[len(NORMAL) * 4 :]
    mixed += NORMAL
    expected = dict(zip(ODD_TEXTS + NORMAL, alone))
    for batch_size in (1, 4, 64):
        for text, doc in zip(mixed, pipeline.pipe(mixed, batch_size=batch_size)):
            assert doc.text == text
            assert_same(result(pipeline, doc), expected[text])


def test_long_doc_is_cut_to_max_length(pipeline):
    """Past max_length (5,000 tokens for textcat, 1,000 for seq2seq sources)
    extra tokens change nothing; the encoder still gives every token a vector."""
    longer = pipeline(LONG_TEXT + "different words at the very end")
    doc = pipeline(LONG_TEXT)
    if "tok2vec" in pipeline.pipe_names:
        assert doc.tensor.shape == (50_000, 16)
        numpy.testing.assert_allclose(longer.tensor[:50_000], doc.tensor, atol=1e-6)
    else:
        assert_same(output(longer), output(doc))


def test_pipe_as_tuples_keeps_contexts_in_order(pipeline):
    texts = ODD_TEXTS[:-1] + NORMAL
    contexts = [{"id": i} if i % 3 else None for i in range(len(texts))]
    pairs = list(pipeline.pipe(zip(texts, contexts), as_tuples=True, batch_size=4))
    assert [doc.text for doc, _ in pairs] == texts
    assert all(got is sent for (_, got), sent in zip(pairs, contexts))
    for (doc, _), text in zip(pairs, texts):
        assert_same(result(pipeline, doc), result(pipeline, pipeline(text)))


@pytest.mark.parametrize("make_nlp,make_examples", [
    (lambda: textcat_nlp("gru"), cats_examples),
    (encoder_nlp, cats_examples),
    (lambda: seq2seq_nlp(decoder="repeat", cell="rnn"), seq2seq_examples),
])
def test_same_seed_gives_identical_weights_and_predictions(make_nlp, make_examples):
    runs = []
    for _ in range(2):
        nlp = trained(*with_examples(make_nlp(), make_examples), steps=4)
        weights = [nlp.get_pipe(name).model.to_bytes() for name in nlp.pipe_names]
        runs.append((weights, [output(doc) for doc in nlp.pipe(NORMAL + ODD_TEXTS[:-1])]))
    assert runs[0][0] == runs[1][0]
    for got, expected in zip(runs[1][1], runs[0][1]):
        assert_same(got, expected)
        if not isinstance(expected, str):
            assert got[0] == expected[0]


# Training data that cannot train


@pytest.mark.parametrize("make_nlp", [lambda: textcat_nlp("lstm"), seq2seq_nlp])
def test_empty_training_set_is_an_error(make_nlp):
    nlp = make_nlp()
    with pytest.raises(TypeError, match="E930"):
        nlp.initialize(lambda: [])


def test_seq2seq_reference_without_target_is_an_error():
    nlp = seq2seq_nlp()
    examples = seq2seq_examples(nlp) + [Example(nlp.make_doc("gold"), nlp.make_doc("gold"))]
    with pytest.raises(ValueError, match="has no target.*set_target"):
        nlp.initialize(lambda: examples)


def poison(nlp, pipe_name, value=float("nan")):
    """Set one torch weight of a component to NaN (or inf)."""
    model = nlp.get_pipe(pipe_name).model
    shim = next(shim for node in model.walk() for shim in node.shims)
    weight = next(iter(shim.module.parameters()))
    with __import__("torch").no_grad():
        weight.view(-1)[0] = value
    return shim


@pytest.mark.parametrize("cell", ["lstm", "rnn"])
def test_diverged_textcat_stops_with_a_clear_error_and_is_not_saved(cell, tmp_path):
    nlp = trained(*with_examples(textcat_nlp(cell), cats_examples))
    poison(nlp, "textcat")
    with pytest.raises(ValueError, match="NaN or infinite values in the output of the 'rnn_pooled' layer"):
        nlp("a great film")
    with pytest.raises(ValueError, match="NaN or infinite values in the PooledRecurrentEncoder weights.*grad_clip"):
        nlp.to_disk(tmp_path / "pipeline")
    assert not (tmp_path / "pipeline" / "textcat" / "model").exists()


def test_nan_in_a_thinc_parameter_is_not_saved():
    nlp = trained(*with_examples(textcat_nlp("gru"), cats_examples))
    output_layer = nlp.get_pipe("textcat").model.get_ref("output_layer")
    output_layer.get_param("b")[0] = float("inf")
    with pytest.raises(ValueError, match="NaN or infinite values in the parameter 'b' of the layer 'softmax'"):
        nlp.get_pipe("textcat").to_bytes()


def test_seq2seq_update_with_a_non_finite_loss_changes_no_weight():
    nlp = trained(*with_examples(seq2seq_nlp(), seq2seq_examples))
    shim = poison(nlp, "rnn_seq2seq")
    before = {name: value.clone() for name, value in shim.module.state_dict().items()}
    optimizer = nlp.resume_training()
    with pytest.raises(ValueError, match=r"NaN or infinite values in the loss \(nan\)"):
        nlp.update(seq2seq_examples(nlp), sgd=optimizer)
    for name, value in shim.module.state_dict().items():
        assert value.allclose(before[name], rtol=0, atol=0, equal_nan=True), name


def test_two_processes_keep_contexts_order_and_results(tmp_path):
    """textcat and rnn_seq2seq in one pipeline, nlp.pipe(as_tuples=True) with
    n_process=2 against one process (in a subprocess: a hang is bounded)."""
    import json
    import subprocess
    import sys

    nlp = seq2seq_nlp()
    nlp.add_pipe("textcat", config={"model": textcat_model("gru")})
    examples = seq2seq_examples(nlp)
    for example in examples:
        example.reference.cats = {"POS": 1.0, "NEG": 0.0} if "red" in example.text else {"POS": 0.0, "NEG": 1.0}
    trained(nlp, examples).to_disk(tmp_path / "pipeline")
    script = (
        "import json, spacy, sys\n"
        "nlp = spacy.load(sys.argv[1])\n"
        "texts = json.loads(sys.argv[2]) * 10\n"
        "def run(n):\n"
        "    pairs = nlp.pipe(((t, {'i': i}) for i, t in enumerate(texts)), as_tuples=True, batch_size=4, n_process=n)\n"
        "    return [[c['i'], d.text, d.cats, d._.generated] for d, c in pairs]\n"
        "print(json.dumps([run(1), run(2)]))\n"
    )
    texts = ODD_TEXTS[:-1] + NORMAL
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "pipeline"), json.dumps(texts)],
                            capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr[-2000:]
    one, two = json.loads(result.stdout.strip().splitlines()[-1])
    assert [row[:2] for row in one] == [[i, text] for i, text in enumerate(texts * 10)]
    assert [row[:2] for row in two] == [row[:2] for row in one]
    for (_, _, cats_one, generated_one), (_, _, cats_two, generated_two) in zip(one, two):
        assert cats_two == pytest.approx(cats_one, abs=1e-6) and generated_two == generated_one


def test_grad_clip_bounds_the_update_of_the_torch_weights():
    """[training.optimizer] grad_clip reaches the RNN's torch weights: with
    plain SGD at rate 1, no weight tensor moves by more than the clip norm,
    while the same step without clipping moves further."""
    from thinc.api import SGD

    def largest_move(grad_clip):
        nlp = textcat_nlp("lstm")
        examples = cats_examples(nlp)
        fix_random_seed(0)
        nlp.initialize(lambda: examples)
        nlp.update(examples, sgd=SGD(0.1))  # the output layer starts at zero: no gradient reaches the RNN yet
        module = nlp.get_pipe("textcat").model.get_ref("rnn").shims[0].module
        before = {name: value.detach().clone() for name, value in module.named_parameters()}
        nlp.update(examples, sgd=SGD(1.0, grad_clip=grad_clip))
        return max(float((value.detach() - before[name]).norm()) for name, value in module.named_parameters())

    assert largest_move(grad_clip=0.0) > 2e-3
    assert 0 < largest_move(grad_clip=1e-3) <= 1e-3 + 1e-7
