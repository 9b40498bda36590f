"""Importing articles: Markdown files (or a .zip of them), CSV and JSON, previewed first.

:func:`preview_import` reads the files and returns an :class:`ImportPreview`: every article
it found with its problems (per row), plus problems with whole files. Nothing is saved
until :func:`commit_import`, which saves all rows in one transaction or none.

Formats:

* ``.md`` / ``.markdown``: optional YAML front matter (``title``, ``tags``, ``intents``,
  ``category``, ``id``); without a ``title`` there, the first line must be ``# Title``.
  The rest is the body. Several files (a folder) or a ``.zip`` of them at once.
* ``.csv``: a header row with ``title`` and ``body``, optionally ``id``, ``tags``,
  ``intents``, ``category`` (labels separated by ``,`` ``;`` or ``|``).
* ``.json``: a list of objects with the same fields (or ``{"articles": [...]}``).

Files must be UTF-8. The whole import is at most ``MAX_IMPORT_BYTES``, checked from the
file sizes before anything is read (and again for a .zip's unpacked size), and at most
``MAX_IMPORT_ARTICLES`` articles, counted before any is checked.

Hostile files get a message, never a traceback: YAML aliases are refused (a few hundred
bytes of nested ``*alias`` lists expand to gigabytes), front matter is at most
``MAX_FRONT_MATTER_CHARS``, labels must be text (not nested lists), JSON ``NaN`` and
``Infinity`` are refused, and a damaged, encrypted or unsupported .zip member, a too-deeply
nested document or a number too long to read is reported against its file.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from core.kb.admin import TITLE_REQUIRED, ArticleDraft, KBValidationError, KnowledgeBase
from core.kb.import_formats import (
    BYTES_PER_MB,
    IMPORT_SUFFIXES,
    MARKDOWN_NO_TITLE,
    MARKDOWN_SUFFIXES,
    MAX_IMPORT_ARTICLES,
    MAX_IMPORT_BYTES,
    Found,
    ImportFileError,
    Upload,
    decode,
    mb,
    parse_csv,
    parse_file,
    parse_json,
    parse_markdown,
    stream_size,
)
from core.store import ArticleRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImportRow:
    """One article found in the files.

    Attributes:
        where: file and position, e.g. ``"faq.csv line 3"``.
        draft: the article as read.
        record: what it would be saved as (id assigned, labels normalised).
        errors: why it cannot be imported; empty when it can.
    """

    where: str
    draft: ArticleDraft
    record: ArticleRecord
    errors: tuple[str, ...] = ()
    action: str = "add"  # or "update" (the row's id is an existing article)


@dataclass(frozen=True)
class ImportPreview:
    """What an import would do.

    Attributes:
        rows: every article found, in file order.
        errors: problems with whole files (too big, not UTF-8, wrong columns...).
    """

    rows: tuple[ImportRow, ...] = ()
    errors: tuple[str, ...] = field(default_factory=tuple)

    @property
    def problems(self) -> int:
        """File errors plus rows with errors."""
        return len(self.errors) + sum(1 for r in self.rows if r.errors)

    @property
    def ok(self) -> bool:
        """True when there is something to import and no problem anywhere."""
        return bool(self.rows) and self.problems == 0


def _explain(error: str, where: str) -> str:
    """A row error in the words of the row's format."""
    markdown = where.lower().endswith(MARKDOWN_SUFFIXES)
    return MARKDOWN_NO_TITLE if markdown and error == TITLE_REQUIRED else error


def preview_import(kb: KnowledgeBase, files: Sequence[Upload]) -> ImportPreview:
    """Read ``files`` and check every article against the KB and each other; saves nothing."""
    if not files:
        return ImportPreview()
    sizes = [stream_size(stream) for _, stream in files]
    total = sum(sizes)
    if total > MAX_IMPORT_BYTES:
        what = files[0][0] if len(files) == 1 else f"the {len(files)} files"
        return ImportPreview(errors=(
            f"{what} {'is' if len(files) == 1 else 'are'} {mb(total)}; an import can be at most "
            f"{mb(MAX_IMPORT_BYTES)}: split it into smaller files",
        ))
    found: Found = []
    file_errors: list[str] = []
    for name, stream in files:
        if len(found) > MAX_IMPORT_ARTICLES:
            break
        data = stream.read(MAX_IMPORT_BYTES + 1)
        try:
            if len(data) > MAX_IMPORT_BYTES:  # the stream's size was wrong
                raise ImportFileError(f"{name} is larger than {mb(MAX_IMPORT_BYTES)}")
            found.extend(parse_file(name, data))
        except ImportFileError as exc:
            file_errors.append(str(exc))
        except Exception:  # noqa: BLE001 - whatever else a hostile file does: a message, not a traceback
            log.exception("import of an uploaded file failed")
            file_errors.append(f"{name} could not be read as an import; check that it is a valid "
                               f"{name.rsplit('.', 1)[-1]} file")
    if len(found) > MAX_IMPORT_ARTICLES:  # refused before any row is checked
        return ImportPreview(errors=(*file_errors, f"more than {MAX_IMPORT_ARTICLES:,} articles in one import; "
                                                   "split it into smaller imports"))
    if not found and not file_errors:
        file_errors.append("no articles found in the files")
    planned = kb.plan([draft for _, draft, _ in found], source="import")
    live = {r.id for r in kb.articles()}
    rows = tuple(
        ImportRow(
            where, draft, record, tuple([*parse_errors, *(_explain(e, where) for e in check_errors)]),
            "update" if record.id in live else "add",
        )
        for (where, draft, parse_errors), (record, check_errors) in zip(found, planned, strict=True)
    )
    return ImportPreview(rows, tuple(file_errors))


def commit_import(kb: KnowledgeBase, preview: ImportPreview) -> list[ArticleRecord]:
    """Save every row of a clean preview in one transaction (re-checked against the KB now).

    Raises:
        core.kb.admin.KBValidationError: the preview has problems, or the KB changed since
            and now conflicts; nothing was saved.
    """
    if not preview.ok:
        raise KBValidationError([*preview.errors, *(f"{r.where}: {e}" for r in preview.rows for e in r.errors)]
                                or ["nothing to import"])
    return kb.save_many([r.draft for r in preview.rows], source="import")


__all__ = [
    "BYTES_PER_MB",
    "IMPORT_SUFFIXES",
    "MAX_IMPORT_ARTICLES",
    "MAX_IMPORT_BYTES",
    "ImportFileError",
    "ImportPreview",
    "ImportRow",
    "Upload",
    "commit_import",
    "decode",
    "parse_csv",
    "parse_json",
    "parse_markdown",
    "preview_import",
]
