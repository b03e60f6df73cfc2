"""spacy-rnn's thread policy: its torch modules compute on MODULE_THREADS
torch threads in training, inference, seq2seq decoding, nlp.pipe workers and
Dask workers, and the caller's own thread count is what it was afterwards."""
import threading

import pytest
import spacy
import torch
from distributed import Client, LocalCluster
from spacy.tokens import Doc
from spacy.training import Example

import spacy_rnn.nn.recurrent as recurrent
import spacy_rnn.nn.encoder_decoder as seq2seq
from spacy_rnn.annotate import annotate
from spacy_rnn.threads import MODULE_THREADS, torch_threads
from spacy_rnn import set_target
from tiny_pipeline import TEXTS, make_pipeline

USER_THREADS = 2  # the caller's own setting: not the policy's
assert USER_THREADS != MODULE_THREADS


def record_threads(seen):
    """Patch the torch modules' entry points so that each call, and each
    backward pass through the encoder, appends torch's thread count to `seen`;
    returns a function that removes the patches."""
    encode, generate = recurrent.RecurrentEncoder.forward, seq2seq.EncoderDecoder.generate

    def recording_encode(self, flat, lengths):
        seen.append(("forward", torch.get_num_threads()))
        states, final = encode(self, flat, lengths)
        if states.requires_grad:
            states.register_hook(lambda grad: seen.append(("backward", torch.get_num_threads())))
        return states, final

    def recording_generate(self, *args, **kwargs):
        seen.append(("generate", torch.get_num_threads()))
        return generate(self, *args, **kwargs)

    recurrent.RecurrentEncoder.forward, seq2seq.EncoderDecoder.generate = recording_encode, recording_generate

    def restore():
        recurrent.RecurrentEncoder.forward, seq2seq.EncoderDecoder.generate = encode, generate

    return restore


@pytest.fixture
def user_threads():
    before = torch.get_num_threads()
    torch.set_num_threads(USER_THREADS)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def seen():
    calls = []
    restore = record_threads(calls)
    yield calls
    restore()


def test_torch_threads_restores_the_callers_count_also_after_an_error(user_threads):
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == USER_THREADS
    with pytest.raises(RuntimeError):
        with torch_threads(1):
            raise RuntimeError("inside")
    assert torch.get_num_threads() == USER_THREADS


def test_training_and_inference_use_the_policy_and_restore_the_users_threads(user_threads, seen):
    nlp = make_pipeline()  # initializes and updates textcat and rnn_seq2seq
    assert {kind for kind, _ in seen} == {"forward", "backward"}
    seen.clear()
    reference = nlp.make_doc("good film")
    reference.cats = {"POS": 1.0, "NEG": 0.0}
    nlp.update([Example(nlp.make_doc("good film"), set_target(reference, "good"))])
    assert {kind for kind, _ in seen} == {"forward", "backward"}
    list(nlp.pipe(TEXTS[:20], batch_size=8))
    assert {kind for kind, _ in seen} == {"forward", "backward", "generate"}
    assert {threads for _, threads in seen} == {MODULE_THREADS}
    assert torch.get_num_threads() == USER_THREADS


def test_nlp_pipe_workers_use_the_policy(user_threads, seen):
    nlp = make_pipeline()
    if not Doc.has_extension("rnn_threads"):
        Doc.set_extension("rnn_threads", default=None)

    @spacy.Language.component("record_rnn_threads")
    def record_rnn_threads(doc):  # runs in the worker: reads what its textcat saw
        doc._.rnn_threads = sorted({threads for _, threads in seen})
        return doc

    nlp.add_pipe("record_rnn_threads")
    seen.clear()  # what the workers see from here on is what they ran
    docs = list(nlp.pipe(TEXTS[:40], batch_size=8, n_process=2))
    assert [doc.text for doc in docs] == TEXTS[:40]
    assert all(doc._.rnn_threads == [MODULE_THREADS] for doc in docs)
    assert seen == []  # nothing ran in this process
    assert torch.get_num_threads() == USER_THREADS


@pytest.mark.parametrize("caller_threads,second_thread", [(2, True), (1, False)])
def test_directions_run_at_once_only_when_the_caller_allows_two_threads(monkeypatch, caller_threads, second_thread):
    """With two or more torch threads (torch's default on 2+ cores) the
    backward direction runs on a second thread, in training and inference;
    with one (a Dask or nlp.pipe worker, or the user's choice), everything
    runs on the caller's thread."""
    nlp = make_pipeline()
    threads_seen = []
    run = recurrent.ChunkedBatch.run

    def recording_run(self, network, flat, backward):
        threads_seen.append((backward, threading.current_thread() is threading.main_thread()))
        return run(self, network, flat, backward)

    monkeypatch.setattr(recurrent.ChunkedBatch, "run", recording_run)
    before = torch.get_num_threads()
    torch.set_num_threads(caller_threads)
    try:
        reference = nlp.make_doc("good film")
        reference.cats = {"POS": 1.0, "NEG": 0.0}
        nlp.update([Example(nlp.make_doc("good film"), set_target(reference, "good"))])
        list(nlp.pipe(TEXTS[:20], batch_size=8))
        assert torch.get_num_threads() == caller_threads
    finally:
        torch.set_num_threads(before)
    assert {on_main for backward, on_main in threads_seen if not backward} == {True}
    assert {on_main for backward, on_main in threads_seen if backward} == {not second_thread}


PROBE = """
import torch
import spacy_rnn.nn.recurrent as recurrent
seen = recurrent.seen_threads = []
encode = recurrent.RecurrentEncoder.forward
def recording_encode(self, flat, lengths):
    seen.append(torch.get_num_threads())
    return encode(self, flat, lengths)
recurrent.RecurrentEncoder.forward = recording_encode
torch.set_num_threads(2)
"""


def test_dask_workers_use_the_policy(tmp_path):
    make_pipeline().to_disk(tmp_path / "pipeline")
    (tmp_path / "texts.jsonl").write_text("".join(f'{{"text": "{text}"}}\n' for text in TEXTS[:30]))
    with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=None) as cluster, Client(cluster) as client:
        client.run(exec, PROBE, {})  # the worker's own threads: 2
        report = annotate(
            tmp_path / "pipeline", [tmp_path / "texts.jsonl"], tmp_path / "out", blocksize=200, batch_size=4,
            scheduler=client.scheduler.address, progress=False,
        )
        assert report.rows == 30
        seen, after = client.run(
            lambda: (__import__("spacy_rnn.nn.recurrent").nn.recurrent.seen_threads, torch.get_num_threads())
        ).popitem()[1]
    assert len(seen) >= 3 and set(seen) == {MODULE_THREADS}
    assert after == 2
