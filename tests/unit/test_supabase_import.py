"""Supabase KB import through the real supabase client, against a local PostgREST stand-in."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from core.config import Settings
from core.kb.supabase_import import SupabaseImportError, import_from_supabase
from tests.pg import free_port

KEY = "service-role-key-for-tests"
ROWS = [
    {"id": 1, "title": "Lost card", "content": "Block it in the app at once.", "tags": ["cards", "security"]},
    {"id": 2, "title": "Branch hours", "content": "Weekdays 9 to 5.", "tags": "branches, hours"},
    {"id": 3, "title": "", "content": "A row without a title.", "tags": []},
    {"id": 4, "title": "Transfer fees", "content": "International transfers cost 5 EUR.", "tags": None},
    {"id": 5, "title": "Bad tags", "content": "Tags are an object here.", "tags": {"a": 1}},
    {"id": 6, "title": "Overdraft", "content": "   ", "tags": []},
    {"id": 7, "title": "Card limits", "content": "Daily limit 1000 EUR.", "tags": ["cards"]},
]


class PostgREST(BaseHTTPRequestHandler):
    """GET /rest/v1/<table>?select=&order=&offset=&limit= with the key in two headers."""

    tables: dict[str, list[dict]] = {}
    requests: list[dict] = []

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def reply(self, status: int, body) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        q = {k: v[0] for k, v in parse_qs(url.query).items()}
        self.requests.append({"path": url.path, **q})
        if self.headers.get("apikey") != KEY or self.headers.get("Authorization") != f"Bearer {KEY}":
            return self.reply(401, {"code": "PGRST301", "message": "Invalid API key", "hint": None, "details": None})
        table = url.path.removeprefix("/rest/v1/")
        if table not in self.tables:
            return self.reply(404, {"code": "PGRST205", "details": None, "hint": None,
                                    "message": f"Could not find the table 'public.{table}' in the schema cache"})
        rows = self.tables[table]
        columns = q.get("select", "*").split(",")
        for c in columns:
            if c != "*" and rows and c not in rows[0]:
                return self.reply(400, {"code": "42703", "details": None, "hint": None,
                                        "message": f"column {table}.{c} does not exist"})
        key = q.get("order", "id").split(".")[0]
        ordered = sorted(rows, key=lambda r: r[key])
        offset, limit = int(q.get("offset", 0)), int(q.get("limit", len(rows)))
        page = [{c: r[c] for c in columns} if columns != ["*"] else r for r in ordered[offset:offset + limit]]
        self.reply(200, page)


@pytest.fixture
def supabase():
    PostgREST.tables = {"help_articles": list(reversed(ROWS))}
    PostgREST.requests = []
    server = ThreadingHTTPServer(("127.0.0.1", free_port()), PostgREST)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()


def settings(url: str, **overrides) -> Settings:
    values = {
        "supabase_url": url,
        "supabase_service_role_key": KEY,
        "kb_supabase_table": "help_articles",
        "kb_supabase_body_column": "content",
        **overrides,
    }
    return Settings(**values)


def test_articles_are_paged_in_id_order_with_per_row_errors(supabase):
    articles, errors = import_from_supabase(settings(supabase), page_rows=3)
    assert [a.id for a in articles] == ["1", "2", "4", "7"]
    assert articles[0].tags == ("cards", "security") and articles[1].tags == ("branches", "hours")
    assert articles[2].tags == () and articles[0].body == "Block it in the app at once."
    assert articles[3].source == "supabase:help_articles#7"
    assert [(e.row, e.row_id) for e in errors] == [(3, "3"), (5, "5"), (6, "6")]
    assert "title (title) is empty" in str(errors[0]) and "tags must be" in errors[1].message
    assert "body (content) is empty" in str(errors[2])
    # 7 rows at 3 per page: three requests, through the REST endpoint, in id order
    pages = [(r["offset"], r["limit"]) for r in PostgREST.requests]
    assert pages == [("0", "3"), ("3", "3"), ("6", "3")]
    assert {r["path"] for r in PostgREST.requests} == {"/rest/v1/help_articles"}
    assert PostgREST.requests[0]["select"] == "id,title,content,tags"
    assert PostgREST.requests[0]["order"].startswith("id")


def test_duplicate_ids_are_reported_and_the_first_row_kept(supabase):
    PostgREST.tables["help_articles"] = [
        {"slug": "a", "title": "First", "content": "one", "tags": []},
        {"slug": "a", "title": "Second", "content": "two", "tags": []},
    ]
    articles, errors = import_from_supabase(settings(supabase, kb_supabase_id_column="slug"))
    assert [a.title for a in articles] == ["First"]
    assert "duplicate id" in str(errors[0]) and errors[0].row_id == "a"


def test_a_wrong_key_names_the_setting(supabase):
    with pytest.raises(SupabaseImportError, match="SUPABASE_SERVICE_ROLE_KEY"):
        import_from_supabase(settings(supabase, supabase_service_role_key="wrong"))


def test_a_missing_table_or_column_names_the_setting(supabase):
    with pytest.raises(SupabaseImportError, match="VC_KB_SUPABASE_TABLE"):
        import_from_supabase(settings(supabase, kb_supabase_table="articles"))
    with pytest.raises(SupabaseImportError, match="VC_KB_SUPABASE_BODY_COLUMN=body"):
        import_from_supabase(settings(supabase, kb_supabase_body_column="body"))


def test_missing_url_or_key_and_unreachable_server_are_clear():
    with pytest.raises(SupabaseImportError, match="SUPABASE_URL and SUPABASE_SERVICE_ROLE_KEY"):
        import_from_supabase(Settings(supabase_url=None, supabase_service_role_key=None))
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens
    with pytest.raises(SupabaseImportError, match=f"cannot reach Supabase at {url}"):
        import_from_supabase(settings(url))
