"""Data for the Trainer suite: the built-in generated sentiment set, a ``datasets`` name
(hub, where reachable) or local csv / json / parquet files with ``text`` and ``label``
columns. A single split is divided deterministically into train and eval."""
from __future__ import annotations

from pathlib import Path

LOCAL_FORMATS = {".csv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}
REQUIRED = ("text", "label")


class DatasetError(ValueError):
    """A dataset that cannot be used, with what was wrong and what is valid."""


def builtin(n_train: int = 640, n_eval: int = 160, seed: int = 0):
    import datasets

    from bench.models.data import sentiment_examples

    def to_ds(examples):
        return datasets.Dataset.from_dict({"text": [t for t, _ in examples], "label": [y for _, y in examples]})

    return datasets.DatasetDict(train=to_ds(sentiment_examples(n_train, seed)),
                                eval=to_ds(sentiment_examples(n_eval, seed + 1)))


def load(name_or_path: str | None, seed: int = 0, eval_fraction: float = 0.2):
    """A DatasetDict with ``train`` and ``eval`` splits holding ``text`` and ``label``."""
    if not name_or_path:
        return builtin(seed=seed)
    import datasets

    path = Path(name_or_path).expanduser()
    if path.exists():
        files = sorted(p for p in path.iterdir() if p.suffix in LOCAL_FORMATS) if path.is_dir() else [path]
        if not files or any(p.suffix not in LOCAL_FORMATS for p in files):
            raise DatasetError(f"{name_or_path}: no usable data file; valid: {', '.join(LOCAL_FORMATS)} files "
                               "with text and label columns")
        fmt = LOCAL_FORMATS[files[0].suffix]
        split_files = {_split_name(p): str(p) for p in files}
        raw = datasets.load_dataset(fmt, data_files=split_files if len(files) > 1 else str(files[0]))
    else:
        raw = datasets.load_dataset(name_or_path)  # hub name: needs the network
    return _train_eval(raw, seed, eval_fraction, name_or_path)


def _split_name(path: Path) -> str:
    stem = path.stem.lower()
    for split in ("train", "eval", "validation", "test"):
        if split in stem:
            return split
    return stem


def _train_eval(raw, seed: int, eval_fraction: float, label: str):
    import datasets

    for split, ds in raw.items():
        missing = [c for c in REQUIRED if c not in ds.column_names]
        if missing:
            raise DatasetError(f"{label}: split {split!r} has no {', '.join(missing)} column(s); it has "
                               f"{', '.join(ds.column_names)}. Valid: columns named text and label")
    train = raw["train"] if "train" in raw else raw[list(raw)[0]]
    for name in ("eval", "validation", "test"):
        if name in raw and name != list(raw)[0]:
            return datasets.DatasetDict(train=train, eval=raw[name])
    parts = train.train_test_split(test_size=eval_fraction, seed=seed)
    return datasets.DatasetDict(train=parts["train"], eval=parts["test"])


def tokenize(dsd, tokenizer, max_length: int):
    """Tokenise with ``datasets.map`` (batched); padding is left to DataCollatorWithPadding."""
    return dsd.map(lambda b: tokenizer(b["text"], truncation=True, max_length=max_length), batched=True,
                   remove_columns=[c for c in dsd["train"].column_names if c != "label"])
