"""Datasets: reading the files people bring (JSON lines, a JSON array, CSV/TSV, Parquet, a folder written
by `datasets.save_to_disk`, a Hugging Face dataset from the local cache), converting the formats other
tools write (workers.training.formats), validating rows against a technique's columns, and turning them
into what TRL's trainers take. Reading streams: a file is never whole in memory (a JSON array, the one
exception, is bounded by the upload limit). A bad line never rejects a file: every record comes with its
line (1-based, as in an editor) and what is wrong with it, and the good rows are kept."""

from __future__ import annotations

import codecs
import contextlib
import csv
import itertools
import json
import math
import re
import sys
from collections.abc import Callable, Container, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from workers.training import formats
from workers.training.formats import AUTO, FormatError, Mapping, blank
from workers.training.techniques.base import CHAT, LABEL, label_value

SUFFIXES = (".jsonl", ".json", ".csv", ".tsv", ".parquet")
KEPT = 100  # bad lines kept by name; the rest counted
SAMPLE = 64 * 1024  # bytes read to recognise a file's kind and encoding
SIGNATURES = (
    (b"PK\x03\x04", "a zip archive (an Excel workbook is one): unzip it, or save the sheet as CSV UTF-8"),
    (b"\x1f\x8b", "gzip-compressed: decompress it first"),
    (b"SQLite format 3\x00", "an SQLite database: export the table as CSV or JSON lines"),
    (b"%PDF", "a PDF document: a dataset is JSON lines, CSV or Parquet"),
    (b"\xd0\xcf\x11\xe0", "an old Excel or Word file: save the sheet as CSV UTF-8"),
)


# The legacy encodings files most often come in (Windows Western and Cyrillic, Japanese, Chinese, Korean,
# Central European), preferred in this order among charset-normalizer's equally good guesses.
LEGACY = ("cp1252", "cp1251", "cp932", "gb18030", "cp949", "big5", "cp1250", "latin_1")


class DataError(ValueError):
    """A dataset that cannot be used, with a message a person understands."""


@dataclass
class Record:
    """One row of a file as read: the row, or what is wrong with its line."""

    line: int
    row: dict[str, Any] | None
    problem: str | None = None


@dataclass
class Kind:
    """What a file is: how to read it, in which encoding, and what a person should be told about that."""

    reader: str  # jsonl, json-array, csv, parquet, arrow, hub
    encoding: str = "utf-8"
    delimiter: str = ","
    notice: str = ""


def _sample(path: Path) -> bytes:
    with path.open("rb") as f:
        return f.read(SAMPLE)


def _encoding(sample: bytes, label: str) -> tuple[str, str]:
    """(encoding, notice) of a text file from its first bytes: a BOM says it; UTF-8 if it decodes (the
    sample cut at its last newline, so a character is never split); otherwise what charset-normalizer
    recognises, converted with a notice; DataError if nothing does."""
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig", ""
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16", f"{label} is UTF-16 text; it was read as such and converted to UTF-8."
    cut = sample.rfind(b"\n") + 1 if len(sample) == SAMPLE else len(sample)
    try:
        sample[: cut or len(sample)].decode("utf-8")
        if b"\x00" not in sample:
            return "utf-8", ""
    except UnicodeDecodeError:
        pass
    from charset_normalizer import from_bytes

    found = list(from_bytes(sample[: cut or len(sample)]))
    best = found[0] if found else None
    if best is None or (b"\x00" in sample and not best.encoding.startswith("utf_")):
        raise DataError(
            f"{label} is not a text file (no encoding reads it): a dataset is JSON lines, CSV or Parquet."
        )
    # charset-normalizer's first guess on a short sample is often a cousin (cp1257 for a French cp1252
    # file): among the guesses as good as the first, the encodings people's files are most often in win.
    near = {r.encoding: r for r in found if r.chaos <= best.chaos + 0.15}
    best = next((near[e] for e in LEGACY if e in near), best)
    name = best.encoding.replace("_", "-")
    return best.encoding, (
        f"{label} is not UTF-8: it reads as {name}"
        + (f" ({best.language})" if best.language and best.language != "Unknown" else "")
        + ", and was converted to UTF-8. Check a few rows below; if they look wrong, save the file as UTF-8."
    )


def kind_of(path: Path, label: str | None = None) -> Kind:
    """How to read a dataset: by its first bytes (a Parquet file named .jsonl is still read), then by its
    name. DataError, worded for people, for what Atelier cannot read."""
    label = label or path.name
    if path.is_dir():
        if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
            return Kind("arrow")
        raise DataError(f"The folder {label} is not a dataset written by datasets' save_to_disk.")
    sample = _sample(path)
    if not sample.strip():
        raise DataError(f"{label} is empty: it has no rows.")
    if sample.startswith(b"PAR1"):
        return Kind("parquet")
    for magic, what in SIGNATURES:
        if sample.startswith(magic):
            raise DataError(f"{label} is {what}.")
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        raise DataError(f"{label} is not a Parquet file (it does not begin as one).")
    if suffix not in SUFFIXES:
        raise DataError(f"{label}: Atelier reads .jsonl, .json, .csv, .tsv and .parquet files.")
    encoding, notice = _encoding(sample, label)
    if suffix in (".csv", ".tsv"):
        text = sample.decode(encoding, errors="replace").lstrip("\ufeff")
        header = text.splitlines()[0] if text else ""
        delimiter = "\t" if suffix == ".tsv" else max(",;\t|", key=header.count)
        return Kind("csv", encoding, delimiter if header.count(delimiter) else ",", notice)
    first = sample.decode(encoding, errors="replace").lstrip("\ufeff \t\r\n")[:1]
    return Kind("json-array" if first == "[" else "jsonl", encoding, notice=notice)


def _clean(row: dict[str, Any]) -> dict[str, Any]:
    """NaN cells (pandas' and Excel's empty) as None, column names without a BOM or white space."""
    return {
        str(k).lstrip("\ufeff").strip(): (None if isinstance(v, float) and math.isnan(v) else v)
        for k, v in row.items()
    }


def _json_problem(exc: json.JSONDecodeError) -> str:
    """json's message whole, with where: "Unterminated string starting at column 12" (json's own ends
    "starting at" and keeps the place apart)."""
    return f"{exc.msg.removesuffix(' at')} at column {exc.colno}"


def _object(line: int, value: Any) -> Record:
    if not isinstance(value, dict):
        kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "true/false"}
        return Record(line, None, f"is {kind.get(type(value), 'null')}, not a JSON object with columns")
    return Record(line, _clean(value))


def _jsonl(path: Path, kind: Kind) -> Iterator[Record]:
    if kind.encoding not in ("utf-8", "utf-8-sig"):
        stream: Iterable[bytes] = (
            s.encode("utf-8")
            for s in open(path, encoding=kind.encoding, errors="replace", newline="")  # noqa: SIM115
        )
    else:
        stream = path.open("rb")
    number = 0
    for raw in stream:
        number += 1
        if number == 1 and raw.startswith(codecs.BOM_UTF8):
            raw = raw[3:]
        if not raw.strip():
            continue
        try:
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as exc:
            yield Record(
                number, None, f"is not UTF-8 text (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
            )
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as exc:
            yield Record(number, None, f"is not valid JSON: {_json_problem(exc)}")
            continue
        except RecursionError:
            yield Record(number, None, "is not valid JSON: it nests too deeply")
            continue
        yield _object(number, value)
    if hasattr(stream, "close"):
        stream.close()


def _json_array(path: Path, kind: Kind) -> Iterator[Record]:
    """A JSON array of objects: each item by the line it starts on. Whole in memory (bounded by the
    upload limit): JSON lines stream, an array cannot be split before it is parsed."""
    text = path.read_text(encoding=kind.encoding, errors="replace").lstrip("\ufeff")
    decoder = json.JSONDecoder()
    at = text.index("[") + 1
    line = text.count("\n", 0, at) + 1
    while True:
        while at < len(text) and text[at] in " \t\r\n,":
            line += text[at] == "\n"
            at += 1
        if at >= len(text):
            yield Record(line, None, "is not valid JSON: the array is not closed with ]")
            return
        if text[at] == "]":
            return
        try:
            value, end = decoder.raw_decode(text, at)
        except json.JSONDecodeError as exc:
            yield Record(
                exc.lineno,
                None,
                f"is not valid JSON: {_json_problem(exc)}; the items after it cannot be read",
            )
            return
        yield _object(line, value)
        line += text.count("\n", at, end)
        at = end


def _csv(path: Path, kind: Kind) -> Iterator[Record]:
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding=kind.encoding, errors="replace", newline="") as f:
        reader = csv.reader(f, delimiter=kind.delimiter)
        try:
            header = next(reader)
        except StopIteration:
            return
        names, seen = [], set()
        for i, name in enumerate(header, start=1):
            name = name.lstrip("\ufeff").strip() or f"column {i}"
            while name in seen:
                name += "_"
            seen.add(name)
            names.append(name)
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:
                yield Record(start, None, f"cannot be read as CSV: {exc}")
                continue
            if not any(v.strip() for v in fields):
                continue
            if len(fields) != len(names):
                yield Record(start, None, (
                    f"has {len(fields)} fields; the header has {len(names)} (a value holding a "
                    f"“{kind.delimiter}” must be in double quotes)"
                ))  # fmt: skip
                continue
            yield Record(start, dict(zip(names, fields, strict=True)))


def _batches(batches: Iterable[list[dict[str, Any]]]) -> Iterator[Record]:
    number = 0
    for batch in batches:
        for row in batch:
            number += 1
            yield Record(number, _clean(row))


def _parquet(path: Path) -> Iterator[Record]:
    import pyarrow.parquet as pq

    try:
        table = pq.ParquetFile(path)
    except Exception as exc:
        raise DataError(f"{path.name} cannot be read as Parquet: {exc}") from exc
    yield from _batches(b.to_pylist() for b in table.iter_batches(batch_size=1024))


def _arrow(path: Path) -> Iterator[Record]:
    import datasets

    loaded = datasets.load_from_disk(str(path))
    if isinstance(loaded, datasets.DatasetDict):
        loaded = loaded["train"] if "train" in loaded else next(iter(loaded.values()))
    yield from _batches(b.to_pylist() for b in loaded.data.to_batches(max_chunksize=1024))


HUB_ID = re.compile(r"^hf:(?P<id>[\w.-]+/[\w.-]+)(?::(?P<split>[\w.-]+))?$")
HUB_NAME = re.compile(r"^[\w.-]+/[\w.-]+$")


def hub_snapshot(repo_id: str) -> Path:
    """The snapshot folder of a Hugging Face dataset in this machine's cache (HF_HOME), found by
    huggingface_hub alone: datasets.load_dataset("owner/name") would read a folder of that name in the
    working directory first (hf:var/projects would have read the projects' files). The cache only: a
    download of unknown size does not belong in a web request (a model's id fetches a few config files)."""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import HFValidationError, LocalEntryNotFoundError

    if not HUB_NAME.match(repo_id) or ".." in repo_id:
        raise DataError(f"“{repo_id}” is not a Hugging Face dataset id: owner/name, such as openai/gsm8k.")
    try:
        return Path(snapshot_download(repo_id, repo_type="dataset", local_files_only=True))
    except (LocalEntryNotFoundError, HFValidationError) as exc:
        raise DataError(
            f"The dataset “{repo_id}” is not on this machine. Download it into HF_HOME on a machine with "
            f"internet access (hf download --repo-type dataset {repo_id}), or upload its file."
        ) from exc


def hub_dataset(repo_id: str, *, subset: str | None = None, split: str | None = None,
                cache_dir: str | None = None, folder: Path | None = None) -> Any:  # fmt: skip
    """One split (default "train") of a cached Hugging Face dataset as a datasets.Dataset (Arrow, on
    disk); DataError naming the subsets or splits it has when the one asked for is not there.
    `folder`: its snapshot, when the caller has resolved it already (hub_snapshot)."""
    import datasets

    folder = folder or hub_snapshot(repo_id)
    try:
        return datasets.load_dataset(str(folder), subset or None, split=split or "train", cache_dir=cache_dir)
    except ValueError as exc:  # "Unknown split ..." or "Config name is missing ... available configs"
        subsets = datasets.get_dataset_config_names(str(folder))
        if len(subsets) > 1 and subset not in subsets:
            raise DataError(
                f"The dataset “{repo_id}” has several subsets: choose one of {', '.join(subsets)}."
            ) from exc
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise DataError(f"The dataset “{repo_id}”: {text}") from exc
    except (datasets.exceptions.DatasetGenerationError, datasets.exceptions.DataFilesNotFoundError,
            FileNotFoundError) as exc:  # fmt: skip
        raise DataError(f"The dataset “{repo_id}” in this machine's cache cannot be read: {exc}") from exc


def _hub(name: str) -> Iterator[Record]:
    """A dataset from the local Hugging Face cache (HF_HOME), "hf:owner/name[:split]"."""
    found = HUB_ID.match(name)
    assert found is not None
    loaded = hub_dataset(found["id"], split=found["split"])
    yield from _batches(b.to_pylist() for b in loaded.data.to_batches(max_chunksize=1024))


def records(path: Path | str, kind: Kind | None = None) -> Iterator[Record]:
    """Every record of a dataset, in order, streamed; DataError for a file that cannot be read at all."""
    if isinstance(path, str) and HUB_ID.match(path):
        yield from _hub(path)
        return
    path = Path(path)
    if not path.exists():
        raise DataError(f"No dataset file at {path}.")
    kind = kind or kind_of(path)
    if kind.reader == "parquet":
        yield from _parquet(path)
    elif kind.reader == "arrow":
        yield from _arrow(path)
    elif kind.reader == "csv":
        yield from _csv(path, kind)
    elif kind.reader == "json-array":
        yield from _json_array(path, kind)
    else:
        yield from _jsonl(path, kind)


def read_rows(path: Path | str, *, strict: bool = True) -> list[dict[str, Any]]:
    """The rows of a dataset as a list: for the few readers that need them all (a split's rows). A line
    that cannot be read is a DataError naming every such line (the first KEPT) unless not strict."""
    rows, bad = [], []
    for record in records(path):
        if record.row is None:
            bad.append((record.line, record.problem))
        else:
            rows.append(record.row)
    if bad and strict:
        raise DataError(bad_lines(bad, Path(str(path)).name))
    return rows


def bad_lines(bad: list[tuple[int, str | None]], name: str, count: int | None = None) -> str:
    count = count if count is not None else len(bad)
    shown = "; ".join(f"line {n} {m}" if (m or "").startswith(("is ", "has ", "cannot")) else f"line {n}: {m}"
                      for n, m in bad[:5])  # fmt: skip
    more = f" (and {count - 5} more)" if count > 5 else ""
    return f"{count} bad line{'s' if count != 1 else ''} in {name}: {shown}{more}."


def _message(m: Any) -> bool:
    if not isinstance(m, dict) or m.get("role") not in formats.ROLES:
        return False
    content = m.get("content")
    return isinstance(content, str) or (
        content is None and m["role"] == "assistant" and bool(m.get("tool_calls"))
    )


def _is_chat(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(_message(m) for m in value)


def _text_or_chat(value: Any) -> bool:
    return (isinstance(value, str) and value.strip() != "") or _is_chat(value)


def _what(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "empty (null)"
    if isinstance(value, str):
        return "empty"
    return f"{type(value).__name__ if not isinstance(value, (list, dict)) else 'a ' + ('list' if isinstance(value, list) else 'JSON object')}, not text"


def _problem(kind: str, column: str, value: Any) -> str | None:
    """Why a cell does not hold what its column's kind needs (techniques.base), or None."""
    if kind == CHAT:
        if not _is_chat(value):
            bad = (
                next((m for m in value if not _message(m)), None)
                if isinstance(value, list) and value
                else None
            )
            if isinstance(bad, dict) and ("from" in bad or "value" in bad):
                return f"“{column}” holds ShareGPT turns ({{from, value}}): choose the ShareGPT format"
            if isinstance(bad, dict) and bad.get("role") not in formats.ROLES:
                return f"“{column}” has a message whose role is {bad.get('role')!r}, not one of {', '.join(formats.ROLES)}"
            return f"“{column}” must be a list of {{role, content}} messages"
        if value[-1]["role"] != "assistant":
            return "the last message must be the assistant's answer"
    elif kind == LABEL:
        if label_value(value) is None:
            return f"“{column}” must be true or false (a thumbs-up or down), not {str(value)[:20]!r}"
    elif isinstance(value, list):
        if not _is_chat(value):
            return f"“{column}” is a list but not of {{role, content}} messages"
    elif blank(value) or not isinstance(value, (str, int, float)) or isinstance(value, bool):
        return f"“{column}” is {_what(value)}"
    return None


def _as_text(kind: str, value: Any) -> Any:
    """A number in a text column (a Parquet int, a CSV read by pandas) as the text it is."""
    return (
        str(value)
        if kind not in (CHAT, LABEL) and isinstance(value, (int, float)) and not isinstance(value, bool)
        else value
    )


@dataclass
class Validation:
    rows: list[dict[str, Any]] = field(default_factory=list)  # the good rows
    errors: list[tuple[int, str]] = field(default_factory=list)  # (line, message)
    columns: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.errors and bool(self.rows)


def mapping_of(column_map: dict[str, str] | None = None, data_format: str = AUTO) -> Mapping:
    """A spec's renames ({file column: needed column}) and format as a formats.Mapping."""
    return Mapping({target: source for source, target in (column_map or {}).items()}, data_format)


def _records(rows: Iterable[dict[str, Any] | Record]) -> Iterator[Record]:
    for number, row in enumerate(rows, start=1):
        yield row if isinstance(row, Record) else Record(number, row)


class Checker:
    """One technique's check of converted rows, row by row: the format its columns fit (chosen from the
    first rows' columns), then each row's problem or its row ready for training (labels as booleans,
    numbers in text columns as text)."""

    def __init__(self, technique: str, present: set[str]) -> None:
        from workers.training.techniques import REGISTRY

        if technique not in REGISTRY:
            raise DataError(f"Unknown technique “{technique}”: choose one of {', '.join(REGISTRY)}.")
        described = REGISTRY[technique]
        # A file may mix the technique's formats (chats and prompt/completion rows): each row is checked
        # against the first whose columns it has.
        self.shapes = [f for f in described.formats if set(f.columns) <= present]
        self.shape = self.shapes[0] if self.shapes else None
        if self.shape is None:
            raise DataError(
                f"A {described.short} dataset needs the columns {described.columns_wanted()}; this one has "
                f"{', '.join(sorted(present)) or 'none'}. Map the columns, or choose the file's format."
            )

    def check(self, row: dict[str, Any]) -> tuple[dict[str, Any] | None, str | None]:
        assert self.shape is not None
        shape = next((f for f in self.shapes if all(c in row for c in f.columns)), self.shape)
        fixed = {}
        for column in shape.columns:
            kind = shape.kind(column)
            if problem := _problem(kind, column, row.get(column)):
                return None, problem
            if kind == LABEL:
                fixed[column] = label_value(row[column])
            elif (text := _as_text(kind, row[column])) is not row[column]:
                fixed[column] = text
        return ({**row, **fixed} if fixed else row), None


@dataclass
class Converted:
    file_columns: list[str]  # the file's own (of its first rows)
    columns: set[str]  # after the mapping and the format's conversion
    format: str  # the format applied (formats.STANDARD, AS_IS or a key of formats.KNOWN)
    records: Iterator[Record]


def converted(
    rows: Iterable[dict[str, Any] | Record],
    mapping: Mapping,
    head: int = 1000,
    only: Container[int] | None = None,
) -> Converted:
    """The records converted by the mapping and the file's format; a record whose row its format cannot
    convert carries the reason. The first `head` records decide the columns and the format. `only`: the
    positions (from 0) of the records wanted; the others are skipped unconverted."""
    stream = _records(rows)
    first: list[Record] = []
    for record in stream:
        first.append(record)
        if len(first) >= head:
            break
    file_columns: set[str] = set().union(*(r.row.keys() for r in first if r.row is not None))
    applied = mapping.resolve(file_columns)
    convert = mapping.converter(file_columns)

    def each() -> Iterator[Record]:
        for position, record in enumerate(itertools.chain(first, stream)):
            if only is not None and position not in only:
                continue
            if record.row is None:
                yield record
                continue
            try:
                yield Record(record.line, convert(record.row))
            except FormatError as exc:
                yield Record(record.line, None, str(exc))

    present: set[str] = set()
    for record in first:
        if record.row is not None:
            with contextlib.suppress(FormatError):
                present |= convert(record.row).keys()
    return Converted(sorted(file_columns), present, applied, each())


def validate(
    rows: Iterable[dict[str, Any] | Record], technique: str, column_map: dict[str, str] | None = None,
    data_format: str = AUTO,
) -> Validation:  # fmt: skip
    """Check every row against the technique's columns, after the file's format is converted; keep the
    good rows (labels as booleans, numbers as text), name the bad ones by line."""
    found = converted(rows, mapping_of(column_map, data_format))
    if not found.file_columns:
        raise DataError("The dataset is empty: it has no rows.")
    checker = Checker(technique, found.columns)
    result = Validation(columns=checker.shape.columns if checker.shape else ())
    for record in found.records:
        if record.row is None:
            result.errors.append((record.line, record.problem or "cannot be read"))
            continue
        good, problem = checker.check(record.row)
        if good is None:
            result.errors.append((record.line, problem or ""))
        else:
            result.rows.append(good)
    return result


def load(
    path: Path | str, technique: str, column_map: dict[str, str] | None = None, drop_bad: bool = False,
    data_format: str = AUTO,
) -> list[dict[str, Any]]:  # fmt: skip
    """Rows ready for training; a DataError naming the bad lines unless drop_bad."""
    check = validate(records(path), technique, column_map, data_format)
    if check.errors and not drop_bad:
        raise bad_rows(len(check.errors), check.errors, Path(str(path)).name)
    if not check.rows:
        raise DataError("No usable rows are left in the dataset.")
    return check.rows


def bad_rows(count: int, errors: list[tuple[int, str]], label: str) -> DataError:
    """The error a run stops with when rows do not fit: how many, and the first five by line."""
    shown = "; ".join(f"line {n}: {m}" for n, m in errors[:5])
    more = f" (and {count - 5} more)" if count > 5 else ""
    return DataError(f"{count} bad rows in {label}: {shown}{more}.")


# The Data step's and the dataset page's survey ------------------------------------------------------------


def row_key(row: dict[str, Any]) -> int:
    """Equal rows share this key (within one process: Python's hash() is salted per process, and every
    comparison of keys happens in the process that made them)."""
    return hash(json.dumps(row, sort_keys=True, default=str))


NEAR_CHARS = 256  # near duplicates are judged on the first characters of the prompt and of the answer


def near_keys(texts: Any) -> list[int]:
    """Keys of texts (a list, or an Arrow string array) that are equal but for case, punctuation and
    white space: lower-cased, every run of what is not a letter or a digit (in any script) made one
    space, by Arrow's RE2 kernels, one call for a whole batch (Python's re, row by row, was 40% of a
    survey)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    values = texts if isinstance(texts, (pa.Array, pa.ChunkedArray)) else pa.array(texts, pa.large_string())
    folded = pc.replace_substring_regex(pc.utf8_lower(values), r"[^\p{L}\p{N}]+", " ")
    return [hash(t) for t in pc.utf8_trim_whitespace(folded).to_pylist()]


def _plain(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(m.get("content") or "") for m in value if isinstance(m, dict))
    return "" if blank(value) else str(value)


def prompt_text(row: dict[str, Any]) -> str:
    """A converted row's prompt as plain text (a conversation: every turn but the answer)."""
    if isinstance(row.get("messages"), list):
        return _plain(row["messages"][:-1])
    return _plain(row.get("prompt"))


ANSWERS = ("completion", "chosen", "answer")  # where a row's answer is, in this order


def answer_text(row: dict[str, Any]) -> str | None:
    """A converted row's answer as plain text, or None where it has none (RL prompts)."""
    if isinstance(row.get("messages"), list) and row["messages"]:
        return _plain(row["messages"][-1:])
    for column in ANSWERS:
        if column in row:
            return _plain(row[column])
    return None


def prompt_keys(path: Path | str, mapping: Mapping) -> set[int]:
    """The near keys of an eval file's prompts, to find training rows that are also evaluated."""
    found = converted(records(path), mapping)
    texts = [prompt_text(r.row) for r in found.records if r.row]
    return set(near_keys(texts)) if texts else set()


@dataclass
class Survey:
    """What a careful person would check in a dataset, from one streamed pass: rows and bad lines, the
    format recognised, which techniques it fits and why not, duplicates, answers, long rows."""

    lines: int = 0
    rows: int = 0
    file_columns: list[str] = field(default_factory=list)
    format: str = AUTO
    unreadable: list[tuple[int, str]] = field(default_factory=list)
    unreadable_count: int = 0
    checks: dict[str, dict[str, Any]] = field(default_factory=dict)
    duplicates: int = 0  # rows equal to an earlier one
    near_duplicates: int = 0  # ... but for case, punctuation and white space (exact ones not counted)
    short_answers: list[int] = field(default_factory=list)  # lines whose answer is one word
    short_count: int = 0
    top_answer: str = ""
    top_share: float = 0.0
    overlap: int = 0  # rows whose prompt is also in the eval file
    long_rows: list[tuple[int, int]] = field(default_factory=list)  # (line, tokens)
    long_count: int = 0
    notices: list[str] = field(default_factory=list)
    sample: list[dict[str, Any]] = field(default_factory=list)  # the first good rows, converted
    engine: str = "rows"  # how it was read: "arrow" (in batches) or "rows" (row by row)

    def as_dict(self) -> dict[str, Any]:
        out = {k: v for k, v in self.__dict__.items() if k not in ("sample", "engine")}
        out["format_label"], out["format_how"] = formats.describe(self.format)
        out["short_share"] = self.short_count / self.rows if self.rows else 0.0
        return out


class _Tally:
    """The survey's counts over good rows, fed a batch at a time (keys kept as 8 bytes a row)."""

    def __init__(self, result: Survey, context: int | None, measure: Callable[[dict[str, Any]], int] | None,
                 exclude: set[int] | None) -> None:  # fmt: skip
        import array

        self.result, self.context, self.measure, self.exclude = result, context, measure, exclude
        self.exact, self.near, self.answers = array.array("q"), array.array("q"), array.array("q")
        self.texts: dict[int, str] = {}
        self.numbers = 0

    def add(self, lines: list[int], exact: list[int], prompts: list[str], answers: list[str | None],
            sizes: list[int], row: Callable[[int], dict[str, Any]], near: Any = None) -> None:  # fmt: skip
        """A batch of good rows: their lines, exact keys, prompts, answers (None: none), sizes in bytes,
        and `row(i)`, the i-th row (asked only of the rows that may be too long); `near`: the texts their
        near keys are made of, where the caller has them (an Arrow array)."""
        result = self.result
        self.exact.extend(exact)
        if near is None:
            near = [
                f"{p[:NEAR_CHARS]}\x00{(a or '')[:NEAR_CHARS]}" for p, a in zip(prompts, answers, strict=True)
            ]
        self.near.extend(near_keys(near))
        if self.exclude:
            result.overlap += sum(k in self.exclude for k in near_keys(prompts))
        for i, answer in enumerate(answers):
            if answer is None:
                continue
            text = answer.strip()
            key = hash(text.lower())
            self.answers.append(key)
            if len(self.texts) < 1000:
                self.texts.setdefault(key, text)
            if text and " " not in text and "\n" not in text and "\t" not in text:
                result.short_count += 1
                if len(result.short_answers) < KEPT:
                    result.short_answers.append(lines[i])
        if self.context and self.measure:
            for i, size in enumerate(sizes):
                if size > self.context and (tokens := self.measure(row(i))) > self.context:
                    result.long_count += 1
                    if len(result.long_rows) < KEPT:
                        result.long_rows.append((lines[i], tokens))

    def finish(self) -> None:
        import numpy as np

        result = self.result
        if self.exact:
            result.duplicates = len(self.exact) - len(np.unique(np.frombuffer(self.exact, dtype=np.int64)))
            near = len(self.near) - len(np.unique(np.frombuffer(self.near, dtype=np.int64)))
            result.near_duplicates = max(0, near - result.duplicates)
        if len(self.answers) >= 10:
            keys, counts = np.unique(np.frombuffer(self.answers, dtype=np.int64), return_counts=True)
            top = int(counts.argmax())
            result.top_share = float(counts[top]) / len(self.answers)
            result.top_answer = self.texts.get(int(keys[top]), "")
        if self.numbers:
            rows = f"{self.numbers:,} rows have" if self.numbers != 1 else "1 row has"
            result.notices.append(f"{rows} numbers in text columns; they are read as text.")


def survey(
    source: Path | str, mapping: Mapping | None = None, *, techniques: Iterable[str] | None = None,
    keep: int = 2000, context: int | None = None, measure: Callable[[dict[str, Any]], int] | None = None,
    exclude: set[int] | None = None, label: str | None = None, stats: bool = True, arrow: bool = True,
) -> Survey:  # fmt: skip
    """One streamed pass over a dataset (constant memory but for `keep` sample rows and 8 bytes a row
    for the duplicate counts; without `stats`, only the checks: bad lines, which techniques it fits). `measure` counts a row's tokens as the model reads it; it is asked only of
    rows whose text could be longer than `context` (a token is at least one byte), so a long file is
    not tokenized whole. `exclude`: prompt keys of the eval file (prompt_keys).

    A file of plain text columns with no bad row (the common case, and every large file worth its size)
    is surveyed in Arrow batches (pyarrow's JSON and Parquet readers, its string kernels): as fast as
    `datasets` loads it. Anything else, or the first bad row, takes the row-by-row path, which names
    every bad line (`arrow=False` takes it for every file: the tests compare the two)."""
    mapping = mapping or Mapping({})
    kind = None
    notices: list[str] = []
    if not (isinstance(source, str) and HUB_ID.match(source)):
        kind = kind_of(Path(source), label)
        if kind.notice:
            notices.append(kind.notice)
        fast = (
            _survey_arrow(Path(source), kind, mapping, techniques, keep, context, measure, exclude, stats)
            if arrow
            else None
        )
        if fast is not None:
            fast.notices[:0] = notices
            return fast
    result = Survey(notices=notices)
    found = converted(records(source, kind), mapping)
    result.file_columns, result.format = found.file_columns, found.format
    checkers = _checkers(result, found.columns, techniques)
    tally = _Tally(result, context, measure, exclude)
    pending: list[tuple[int, dict[str, Any]]] = []

    def flush() -> None:
        rows = [r for _, r in pending]
        tally.add([n for n, _ in pending], [row_key(r) for r in rows], [prompt_text(r) for r in rows],
                  [answer_text(r) for r in rows], [len(json.dumps(r, ensure_ascii=False).encode()) for r in rows],
                  lambda i: rows[i])  # fmt: skip
        pending.clear()

    for record in found.records:
        result.lines += 1
        if record.row is None:
            unread = record.problem or "cannot be read"
            result.unreadable_count += 1
            if len(result.unreadable) < KEPT:
                result.unreadable.append((record.line, unread))
            for technique in checkers:
                _error(result.checks[technique], record.line, unread)
            continue
        result.rows += 1
        row, good_any = record.row, None
        for technique, checker in checkers.items():
            good, problem = checker.check(row)
            if good is None:
                _error(result.checks[technique], record.line, problem or "")
            else:
                result.checks[technique]["good"] += 1
                good_any = good_any or good
        if good_any is None:
            continue
        tally.numbers += good_any is not row
        if len(result.sample) < keep:
            result.sample.append(good_any)
        if stats:
            pending.append((record.line, row))
        if len(pending) >= 4096:
            flush()
    if pending:
        flush()
    for check in result.checks.values():
        check["ok"] = not check["message"] and not check["error_count"] and check["good"] > 0
    tally.finish()
    if not result.lines:
        raise DataError(f"{label or Path(str(source)).name} is empty: it has no rows.")
    return result


def _checkers(result: Survey, present: set[str], techniques: Iterable[str] | None) -> dict[str, Checker]:
    from workers.training.techniques import REGISTRY

    checkers: dict[str, Checker] = {}
    for technique in techniques or REGISTRY:
        result.checks[technique] = {"ok": False, "good": 0, "errors": [], "error_count": 0, "message": ""}
        try:
            checkers[technique] = Checker(technique, present)
        except DataError as exc:
            result.checks[technique]["message"] = str(exc)
    return checkers


def _error(check: dict[str, Any], line: int, problem: str) -> None:
    check["error_count"] += 1
    if len(check["errors"]) < KEPT:
        check["errors"].append((line, problem))


class _Slow(Exception):
    """The Arrow path cannot survey this file (a bad row, a nested column): the row-by-row path will."""


BLOCK = 2 << 20  # bytes of JSON lines parsed by Arrow at a time


def _json_blocks(path: Path) -> Iterator[Any]:
    """A JSON lines file as Arrow record batches, parsed a block of whole lines at a time; _Slow where a
    row's line number would not be its position (a blank line) or Arrow cannot parse a block."""
    import pyarrow as pa
    import pyarrow.json as paj

    with path.open("rb") as f:
        rest = b""
        first = True
        while True:
            chunk = f.read(BLOCK)
            data = rest + chunk
            if not chunk:
                block, rest = data, b""
            else:
                cut = data.rfind(b"\n") + 1
                block, rest = data[:cut], data[cut:]
            if first:
                block = block.removeprefix(codecs.BOM_UTF8)
                first = False
            if block.strip():
                if block.startswith((b"\n", b"\r\n")) or b"\n\n" in block or b"\n\r\n" in block:
                    raise _Slow
                try:
                    table = paj.read_json(pa.py_buffer(block))
                except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
                    raise _Slow from exc
                yield from table.to_batches()
            if not chunk:
                return


def _survey_arrow(
    path: Path, kind: Kind, mapping: Mapping, techniques: Iterable[str] | None, keep: int, context: int | None,
    measure: Callable[[dict[str, Any]], int] | None, exclude: set[int] | None, stats: bool,
) -> Survey | None:  # fmt: skip
    """The survey in Arrow batches, or None where it must go row by row (_Slow)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if kind.reader == "jsonl" and kind.encoding in ("utf-8", "utf-8-sig"):
        batches: Iterator[Any] = _json_blocks(path)
    elif kind.reader == "parquet":
        import pyarrow.parquet as pq

        batches = pq.ParquetFile(path).iter_batches(batch_size=65536)
    else:
        return None
    renamed = formats.renames(mapping.columns)
    result = Survey(engine="arrow")
    tally: _Tally | None = None
    checkers: dict[str, Checker] = {}
    start = 0
    try:
        for batch in batches:
            names = [renamed.get(n, n) for n in (c.lstrip("\ufeff").strip() for c in batch.schema.names)]
            if tally is None:  # the first batch: the format, the techniques' columns
                result.file_columns = sorted(batch.schema.names)
                result.format = mapping.resolve(batch.schema.names)
                if result.format in formats.KNOWN:
                    return None  # converted row by row
                checkers = _checkers(result, set(names), techniques)
                tally = _Tally(result, context, measure, exclude)
            columns = dict(zip(names, batch.columns, strict=True))
            if not all(_scalar(c.type) for c in columns.values()):
                raise _Slow  # a list (chat turns) or an object: checked row by row
            n = batch.num_rows
            needed = {c for k in checkers.values() if k.shape for c in k.shape.columns}
            numeric = {c for c in needed if c in columns and _number(columns[c].type)}
            for column in needed:
                kind_ = next(
                    k.shape.kind(column) for k in checkers.values() if k.shape and column in k.shape.columns
                )
                if column not in columns or not _good_column(columns[column], kind_):
                    raise _Slow  # a missing or empty cell: named by its line, row by row
            for technique in checkers:
                result.checks[technique]["good"] += n
            lines = range(start + 1, start + n + 1)
            start += n
            if not checkers:
                continue
            tally.numbers += n if numeric & needed else 0
            if len(result.sample) < keep:
                for row in batch.slice(0, keep - len(result.sample)).to_pylist():
                    row = {renamed.get(k, k): v for k, v in row.items()}
                    result.sample.append(
                        next(g for g, _ in (c.check(row) for c in checkers.values()) if g is not None)
                    )
            if not stats:
                continue
            text = {k: pc.cast(v, pa.large_string()) for k, v in columns.items()}
            joined = pc.binary_join_element_wise(*text.values(), pa.scalar("\x1f", pa.large_string()),
                                                 null_handling="replace", null_replacement="\x00")  # fmt: skip
            exact = [hash(t) for t in joined.to_pylist()]
            blank_ = pa.array([""] * n, pa.large_string())
            prompt = pc.fill_null(text.get("prompt", blank_), "")
            found = next((c for c in ANSWERS if c in text), None)
            answer = pc.fill_null(text[found], "") if found else blank_
            near = pc.binary_join_element_wise(pc.utf8_slice_codeunits(prompt, 0, NEAR_CHARS),
                                               pc.utf8_slice_codeunits(answer, 0, NEAR_CHARS), pa.scalar("\x00", pa.large_string()))  # fmt: skip
            sizes = pc.binary_length(joined)

            def row_at(i: int, b: Any = batch) -> dict[str, Any]:
                return {renamed.get(k, k): v for k, v in b.slice(i, 1).to_pylist()[0].items()}

            tally.add(list(lines), exact, prompt.to_pylist() if exclude else [],
                      answer.to_pylist() if found else [None] * n, sizes.to_pylist(), row_at, near=near)  # fmt: skip
    except (_Slow, pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        return None  # a bad row, a nested column, bytes that are not UTF-8: row by row, by line
    if tally is None:
        return None
    result.lines = result.rows = start
    for check in result.checks.values():
        check["ok"] = not check["message"] and check["good"] > 0
    tally.finish()
    return result


def _scalar(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_string(t) or pa.types.is_large_string(t) or _number(t) or pa.types.is_boolean(t)
                or pa.types.is_null(t))  # fmt: skip


def _number(t: Any) -> bool:
    import pyarrow as pa

    return bool(pa.types.is_integer(t) or pa.types.is_floating(t))


def _good_column(values: Any, kind: str) -> bool:
    """Whether every cell of an Arrow column holds what its kind needs (else: row by row, by line)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if values.null_count:
        return False
    if kind == LABEL:
        return bool(pa.types.is_boolean(values.type))
    if pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        return not pc.any(pc.equal(pc.utf8_length(pc.utf8_trim_whitespace(values)), 0)).as_py()
    if pa.types.is_floating(values.type):
        return not pc.any(pc.is_nan(values)).as_py()
    return bool(pa.types.is_integer(values.type))


def check_file(
    path: Path | str, technique: str, column_map: dict[str, str] | None = None, drop_bad: bool = False,
    data_format: str = AUTO,
) -> int:  # fmt: skip
    """How many rows of the file the technique can train on, from one streamed pass (the survey's checks,
    in Arrow batches where the file allows); DataError naming the bad lines unless drop_bad, or when
    none is left."""
    label = Path(str(path)).name
    found = survey(path, mapping_of(column_map, data_format), techniques=[technique], keep=0, stats=False)
    check = found.checks[technique]
    if check["message"]:
        raise DataError(check["message"])
    if check["error_count"] and not drop_bad:
        raise bad_rows(check["error_count"], check["errors"], label)
    if not check["good"]:
        raise DataError("No usable rows are left in the dataset.")
    return int(check["good"])


def good_rows(
    path: Path | str, technique: str, column_map: dict[str, str] | None = None, data_format: str = AUTO,
    only: Container[int] | None = None,
) -> Iterator[dict[str, Any]]:  # fmt: skip
    """The rows the technique trains on, converted and checked, one at a time (the bad ones skipped:
    check_file has said them). `only`: the positions (from 0) of the rows wanted, in a file that
    check_file found without a bad row (there a row's position is its record's); the others are
    neither converted nor checked."""
    found = converted(records(path), mapping_of(column_map, data_format), only=only)
    checker = Checker(technique, found.columns)
    for record in found.records:
        if record.row is not None:
            good, _ = checker.check(record.row)
            if good is not None:
                yield good


def arrow_rows(make: Callable[[], Iterator[dict[str, Any]]], cache: Path) -> Any:
    """The rows `make()` yields as a datasets.Dataset, written to an Arrow cache under `cache` a batch at a
    time and memory-mapped: the trainer's rows are never a Python list of the whole file. Rows whose
    columns Arrow cannot give one type (a number here, a text there) are read into a list, as before."""
    import datasets

    def generate() -> Iterator[dict[str, Any]]:
        yield from make()

    cache.mkdir(parents=True, exist_ok=True)
    try:
        return datasets.Dataset.from_generator(generate, cache_dir=str(cache), keep_in_memory=False)
    except datasets.exceptions.DatasetGenerationError:
        return datasets.Dataset.from_list(list(make()))


def as_chat(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows whose prompt, completion, chosen or rejected is plain text, as chat turns (the prompt the
    user's, the answers the assistant's): for a model with a chat template, so that training sees each
    row through the template as the Data step's preview shows it, and as the held-out scoring and the
    endpoint ask the model. TRL would otherwise train plain-text rows without the template."""
    roles = {"prompt": "user", "completion": "assistant", "chosen": "assistant", "rejected": "assistant"}
    return [
        {
            k: [{"role": roles[k], "content": v}] if k in roles and isinstance(v, str) else v
            for k, v in row.items()
        }
        for row in rows
    ]


def for_model(rows: list[dict[str, Any]], tokenizer: Any) -> list[dict[str, Any]]:
    """The rows as training feeds them to this tokenizer's model: as_chat where it has a chat template."""
    return as_chat(rows) if getattr(tokenizer, "chat_template", None) else rows


def cut_to_fit(row: dict[str, Any], context: int, measure: Callable[[dict[str, Any]], int]) -> dict[str, Any]:
    """A row longer than the model reads (`measure`: its tokens through the chat template) with its
    longest text cut at the end until it fits, as other trainers cut at their cutoff length; a row that
    fits comes back as it is."""
    tokens = measure(row)
    for _ in range(8):
        if tokens <= context:
            return row
        texts = [(k, None, v) for k, v in row.items() if isinstance(v, str)] + [
            (k, i, m["content"]) for k, v in row.items() if _is_chat(v)
            for i, m in enumerate(v) if isinstance(m.get("content"), str)
        ]  # fmt: skip
        if not texts:
            return row
        key, index, text = max(texts, key=lambda t: len(t[2]))
        keep = max(1, int(len(text) * (context - 8) / tokens) - 1)
        if index is None:
            row = {**row, key: text[:keep]}
        else:
            turns = [dict(m) for m in row[key]]
            turns[index]["content"] = text[:keep]
            row = {**row, key: turns}
        tokens = measure(row)
    return row


def _common_prefix_ids(a: list[int], b: list[int]) -> int:
    n = 0
    while n < min(len(a), len(b)) and a[n] == b[n]:
        n += 1
    return n


def trainer_tokens(tokenizer: Any, row: dict[str, Any]) -> dict[str, Any]:
    """What the trainer feeds the model for a converted row, as TRL 1.16's SFT, DPO, KTO and GRPO trainers
    tokenize it with Atelier's settings (techniques/sft.py: the loss on the answers only): {"text", "ids",
    "loss" (1 where the token is learned), "spans": [(text, learned), ...]}. A prompt and its answer
    (prompt/completion, and DPO's prompt with its chosen answer): the answer's tokens are those after
    the tokenized prompt (with the generation prompt) stops being a prefix of prompt + answer (for DPO,
    of either answer); a
    conversation: the assistant's turns the template marks with {% generation %}. A prompt alone (RL):
    the prompt as the model is asked it, nothing learned from it. `tokenizer`: model_files.ChatTokenizer
    or a transformers tokenizer with a chat template."""
    row = for_model([row], tokenizer)[0]
    answer = next((row[k] for k in ("completion", "chosen") if k in row and not blank(row[k])), None)
    if isinstance(row.get("messages"), list):
        text, ids, loss = tokenizer.assistant_mask(row["messages"])
    elif isinstance(row.get("prompt"), list):
        prompt = tokenizer.apply_chat_template(row["prompt"], tokenize=True, add_generation_prompt=True)
        if answer is None:
            text = tokenizer.apply_chat_template(row["prompt"], add_generation_prompt=True)
            ids, loss = prompt, [0] * len(prompt)
        else:
            text = tokenizer.apply_chat_template(row["prompt"] + answer)
            ids = tokenizer.apply_chat_template(row["prompt"] + answer, tokenize=True)
            cut = _common_prefix_ids(prompt, ids)
            if isinstance(row.get("rejected"), list):  # DPO: where both answers part from the prompt
                other = tokenizer.apply_chat_template(row["prompt"] + row["rejected"], tokenize=True)
                cut = min(cut, _common_prefix_ids(prompt, other))
            loss = [0] * cut + [1] * (len(ids) - cut)
    else:  # no chat template: plain text, the answer after the prompt
        text = str(row.get("prompt", "")) + ("" if answer is None else str(answer))
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]
        prompt = tokenizer(str(row.get("prompt", "")), add_special_tokens=False)["input_ids"]
        cut = _common_prefix_ids(prompt, ids) if answer is not None else len(ids)
        loss = [0] * cut + [1] * (len(ids) - cut)
    return {"text": text, "ids": list(ids), "loss": loss, "spans": _spans(tokenizer, text, loss)}


def _spans(tokenizer: Any, text: str, loss: list[int]) -> list[tuple[str, bool]]:
    """The text cut where the loss starts and stops (by each token's character offsets)."""
    encode = getattr(tokenizer, "encode", None)
    try:
        offsets = encode(text).offsets if encode is not None and hasattr(encode(text), "offsets") else None
    except TypeError:
        offsets = None
    if offsets is None or len(offsets) != len(loss):
        return [(text, False)]
    spans: list[tuple[str, bool]] = []
    at = 0
    for (start, end), learned in zip(offsets, loss, strict=True):
        if start > at:  # text no token covers (rare): with the token after it
            start = at
        piece = text[start:end]
        if spans and spans[-1][1] == bool(learned):
            spans[-1] = (spans[-1][0] + piece, bool(learned))
        else:
            spans.append((piece, bool(learned)))
        at = max(at, end)
    if at < len(text):
        spans.append((text[at:], False))
    return spans


def render_row(tokenizer: Any, row: dict[str, Any]) -> str:
    """A converted row as the trainer's text: through the model's chat template (the Data step's preview,
    the long-row check). A row with no answer (an RL prompt) ends with the generation prompt."""

    def chat(value: Any, role: str) -> list[dict[str, str]]:
        return value if isinstance(value, list) else [{"role": role, "content": str(value)}]

    def has(column: str) -> bool:
        return column in row and not blank(row[column]) and row[column] != []

    if has("messages"):
        messages = row["messages"]
    elif has("completion") and has("prompt"):
        messages = chat(row["prompt"], "user") + chat(row["completion"], "assistant")
    elif has("chosen") and has("prompt"):
        messages = chat(row["prompt"], "user") + chat(row["chosen"], "assistant")
    else:
        messages = chat(row.get("prompt", ""), "user")
        return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))
    return str(tokenizer.apply_chat_template(messages, tokenize=False))


def _chat(value: Any) -> list[dict[str, str]]:
    return value if isinstance(value, list) else [{"role": "user", "content": str(value)}]


def _last_text(value: Any) -> str:
    return str(value[-1]["content"]) if isinstance(value, list) else str(value)


def eval_row(row: dict[str, Any]) -> dict[str, Any] | None:
    """A row of any technique's format as a held-out row: {"prompt": chat, "answer": reference text, ...
    the row's other columns (a grader's references, a rubric)}. No "answer" when the row has none (RLAIF
    prompts); None when it has no prompt at all."""
    rest = {
        k: v for k, v in row.items() if k not in ("messages", "prompt", "completion", "chosen", "rejected")
    }
    if _is_chat(row.get("messages")):
        return {**rest, "prompt": row["messages"][:-1], "answer": row["messages"][-1]["content"]}
    if not _text_or_chat(row.get("prompt")):
        return None
    prompt = _chat(row["prompt"])
    for key in ("completion", "chosen"):
        if _text_or_chat(row.get(key)):
            return {**rest, "prompt": prompt, "answer": _last_text(row[key])}
    if row.get("answer") not in (None, ""):
        return {**rest, "prompt": prompt, "answer": str(row["answer"])}
    return {**rest, "prompt": prompt}
