"""Import knowledge-base articles from an existing Supabase table (through PostgREST).

A deployment that already keeps its articles in Supabase points ``SUPABASE_URL`` and
``SUPABASE_SERVICE_ROLE_KEY`` at it and names the table and columns with the
``VC_KB_SUPABASE_*`` settings. Rows are read a page at a time in id order and become pack
:class:`~core.kb.pack.Article` objects; a row that cannot be an article is reported with its
row number and id instead of stopping the import.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from core.config import Settings
from core.kb.pack import Article

PAGE_ROWS = 500
MAX_IMPORT_ROWS = 100_000  # a guard against a server that ignores offsets
REQUEST_TIMEOUT_S = 30


class SupabaseImportError(RuntimeError):
    """The table cannot be read at all; the message says what to fix."""


@dataclass(frozen=True)
class RowError:
    """One row that was skipped, and why."""

    row: int  # 1-based position in id order
    row_id: str | None
    message: str

    def __str__(self) -> str:
        where = f"row {self.row}" + (f" (id {self.row_id})" if self.row_id else "")
        return f"{where}: {self.message}"


@dataclass(frozen=True)
class Columns:
    table: str
    id: str
    title: str
    body: str
    tags: str = ""
    category: str = ""

    @classmethod
    def from_settings(cls, settings: Settings) -> Columns:
        return cls(
            table=settings.kb_supabase_table,
            id=settings.kb_supabase_id_column,
            title=settings.kb_supabase_title_column,
            body=settings.kb_supabase_body_column,
            tags=settings.kb_supabase_tags_column,
            category=settings.kb_supabase_category_column,
        )

    @property
    def select(self) -> str:
        return ",".join(c for c in (self.id, self.title, self.body, self.tags, self.category) if c)


def make_client(settings: Settings) -> Any:
    """A Supabase client for the configured project.

    Raises:
        SupabaseImportError: the URL or key is missing, or the SDK is not installed.
    """
    missing = [
        name
        for name, value in (
            ("SUPABASE_URL", settings.supabase_url),
            ("SUPABASE_SERVICE_ROLE_KEY", settings.supabase_service_role_key),
        )
        if not value
    ]
    if missing:
        raise SupabaseImportError(
            f"importing from Supabase needs {' and '.join(missing)}; set them in the "
            f"environment, .env or .streamlit/secrets.toml (Project Settings → API)"
        )
    try:
        import httpx
        from supabase import ClientOptions, create_client
    except ImportError as exc:
        raise SupabaseImportError(
            "importing from Supabase needs the supabase package: pip install 'supabase>=2.34'"
        ) from exc
    try:
        return create_client(
            settings.supabase_url or "",
            settings.supabase_service_role_key or "",
            options=ClientOptions(httpx_client=httpx.Client(timeout=REQUEST_TIMEOUT_S)),
        )
    except Exception as exc:  # the SDK raises its own type for a malformed URL
        raise SupabaseImportError(f"SUPABASE_URL is not usable: {exc}") from exc


def _explain(exc: Exception, cols: Columns, url: str) -> SupabaseImportError:
    """The SDK's error (HTTP status, PostgREST code) as something a user can act on."""
    code = str(getattr(exc, "code", "") or "")
    message = str(getattr(exc, "message", "") or exc)
    setting_for = {
        cols.id: "VC_KB_SUPABASE_ID_COLUMN",
        cols.title: "VC_KB_SUPABASE_TITLE_COLUMN",
        cols.body: "VC_KB_SUPABASE_BODY_COLUMN",
        cols.tags: "VC_KB_SUPABASE_TAGS_COLUMN",
        cols.category: "VC_KB_SUPABASE_CATEGORY_COLUMN",
    }
    if code in {"401", "403", "PGRST301", "PGRST302"} or "api key" in message.lower() or "jwt" in message.lower():
        return SupabaseImportError(
            f"Supabase refused the key ({message}); check SUPABASE_SERVICE_ROLE_KEY"
        )
    if code in {"PGRST205", "42P01", "404"}:
        return SupabaseImportError(
            f"table {cols.table!r} was not found in Supabase ({message}); set VC_KB_SUPABASE_TABLE"
        )
    if code == "42703":
        named = [f"{setting}={column}" for column, setting in setting_for.items() if column and column in message]
        hint = f" (check {', '.join(named)})" if named else ""
        return SupabaseImportError(f"a column of {cols.table!r} does not exist: {message}{hint}")
    try:
        import httpx

        if isinstance(exc, httpx.TransportError):
            return SupabaseImportError(f"cannot reach Supabase at {url}: {exc}; check SUPABASE_URL")
    except ImportError:  # pragma: no cover - httpx comes with the SDK
        pass
    return SupabaseImportError(f"reading {cols.table!r} from Supabase failed: {message}")


def fetch_rows(client: Any, cols: Columns, url: str, page_rows: int = PAGE_ROWS) -> Iterator[dict[str, Any]]:
    """Every row of the table in id order, one request per ``page_rows`` rows.

    Raises:
        SupabaseImportError: the table cannot be read (key, table, column, network).
    """
    offset = 0
    while offset < MAX_IMPORT_ROWS:
        query = client.table(cols.table).select(cols.select).order(cols.id)
        try:
            page = query.range(offset, offset + page_rows - 1).execute().data
        except Exception as exc:  # SDK and transport errors alike: translated below
            raise _explain(exc, cols, url) from exc
        if not isinstance(page, list):
            raise SupabaseImportError(f"Supabase answered {cols.table!r} with {type(page).__name__}, not rows")
        yield from page
        if len(page) < page_rows:
            return
        offset += len(page)
    raise SupabaseImportError(f"{cols.table!r} has more than {MAX_IMPORT_ROWS} rows; import it in parts")


def _tags(value: Any) -> tuple[str, ...]:
    if value is None or value == "":
        return ()
    if isinstance(value, str):  # "cards, fees" as plain text
        return tuple(t.strip() for t in value.split(",") if t.strip())
    if isinstance(value, list) and all(isinstance(t, (str, int, float)) for t in value):
        return tuple(str(t).strip() for t in value if str(t).strip())
    raise ValueError(f"tags must be a list of strings or comma-separated text, not {type(value).__name__}")


def row_to_article(row: dict[str, Any], cols: Columns) -> Article:
    """One table row as an article.

    Raises:
        ValueError: a required field is missing or empty, or tags are malformed.
    """
    if not isinstance(row, dict):
        raise ValueError("not a row object")
    fields = {}
    for name, column in (("id", cols.id), ("title", cols.title), ("body", cols.body)):
        value = row.get(column)
        if value is None or not str(value).strip():
            raise ValueError(f"{name} ({column}) is empty")
        fields[name] = str(value).strip()
    return Article(
        id=fields["id"],
        title=fields["title"],
        body=fields["body"],
        category=str(row.get(cols.category) or "").strip() if cols.category else "",
        tags=_tags(row.get(cols.tags)) if cols.tags else (),
        source=f"supabase:{cols.table}#{fields['id']}",
    )


def import_from_supabase(
    settings: Settings, client: Any = None, page_rows: int = PAGE_ROWS
) -> tuple[list[Article], list[RowError]]:
    """Read the configured Supabase table as articles.

    Args:
        settings: ``supabase_url``, ``supabase_service_role_key`` and ``kb_supabase_*``.
        client: an existing Supabase client (default: one built from ``settings``).
        page_rows: rows per request.

    Returns:
        The valid articles in id order, and one error per row that was skipped (empty
        fields, malformed tags, an id seen before).

    Raises:
        SupabaseImportError: the table cannot be read at all.
    """
    cols = Columns.from_settings(settings)
    client = client or make_client(settings)
    articles: list[Article] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for number, row in enumerate(fetch_rows(client, cols, settings.supabase_url or "", page_rows), start=1):
        raw_id = row.get(cols.id) if isinstance(row, dict) else None
        row_id = None if raw_id is None else str(raw_id)
        try:
            article = row_to_article(row, cols)
        except ValueError as exc:
            errors.append(RowError(number, row_id, str(exc)))
            continue
        if article.id in seen:
            errors.append(RowError(number, row_id, "duplicate id (the first row with it was kept)"))
            continue
        seen.add(article.id)
        articles.append(article)
    return articles, errors
