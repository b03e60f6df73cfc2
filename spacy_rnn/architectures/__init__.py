"""Registered architectures: the public config surface of spacy-rnn.

Each builder checks its settings, then assembles thinc layers from
`spacy_rnn.layers`. Names follow spaCy's `spacy_rnn.<Thing>.v<N>`; a
released version never changes: new behaviour gets a new version. The
arguments shared by the recurrent networks are documented once, in
`spacy_rnn.architectures.settings`.

- `tok2vec`: HashEmbed.v1, RNNEncoder.v1, PretrainedRNNFeatures.v1, RNNTok2Vec.v1
- `textcat`: TextCatRNN.v1, TextCatRNN.v2, TextCatRNNEnsemble.v1, TextCatRNNEnsemble.v2, NgramLinear.v1
- `seq2seq`: Seq2Seq.v1, Seq2Seq.v2 (the model of the rnn_seq2seq component)
- `pretraining`: BiLM.v1 (the objective of `spacy pretrain`)
"""
from . import pretraining, seq2seq, textcat, tok2vec  # noqa: F401 - registers the architectures
