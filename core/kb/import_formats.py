"""Reading import files: Markdown (with YAML front matter), a .zip of Markdown files, CSV and
JSON, each into article drafts with per-row problems, hostile input refused with a message.

See :mod:`core.kb.importers` for the formats, the limits, and the preview that uses this.
"""

from __future__ import annotations

import csv
import io
import json
import zipfile
import zlib
from typing import IO, Any

import yaml

from core.kb.admin import ArticleDraft, split_labels

MAX_IMPORT_BYTES = 10 * 1024 * 1024  # 10 MiB for one import, all files together
MAX_IMPORT_ARTICLES = 5000
MAX_FRONT_MATTER_CHARS = 8_000
BYTES_PER_MB = 1024 * 1024
MARKDOWN_SUFFIXES = (".md", ".markdown")
IMPORT_SUFFIXES = (*MARKDOWN_SUFFIXES, ".csv", ".json", ".zip")
REQUIRED_FIELDS = ("title", "body")
OPTIONAL_FIELDS = ("id", "tags", "intents", "category")
MARKDOWN_NO_TITLE = "no title: start the file with a '# Title' line or front matter with 'title:'"
_FIELDS_HELP = f"{', '.join(REQUIRED_FIELDS)} (optional: {', '.join(OPTIONAL_FIELDS)})"

Upload = tuple[str, IO[bytes]]  # (file name, binary stream)
Found = list[tuple[str, ArticleDraft, list[str]]]


class ImportFileError(ValueError):
    """A whole file cannot be imported; the message names it."""


def mb(n: int) -> str:
    return f"{n / BYTES_PER_MB:.1f} MB"


def stream_size(stream: IO[bytes]) -> int:
    """Bytes from the current position to the end, without reading them."""
    size = getattr(stream, "size", None)
    if isinstance(size, int):
        return size
    pos = stream.tell()
    end = stream.seek(0, io.SEEK_END)
    stream.seek(pos)
    return end - pos


def decode(data: bytes, name: str) -> str:
    """UTF-8 text (a byte-order mark is dropped).

    Raises:
        ImportFileError: not UTF-8; the message gives the line of the first bad byte.
    """
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise ImportFileError(
            f"{name} is not UTF-8 text (byte 0x{data[exc.start]:02x} on line {line}); "
            f"save it as UTF-8 and import it again"
        ) from exc


def _is_text(value: Any) -> bool:
    return isinstance(value, str | int | float) and not isinstance(value, bool)


def _draft(values: dict[str, Any], source: str) -> tuple[ArticleDraft, list[str]]:
    errors = []
    for key in ("title", "body", "id", "category"):
        if values.get(key) is not None and not _is_text(values[key]):
            errors.append(f"{key!r} must be text")
    for key in ("tags", "intents"):
        v = values.get(key)
        if v is not None and not (_is_text(v) or (isinstance(v, list) and all(_is_text(i) for i in v))):
            errors.append(f"{key!r} must be text or a list of text")
            values = {**values, key: None}

    def text(key: str) -> str:
        v = values.get(key)
        return str(v).strip() if _is_text(v) else ""

    def labels(key: str) -> tuple[str, ...]:
        v = values.get(key)
        return split_labels(v if isinstance(v, list) else str(v)) if v is not None else ()

    draft = ArticleDraft(
        title=text("title"),
        body=text("body"),
        tags=labels("tags"),
        intents=labels("intents"),
        category=text("category"),
        id=text("id"),
        source=source,
    )
    return draft, errors


class _FrontMatterLoader(yaml.SafeLoader):
    """Safe YAML without aliases: ``*name`` is an error, so nothing can expand."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.check_event(yaml.AliasEvent):
            mark = self.peek_event().start_mark
            raise yaml.composer.ComposerError(None, None, "aliases (*name) are not allowed in front matter", mark)
        return super().compose_node(parent, index)


def _front_matter(text: str) -> Any:
    """The front matter's value.

    Raises:
        ValueError: too long, not valid YAML, an alias, nested too deeply, or a number
            too long to read (the message says which).
    """
    if len(text) > MAX_FRONT_MATTER_CHARS:
        raise ValueError(f"front matter is {len(text):,} characters; the limit is {MAX_FRONT_MATTER_CHARS:,}")
    try:
        return yaml.load(text, Loader=_FrontMatterLoader)  # noqa: S506 - a SafeLoader without aliases
    except yaml.YAMLError as exc:
        raise ValueError(f"front matter is not valid YAML ({' '.join(str(exc).split())[:200]})") from exc
    except RecursionError as exc:
        raise ValueError("front matter is nested too deeply") from exc
    except ValueError as exc:  # e.g. an integer of thousands of digits
        raise ValueError(f"front matter has a value that cannot be read ({str(exc)[:120]})") from exc


def parse_markdown(text: str, name: str) -> tuple[ArticleDraft, list[str]]:
    """One article from a Markdown file (front matter and/or a ``# Title`` first line)."""
    meta: Any = {}
    body = text
    if text.startswith("---"):
        parts = text.split("---", 2)
        if len(parts) < 3:
            return _draft({}, f"import:{name}")[0], ["front matter is not closed by a '---' line"]
        try:
            meta = _front_matter(parts[1]) or {}
        except ValueError as exc:
            return _draft({}, f"import:{name}")[0], [str(exc)]
        if not isinstance(meta, dict):
            return _draft({}, f"import:{name}")[0], ["front matter must be 'key: value' lines"]
        body = parts[2]
    lines = body.strip().splitlines()
    values = {k: meta.get(k) for k in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)}
    if not values["title"] and lines and lines[0].startswith("# "):
        values["title"], lines = lines[0][2:], lines[1:]
    values["body"] = "\n".join(lines)
    return _draft(values, f"import:{name}")


def parse_csv(text: str, name: str) -> Found:
    """Articles from CSV text with a header row.

    Raises:
        ImportFileError: no header, wrong columns, or broken CSV.
    """
    first = text.split("\n", 1)[0]
    try:
        dialect: Any = csv.Sniffer().sniff(first, delimiters=",;\t")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(io.StringIO(text, newline=""), dialect)
    try:
        header = next(reader, None)
        if not header:
            raise ImportFileError(f"{name} is empty: expected a header row with {_FIELDS_HELP}")
        columns = [h.strip().lower() for h in header]
        missing = [c for c in REQUIRED_FIELDS if c not in columns]
        unknown = [h for h, c in zip(header, columns, strict=True) if c not in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)]
        if missing or unknown or len(set(columns)) != len(columns):
            raise ImportFileError(
                f"{name} has the wrong columns: expected {_FIELDS_HELP}; found {', '.join(header)}"
            )
        out: Found = []
        for row in reader:
            if not any(cell.strip() for cell in row):
                continue
            if len(out) > MAX_IMPORT_ARTICLES:  # enough to say it is over the limit
                break
            where = f"{name} line {reader.line_num}"
            draft, errors = _draft(dict(zip(columns, row, strict=False)), f"import:{name}")
            if len(row) != len(columns):
                errors.append(f"has {len(row)} cells; the header has {len(columns)}")
            out.append((where, draft, errors))
        return out
    except csv.Error as exc:
        raise ImportFileError(f"{name} line {reader.line_num} is not valid CSV: {exc}") from exc


def _no_constant(value: str) -> Any:
    raise ValueError(f"{value} is not a value an article can have")


def parse_json(text: str, name: str) -> Found:
    """Articles from a JSON list of objects (or ``{"articles": [...]}``).

    Raises:
        ImportFileError: not JSON, or not a list.
    """
    try:
        data = json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise ImportFileError(f"{name} is not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})") from exc
    except RecursionError as exc:
        raise ImportFileError(f"{name} is nested too deeply to be a list of articles") from exc
    except ValueError as exc:  # NaN/Infinity, or an integer of thousands of digits
        raise ImportFileError(f"{name} is not valid JSON for an import: {str(exc)[:160]}") from exc
    if isinstance(data, dict) and isinstance(data.get("articles"), list):
        data = data["articles"]
    if not isinstance(data, list):
        raise ImportFileError(f'{name} must hold a list of articles (or {{"articles": [...]}}) with {_FIELDS_HELP}')
    out: Found = []
    for n, item in enumerate(data[: MAX_IMPORT_ARTICLES + 1], start=1):
        where = f"{name} item {n}"
        if not isinstance(item, dict):
            out.append((where, _draft({}, f"import:{name}")[0], [f"is a {type(item).__name__}, not an object"]))
            continue
        draft, errors = _draft(item, f"import:{name}")
        unknown = [k for k in item if k not in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS)]
        if unknown:
            errors.append(f"unknown field {', '.join(map(repr, unknown))}; expected {_FIELDS_HELP}")
        out.append((where, draft, errors))
    return out


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, member: str) -> bytes:
    """A .zip member's bytes.

    Raises:
        ImportFileError: encrypted, damaged or packed with a method Python cannot read.
    """
    try:
        return archive.read(info)
    except NotImplementedError as exc:  # Deflate64, PPMd, ...
        raise ImportFileError(f"{member} is packed with a method that cannot be read ({exc}); "
                              "zip it again with the standard method (Deflate)") from exc
    except RuntimeError as exc:  # zipfile's "is encrypted, password required"
        raise ImportFileError(f"{member} is encrypted; zip it again without a password") from exc
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as exc:
        raise ImportFileError(f"{member} is damaged in the .zip ({str(exc)[:100]}); zip it again") from exc


def _read_zip(data: bytes, name: str) -> Found:
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError) as exc:
        raise ImportFileError(f"{name} is not a valid .zip file") from exc
    with archive:
        members = [
            i for i in archive.infolist()
            if not i.is_dir() and i.filename.lower().endswith(MARKDOWN_SUFFIXES) and "__MACOSX" not in i.filename
        ]
        unpacked = sum(i.file_size for i in members)
        if unpacked > MAX_IMPORT_BYTES:
            raise ImportFileError(f"{name} unpacks to {mb(unpacked)}; the limit is {mb(MAX_IMPORT_BYTES)}")
        if not members:
            raise ImportFileError(f"{name} holds no Markdown (.md) files")
        if len(members) > MAX_IMPORT_ARTICLES:  # before reading any of them
            raise ImportFileError(f"{name} holds {len(members):,} Markdown files; the limit is "
                                  f"{MAX_IMPORT_ARTICLES:,} articles in one import")
        out: Found = []
        for info in sorted(members, key=lambda i: i.filename):
            member = f"{name}/{info.filename}"
            try:
                draft, errors = parse_markdown(decode(_read_member(archive, info, member), member), member)
            except ImportFileError as exc:
                draft, errors = _draft({}, f"import:{member}")[0], [str(exc)]
            out.append((member, draft, errors))
        return out


def parse_file(name: str, data: bytes) -> Found:
    lower = name.lower()
    if lower.endswith(".zip"):
        return _read_zip(data, name)
    text = decode(data, name)
    if lower.endswith(".csv"):
        return parse_csv(text, name)
    if lower.endswith(".json"):
        return parse_json(text, name)
    if lower.endswith(MARKDOWN_SUFFIXES):
        draft, errors = parse_markdown(text, name)
        return [(name, draft, errors)]
    raise ImportFileError(f"{name}: unsupported file type; import {', '.join(IMPORT_SUFFIXES)} files")
