"""spacy_rnn.HashEmbed.v1: widths, trainability and clear errors."""
import numpy
import pytest
from spacy.lang.en import English
from thinc.api import SGD

from spacy_rnn.architectures.tok2vec import build_hash_embed


def test_hash_embed_concatenates_one_table_per_attribute():
    nlp = English()
    docs = [nlp.make_doc("The cats sat."), nlp.make_doc("")]
    model = build_hash_embed(12, ["NORM", "PREFIX", "SHAPE"], [100, 50, 50])
    model.initialize(X=docs)
    vectors, backprop = model.begin_update(docs)
    assert model.get_dim("nO") == 12
    assert [v.shape for v in vectors] == [(4, 12), (0, 12)]
    same_word = model.predict([nlp.make_doc("cats cats")])[0]
    numpy.testing.assert_array_equal(same_word[0], same_word[1])
    before = model.predict(docs)[0].copy()
    backprop([numpy.ones_like(v) for v in vectors])
    model.finish_update(SGD(0.1))
    assert not numpy.allclose(model.predict(docs)[0], before)


@pytest.mark.parametrize(
    "width,attrs,rows,message",
    [
        (12, [], [], "'attrs' is empty"),
        (12, ["NORM", "SHAPE"], [100], "one number per attribute"),
        (12, ["NORM", "COLOUR"], [100, 100], "unknown attribute 'COLOUR'"),
        (10, ["NORM", "PREFIX", "SHAPE"], [1, 1, 1], "multiple of the number of attrs"),
        (12, ["NORM"], [0], "must be positive"),
    ],
)
def test_bad_settings_are_named(width, attrs, rows, message):
    with pytest.raises(ValueError, match=message):
        build_hash_embed(width, attrs, rows)
