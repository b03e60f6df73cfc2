"""The public config surface: every registered name, pinned, resolvable, and
declared as an entry point so `spacy train` needs no --code."""
import configparser
import importlib

import pytest
from spacy.util import registry

from conftest import REPO

ARCHITECTURES = [
    "spacy_rnn.BiLM.v1",
    "spacy_rnn.BiLM.v2",
    "spacy_rnn.HashEmbed.v1",
    "spacy_rnn.NgramLinear.v1",
    "spacy_rnn.PretrainedRNNFeatures.v1",
    "spacy_rnn.RNNEncoder.v1",
    "spacy_rnn.RNNTok2Vec.v1",
    "spacy_rnn.Seq2Seq.v1",
    "spacy_rnn.Seq2Seq.v2",
    "spacy_rnn.TextCatRNN.v1",
    "spacy_rnn.TextCatRNN.v2",
    "spacy_rnn.TextCatRNNEnsemble.v1",
    "spacy_rnn.TextCatRNNEnsemble.v2",
]
FACTORIES = ["rnn_seq2seq"]
SCORERS = ["spacy_rnn.seq2seq_scorer.v1", "spacy_rnn.seq2seq_scorer.v2", "spacy_rnn.seq2seq_scorer.v3"]
READERS = ["spacy_rnn.Seq2SeqJSONL.v1"]
CALLBACKS = ["spacy_rnn.cpu_bf16.v1", "spacy_rnn.pretrained_encoder_schedule.v1",
             "spacy_rnn.pretrained_encoder_schedule.v2", "spacy_rnn.pretrained_encoder_schedule.v3"]
OPTIMIZERS = ["spacy_rnn.LazyAdam.v1"]
GROUPS = {"spacy_architectures": registry.architectures, "spacy_factories": registry.factories,
          "spacy_scorers": registry.scorers, "spacy_readers": registry.readers,
          "spacy_callbacks": registry.callbacks, "thinc_optimizers": registry.optimizers}


def entry_points():
    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    section = parser["options.entry_points"]
    return {
        group: sorted(line.split("=")[0].strip() for line in section.get(group, "").strip().splitlines())
        for group in GROUPS
    }


def test_entry_points_pinned():
    assert entry_points() == {
        "spacy_architectures": sorted(ARCHITECTURES),
        "spacy_factories": sorted(FACTORIES),
        "spacy_scorers": sorted(SCORERS),
        "spacy_readers": sorted(READERS),
        "spacy_callbacks": sorted(CALLBACKS),
        "thinc_optimizers": sorted(OPTIMIZERS),
    }


def test_registered_names_match_entry_points():
    import spacy_rnn  # noqa: F401 - registers everything

    for names, table in ((ARCHITECTURES, registry.architectures), (SCORERS, registry.scorers),
                         (READERS, registry.readers), (CALLBACKS, registry.callbacks),
                         (OPTIMIZERS, registry.optimizers)):
        assert {name for name in table.get_all() if name.startswith("spacy_rnn.")} == set(names)


@pytest.mark.parametrize("name", ARCHITECTURES)
def test_architecture_resolves(name):
    assert callable(registry.architectures.get(name))


def test_entry_points_name_the_registered_functions():
    """Each entry point's module:function is the function registered under its name."""
    import spacy_rnn  # noqa: F401 - registers everything

    parser = configparser.ConfigParser()
    parser.read(REPO / "setup.cfg")
    for group, table in GROUPS.items():
        for line in parser["options.entry_points"][group].strip().splitlines():
            name, target = (part.strip() for part in line.split("="))
            module, function = target.split(":")
            assert getattr(importlib.import_module(module), function) is table.get(name), line
