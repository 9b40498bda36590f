"""Smaller hostile-input defects: remote images in articles, spreadsheet formulas in CSV
exports, credentials in URLs shown on Health (hostile input and hard faults, defect 8)."""

from __future__ import annotations

import csv
import io

import pytest

from core.config import Settings, mask_url, mask_urls
from core.insights.analytics import table
from core.language.text import without_remote_images


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        ("See ![x](http://host/beacon.gif) here", "See [image: x] here"),
        ('![](https://tracker.example/p.png "title")', "[image]"),
        ("![logo][l]\n\n[l]: https://evil.example/l.png", "[image: logo]\n\n[l]: https://evil.example/l.png"),
        ("![logo]\n\n[logo]: http://evil.example/l.png", "[image: logo]\n\n[logo]: http://evil.example/l.png"),
        ("a [link](http://example.com/page) stays a link", "a [link](http://example.com/page) stays a link"),
        ("![ok](https://cdn.example.com/a.png)", "![ok](https://cdn.example.com/a.png)"),
        ("![over http](http://cdn.example.com/a.png)", "[image: over http]"),
        ("![other](https://cdn.example.com.evil.io/a.png)", "[image: other]"),
    ],
)
def test_article_images_are_fetched_only_from_configured_hosts(body, shown):
    assert without_remote_images(body, ["cdn.example.com"]) == shown


def test_by_default_no_article_image_is_fetched():
    assert Settings().kb_image_hosts == ""
    assert without_remote_images("![a](https://cdn.example.com/a.png)", "".split(",")) == "[image: a]"


def test_csv_exports_neutralise_spreadsheet_formulas():
    t = table(["text", "n"], [["=HYPERLINK(\"http://x\",\"y\")", 1], ["+1 555", -2], ["@SUM(A1)", 3.5],
                              ["-2+3", 0], ["plain", 4], ["\tTAB", 5]])
    rows = list(csv.reader(io.StringIO(t.to_csv())))
    assert [r[0] for r in rows[1:]] == ["'=HYPERLINK(\"http://x\",\"y\")", "'+1 555", "'@SUM(A1)", "'-2+3", "plain",
                                        "'\tTAB"]
    assert [r[1] for r in rows[1:]] == ["1", "-2", "3.5", "0", "4", "5"]  # numbers stay numbers


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("https://user:pass@llm.example.com/v1?api-key=abc&model=x",
         "https://user:••••@llm.example.com/v1?api-key=••••&model=x"),
        ("https://token@host.example/path", "https://••••@host.example/path"),
        ("https://host.example/v1?access_token=t0k&sig=s1g&q=1", "https://host.example/v1?access_token=••••&sig=••••&q=1"),
        ("http://127.0.0.1:8080/v1", "http://127.0.0.1:8080/v1"),
    ],
)
def test_urls_with_credentials_are_masked(url, masked):
    assert mask_url(url) == masked


def test_health_shows_base_urls_masked_and_errors_mentioning_them(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", "https://user:hunter2@proxy.example/v1?api-key=sk-secret")
    shown = Settings().masked()["openai_base_url"]
    assert "hunter2" not in shown and "sk-secret" not in shown and "proxy.example" in shown
    message = mask_urls("Connection refused for url 'https://user:hunter2@proxy.example/v1?key=abc'")
    assert "hunter2" not in message and "abc" not in message and "proxy.example" in message
