"""Turn a dataset's JSONL splits into the training, dev and test data in the
output folder:

- `textcat`: DocBins train.spacy, dev.spacy and test.spacy whose Docs have
  `cats` one-hot over the labels found in all splits;
- `seq2seq`: the checked records as train.jsonl, dev.jsonl and test.jsonl,
  which the config reads with `spacy_rnn.Seq2SeqJSONL.v1` (targets travel with
  their texts: no DocBin needed).

Where the dataset has no dev split (no `--dev`), one is cut from train with a
fixed seed, keeping records with the same `--group-by` value (SARC's pair_id)
together. `--limit-train` / `--limit-eval` draw smaller slices (whole groups,
fixed seed) for quick runs.

    python scripts/convert.py textcat corpus/sarcasm --train assets/sarcasm/sarc_pol_balanced_train.jsonl \\
        --test assets/sarcasm/sarc_pol_balanced_test.jsonl --group-by pair_id
"""
import argparse
from pathlib import Path
from typing import Dict, List, Optional

import spacy
from spacy.tokens import DocBin
from tqdm import tqdm

from common import atomic_path, fail, write_jsonl
from spacy_rnn.corpus import DataError, label_names, read_jsonl, sample, split_dev, textcat_docs

REQUIRED = {"textcat": ("text", "label"), "seq2seq": ("text", "target")}


def load_splits(args: argparse.Namespace) -> Dict[str, List[Dict]]:
    """Records per split; dev cut from train when not given; slices drawn."""
    required = REQUIRED[args.kind] + ((args.group_by,) if args.group_by else ())
    splits = {"train": list(read_jsonl(args.train, required)), "test": list(read_jsonl(args.test, required))}
    if args.dev:
        splits["dev"] = list(read_jsonl(args.dev, required))
    else:
        splits["train"], splits["dev"] = split_dev(splits["train"], args.dev_share, args.seed, args.group_by)
    limits = {"train": args.limit_train, "dev": args.limit_eval, "test": args.limit_eval}
    return {split: sample(splits[split], limits[split], args.seed, args.group_by) for split in ("train", "dev", "test")}


def convert(args: argparse.Namespace) -> None:
    splits = load_splits(args)
    nlp = spacy.blank(args.lang)
    labels: Optional[List[str]] = None
    if args.kind == "textcat":
        labels = label_names(record for records in splits.values() for record in records)
    for split, records in splits.items():
        if args.kind == "seq2seq":
            write_jsonl(args.output_dir / f"{split}.jsonl", records)
            continue
        docs = textcat_docs(nlp, records, labels, args.batch_size, args.n_process)
        docbin = DocBin(store_user_data=True)
        for doc in tqdm(docs, total=len(records), desc=f"{args.output_dir.name} {split}", unit=" docs"):
            docbin.add(doc)
        with atomic_path(args.output_dir / f"{split}.spacy") as tmp:
            docbin.to_disk(tmp)
    sizes = ", ".join(f"{split} {len(records):,}" for split, records in splits.items())
    print(f"✔ {args.output_dir}: {sizes} docs" + (f"; labels {', '.join(labels)}" if labels else ""))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=sorted(REQUIRED), help="textcat (field 'label') or seq2seq (field 'target')")
    parser.add_argument("output_dir", type=Path, help="folder for train, dev and test (.spacy or .jsonl)")
    parser.add_argument("--train", type=Path, required=True, help="training records (.jsonl or .jsonl.gz)")
    parser.add_argument("--test", type=Path, required=True, help="test records")
    parser.add_argument("--dev", type=Path, help="dev records; without them a dev split is cut from train")
    parser.add_argument("--dev-share", type=float, default=0.1, help="share of train that becomes dev")
    parser.add_argument("--group-by", help="field whose records stay on the same side of a split (e.g. pair_id)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the dev cut and the slices")
    parser.add_argument("--limit-train", type=int, default=0, help="at most this many training records (0: all)")
    parser.add_argument("--limit-eval", type=int, default=0, help="at most this many dev and test records each")
    parser.add_argument("--lang", default="en", help="language of the tokenizer")
    parser.add_argument("--batch-size", type=int, default=256, help="nlp.pipe batch size")
    parser.add_argument("--n-process", type=int, default=1, help="nlp.pipe processes")
    arguments = parser.parse_args()
    try:
        convert(arguments)
    except DataError as err:
        fail(f"{err} Fix the record (or download the data again) and rerun.")
