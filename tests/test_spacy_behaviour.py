"""spacy-rnn components behave like spaCy's own where spaCy users rely on it:
saving a pipeline whose spacy-rnn component was never initialized, model
initialization without data when every width is known, copies made by
replace_listeners, analyze_pipes, score keys of several components, a corpus
reader for seq2seq JSONL, and labels added after initialize."""
import gzip
import json

import numpy
import pytest
import spacy
import torch
from spacy.training import Example
from spacy.util import registry
from thinc.api import Adam, fix_random_seed

from spacy_rnn.architectures.textcat import build_ngram_linear, build_textcat_rnn, build_textcat_rnn_ensemble
from spacy_rnn.architectures.tok2vec import build_hash_embed
from spacy_rnn.corpus import DataError
from spacy_rnn.layers.shims import TorchModuleShim
from spacy_rnn import get_target, set_target
from spacy_rnn.scoring import seq2seq_score

EMBED = {"@architectures": "spacy_rnn.HashEmbed.v1", "width": 16, "attrs": ["NORM"], "rows": [200]}
RNN = {"width": 16, "tok2vec": EMBED}
TEXTCAT_RNN = {"@architectures": "spacy_rnn.TextCatRNN.v1", "exclusive_classes": True, **RNN}
LINEAR = {"@architectures": "spacy_rnn.NgramLinear.v1", "exclusive_classes": True, "length": 1024}
ENCODER_TOK2VEC = {
    "@architectures": "spacy.Tok2Vec.v2",
    "embed": EMBED,
    "encode": {"@architectures": "spacy_rnn.RNNEncoder.v1", "width": 16, "cell": "gru"},
}
TAGGER = {"@architectures": "spacy.Tagger.v2", "tok2vec": ENCODER_TOK2VEC}
SEQ2SEQ = {"min_freq": 1, "beam_size": 1, "max_length": 4, "model": {"target_width": 8, **RNN}}
WORDS = ["good film", "bad film", "great fun", "dull plot", "fine actor", "awful story"]
TAGS = {"good": "ADJ", "bad": "ADJ", "great": "ADJ", "dull": "ADJ", "fine": "ADJ", "awful": "ADJ"}


def examples_for(nlp, texts=WORDS):
    """Examples with cats, tags and a seq2seq target, so that any component can train on them."""
    examples = []
    for i, text in enumerate(texts):
        annotations = {"cats": {"POS": float(i % 2 == 0), "NEG": float(i % 2 == 1)},
                       "tags": [TAGS.get(word, "NOUN") for word in text.split()]}
        example = Example.from_dict(nlp.make_doc(text), annotations)
        set_target(example.reference, text.split()[0])
        examples.append(example)
    return examples


def train(nlp, examples, steps):
    """Initialize, then update `steps` times; the losses of each update."""
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    return [nlp.update(examples, sgd=optimizer, drop=0.0) for _ in range(steps)]


# --- 1. a pipeline with an uninitialized spacy-rnn component saves and loads -------------------------


DISABLED_COMPONENTS = {
    "textcat_rnn": ("textcat_multilabel", {"model": dict(TEXTCAT_RNN, cell="rnn", exclusive_classes=False)}),
    "textcat_lstm": ("textcat_multilabel", {"model": dict(TEXTCAT_RNN, cell="lstm", exclusive_classes=False)}),
    "textcat_gru": ("textcat_multilabel", {"model": dict(TEXTCAT_RNN, cell="gru", exclusive_classes=False)}),
    "ensemble": ("textcat_multilabel", {"model": {
        "@architectures": "spacy_rnn.TextCatRNNEnsemble.v1", "exclusive_classes": False, **RNN,
        "linear_model": dict(LINEAR, exclusive_classes=False)}}),
    "rnn_encoder": ("tagger", {"model": TAGGER}),
    "rnn_seq2seq": ("rnn_seq2seq", SEQ2SEQ),
}


@pytest.mark.parametrize("kind", sorted(DISABLED_COMPONENTS))
def test_disabled_component_saves_reloads_and_trains_after_enabling(kind, tmp_path):
    factory, config = DISABLED_COMPONENTS[kind]
    nlp = spacy.blank("en")
    nlp.add_pipe("textcat")
    nlp.add_pipe(factory, config=config)
    nlp.disable_pipe(factory)
    examples = examples_for(nlp)
    nlp.initialize(lambda: examples)  # skips the disabled component
    nlp.to_disk(tmp_path / "pipeline")

    spacy.load(tmp_path / "pipeline").to_disk(tmp_path / "again")  # a loaded uninitialized component saves too
    loaded = spacy.load(tmp_path / "again")
    assert loaded.disabled == [factory]
    loaded.enable_pipe(factory)
    losses = [step[factory] for step in train(loaded, examples_for(loaded), steps=12)]
    assert losses[-1] < 0.8 * losses[0]
    loaded.to_disk(tmp_path / "trained")
    reloaded = spacy.load(tmp_path / "trained")
    annotations = [[(doc.to_json(), doc.user_data) for doc in nlp.pipe(WORDS)] for nlp in (loaded, reloaded)]
    assert annotations[0] == annotations[1]  # cats, tags, or the generated text in user_data


def test_uninitialized_seq2seq_component_round_trips_in_bytes():
    nlp = spacy.blank("en")
    component = nlp.add_pipe("rnn_seq2seq", config=SEQ2SEQ)
    fresh = spacy.blank("en").add_pipe("rnn_seq2seq", config=SEQ2SEQ)
    fresh.from_bytes(component.to_bytes())
    assert fresh.target_vocab is None
    with pytest.raises(ValueError, match="nlp.initialize"):
        fresh.predict([nlp.make_doc("red")])


def test_an_unbuilt_shim_loads_back_unbuilt_and_replaces_built_weights():
    built = TorchModuleShim(torch_linear)
    built.build(n=3)
    unbuilt = TorchModuleShim(torch_linear)
    assert TorchModuleShim(torch_linear).from_bytes(unbuilt.to_bytes()).module is None
    assert built.from_bytes(unbuilt.to_bytes()).module is None  # as thinc loads unset parameters
    with pytest.raises(ValueError, match="not a spacy-rnn weights record"):
        unbuilt.from_bytes(b"\x81\xa6config\xc0")  # a map with only 'config': damaged, not 'not built'


def torch_linear(n):
    return torch.nn.Linear(n, n)


# --- 2. model.initialize() without data when every width is known -----------------------------------


def test_textcat_models_initialize_without_data_when_widths_are_known():
    nlp = spacy.blank("en")
    docs = [nlp.make_doc("a good film"), nlp.make_doc("")]
    models = [
        build_textcat_rnn(tok2vec=build_hash_embed(32, ["NORM", "PREFIX"], [500, 500]), exclusive_classes=True,
                          width=32, nO=3),
        build_textcat_rnn_ensemble(tok2vec=build_hash_embed(32, ["NORM", "PREFIX"], [500, 500]),
                                   linear_model=build_ngram_linear(exclusive_classes=True, length=64, nO=3),
                                   exclusive_classes=True, width=32, nO=3),
    ]
    for model in models:
        model.initialize()
        assert model.get_ref("rnn").get_dim("nI") == 32
        scores = model.predict(docs)
        assert scores.shape == (2, 3)
        numpy.testing.assert_allclose(scores.sum(axis=1), 1.0, rtol=1e-5)


# --- 3. replace_listeners: every copy gets its own shim id and optimizer state ------------------------


def tok2vec_tagger_textcat(listening_tagger):
    """tok2vec (RNNEncoder) -> tagger + textcat (TextCatRNN), both listening, or a tagger with its own tok2vec."""
    nlp = spacy.blank("en")
    listener = {"@architectures": "spacy.Tok2VecListener.v1", "width": 16, "upstream": "tok2vec"}
    nlp.add_pipe("tok2vec", config={"model": ENCODER_TOK2VEC})
    tagger_tok2vec = listener if listening_tagger else ENCODER_TOK2VEC
    nlp.add_pipe("tagger", config={"model": dict(TAGGER, tok2vec=tagger_tok2vec)})
    nlp.add_pipe("textcat", config={"model": dict(TEXTCAT_RNN, tok2vec=listener)})
    return nlp


def shim_ids(nlp):
    return [shim.id for _, pipe in nlp.pipeline for node in pipe.model.walk() for shim in node.shims]


def weights(model):
    arrays = [node.get_param(name) for node in model.walk() for name in node.param_names if node.has_param(name)]
    tensors = [t for node in model.walk() for shim in node.shims for t in shim.module.state_dict().values()]
    return arrays + [tensor.numpy() for tensor in tensors]


def assert_same_weights(model, other, atol=0.0, what=""):
    mine, theirs = weights(model), weights(other)
    assert len(mine) == len(theirs)
    for a, b in zip(mine, theirs):
        numpy.testing.assert_allclose(a, b, rtol=0, atol=atol, err_msg=what)


def test_replace_listeners_gives_the_copy_its_own_shim_id_and_optimizer_state():
    replaced = tok2vec_tagger_textcat(listening_tagger=True)
    examples = examples_for(replaced)
    fix_random_seed(0)
    replaced.initialize(lambda: examples)
    replaced.replace_listeners("tok2vec", "tagger", ["model.tok2vec"])
    ids = shim_ids(replaced)
    assert len(ids) == 3 and len(set(ids)) == 3  # tok2vec's encoder, its copy in the tagger, textcat's RNN

    separate = tok2vec_tagger_textcat(listening_tagger=False)
    separate.initialize(lambda: examples_for(separate))
    for name in separate.pipe_names:
        separate.get_pipe(name).from_bytes(replaced.get_pipe(name).to_bytes())
    for nlp in (replaced, separate):
        optimizer = Adam(0.01)
        for _ in range(10):
            nlp.update(examples, sgd=optimizer, drop=0.0)
    for name in replaced.pipe_names:
        assert_same_weights(replaced.get_pipe(name).model, separate.get_pipe(name).model, atol=1e-6, what=name)


def test_a_copied_model_has_new_shim_ids_and_the_same_weights():
    model = build_textcat_rnn(tok2vec=build_hash_embed(16, ["NORM"], [100]), exclusive_classes=True, width=16, nO=2)
    model.initialize()
    copied = model.copy()
    original_shim, copied_shim = [next(node.shims[0] for node in m.walk() if node.shims) for m in (model, copied)]
    assert copied_shim.id != original_shim.id and copied_shim.module is not original_shim.module
    assert_same_weights(model, copied)


# --- 4. analyze_pipes names the extension each rnn_seq2seq writes ---------------------------------------


def test_analyze_pipes_follows_output_attr():
    nlp = spacy.blank("en")
    nlp.add_pipe("rnn_seq2seq", name="titles", config={"output_attr": "title"})
    nlp.add_pipe("rnn_seq2seq", name="summaries", config={"output_attr": "summary"})
    nlp.add_pipe("rnn_seq2seq")
    expected = {"titles": ["doc._.title"], "summaries": ["doc._.summary"], "rnn_seq2seq": ["doc._.generated"]}
    for pipeline in (nlp, spacy.util.load_model_from_config(nlp.config)):
        summary = pipeline.analyze_pipes()["summary"]
        assert {name: summary[name]["assigns"] for name in expected} == expected
    assert nlp.analyze_pipes()["attrs"]["doc._.title"] == {"assigns": ["titles"], "requires": []}


# --- 5. two rnn_seq2seq components score under their own keys -----------------------------------------


def test_two_seq2seq_components_write_their_own_score_keys():
    nlp = spacy.blank("en")
    for name, prefix in (("titles", "title"), ("short", "short")):
        config = dict(SEQ2SEQ, output_attr=name, scorer={"@scorers": "spacy_rnn.seq2seq_scorer.v2", "prefix": prefix})
        nlp.add_pipe("rnn_seq2seq", name=name, config=config)
    examples = examples_for(nlp)
    fix_random_seed(0)
    optimizer = nlp.initialize(lambda: examples, sgd=Adam(0.01))
    for _ in range(20):
        nlp.update(examples, sgd=optimizer, exclude=["short"])  # so that the two score differently
    scores = nlp.evaluate(examples)
    predicted = [Example(nlp(eg.reference.text), eg.reference) for eg in examples]
    for name, prefix in (("titles", "title"), ("short", "short")):
        own = {key: value for key, value in scores.items() if key.startswith(prefix + "_")}
        assert own == seq2seq_score(predicted, output_attr=name, prefix=prefix) and len(own) == 5
    assert scores["title_rougeL"] > 0.5 > scores["short_rougeL"]


def test_seq2seq_scorer_v1_and_v2_default_keep_the_s2s_keys():
    nlp = spacy.blank("en")
    doc = set_target(nlp.make_doc("red blue"), "red")
    doc._.generated = "red"
    examples = [Example(doc, doc)]
    v1 = registry.scorers.get("spacy_rnn.seq2seq_scorer.v1")()(examples)
    v2 = registry.scorers.get("spacy_rnn.seq2seq_scorer.v2")()(examples)
    assert v1 == v2 and set(v1) == {"s2s_rouge1", "s2s_rouge2", "s2s_rougeL", "s2s_bleu", "s2s_exact"}
    assert v1["s2s_exact"] == 1.0
    with pytest.raises(ValueError, match="'prefix' must be a name"):
        registry.scorers.get("spacy_rnn.seq2seq_scorer.v2")(prefix="two words")


# --- 6. spacy_rnn.Seq2SeqJSONL.v1 ------------------------------------------------------------------------


def write_jsonl(path, records):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf8") as file_:
        file_.writelines(json.dumps(record) + "\n" for record in records)
    return path


def read_examples(path, **settings):
    reader = registry.readers.get("spacy_rnn.Seq2SeqJSONL.v1")(path, **settings)
    return list(reader(spacy.blank("en")))


@pytest.mark.parametrize("suffix", [".jsonl", ".jsonl.gz"])
def test_seq2seq_reader_gives_examples_with_targets(tmp_path, suffix):
    long_text = " ".join(f"Sentence number {i} of a long review." for i in range(400))  # 3200 tokens
    records = [{"review": "A fine dress.", "title": "Fine", "stars": 5}, {"review": long_text, "title": "Long"},
               {"review": "", "title": ""}]
    path = write_jsonl(tmp_path / f"titles{suffix}", records)
    examples = read_examples(path, text_field="review", target_field="title")
    assert [eg.reference.text for eg in examples] == [record["review"] for record in records]
    assert [get_target(eg.reference) for eg in examples] == ["Fine", "Long", ""]
    assert [get_target(eg.predicted) for eg in examples] == [None, None, None]
    assert len(examples[1].reference) == len(examples[1].predicted) == 3200  # one Doc: never cut apart
    assert [get_target(eg.reference) for eg in read_examples(path, text_field="review", target_field="title",
                                                              limit=2)] == ["Fine", "Long"]


@pytest.mark.parametrize("line,message", [
    ('{"text": "a review"}', ":2: missing field(s) target"),
    ('{"text": "a review", "target": 5}', ":2: 'target' must be a string, got 5"),
    ('{"text": ["a"], "target": "t"}', ":2: 'text' must be a string"),
    ('{"text": "a review", "target": "t"', ":2: not valid JSON"),
    ('["a review", "t"]', ":2: expected a JSON object"),
])
def test_seq2seq_reader_names_the_file_and_line_of_a_bad_record(tmp_path, line, message):
    path = tmp_path / "train.jsonl"
    path.write_text('{"text": "fine", "target": "ok"}\n' + line + "\n", encoding="utf8")
    with pytest.raises(DataError) as err:
        read_examples(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_seq2seq_reader_names_a_missing_file_or_path(tmp_path):
    with pytest.raises(DataError, match=f"{tmp_path / 'missing.jsonl'}: no such file"):
        read_examples(tmp_path / "missing.jsonl")
    with pytest.raises(ValueError, match="'path' is not set"):
        read_examples(None)
    with pytest.raises(ValueError, match="'limit' must be a number of records"):
        read_examples(write_jsonl(tmp_path / "ok.jsonl", []), limit=-1)


# --- 7. labels after initialize: E922, as spaCy's own textcat ---------------------------------------------


@pytest.mark.parametrize("model", [None, TEXTCAT_RNN], ids=["spacy_textcat", "textcat_rnn"])
def test_add_label_after_initialize_raises_E922_like_spacy_textcat(model):
    config = {"model": model} if model else {}
    nlp = spacy.blank("en")
    textcat = nlp.add_pipe("textcat", config=config)
    examples = examples_for(nlp)
    nlp.initialize(lambda: examples)
    with pytest.raises(ValueError, match=r"\[E922\] Component 'textcat' has been initialized with an output "
                                         "dimension of 2"):
        textcat.add_label("MIXED")
    with pytest.raises(ValueError, match="E922"):  # initializing again keeps the labels, so it cannot add one
        nlp.initialize(lambda: with_label(examples, "MIXED"))
    # What to do instead: a new component initialized with every label, or every label before initialize.
    textcat = nlp.replace_pipe("textcat", "textcat", config=config)
    nlp.initialize(lambda: with_label(examples, "MIXED"))
    assert textcat.labels == ("POS", "NEG", "MIXED") and set(nlp("good film").cats) == {"POS", "NEG", "MIXED"}
    union = spacy.blank("en")
    union_textcat = union.add_pipe("textcat", config=config)
    for label in ("POS", "NEG", "MIXED"):
        union_textcat.add_label(label)
    union.initialize(lambda: examples_for(union))
    assert len(union("good film").cats) == 3


def with_label(examples, label):
    """The examples with a new exclusive label, which the first one gets."""
    for i, example in enumerate(examples):
        cats = {name: 0.0 for name in example.reference.cats} if i == 0 else example.reference.cats
        example.reference.cats = {**cats, label: float(i == 0)}
    return examples
