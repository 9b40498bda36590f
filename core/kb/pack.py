"""Domain packs: the KB, taxonomies and phrases a deployment ships, loaded from files.

The product is domain-agnostic; everything about the fictional bank lives in
``packs/bank``. A pack folder holds ``pack.yaml``, ``kb/*.md`` (YAML front matter +
Markdown), ``intents.yaml``, ``dispositions.yaml`` and ``phrases.txt``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class PackError(ValueError):
    """A pack file is missing or malformed; the message names the file."""


@dataclass(frozen=True)
class Article:
    id: str
    title: str
    body: str
    category: str = ""
    tags: tuple[str, ...] = ()
    intents: tuple[str, ...] = ()
    source: str = ""


@dataclass(frozen=True)
class Persona:
    name: str = "Agent"
    greeting: str = "Hello, how can I help you today?"
    tone: str = "friendly, concise"
    handoff: str = "I can put you through to a colleague who can help with that."


@dataclass(frozen=True)
class Pack:
    name: str
    root: Path
    articles: tuple[Article, ...]
    phrases: tuple[str, ...]
    persona: Persona = field(default_factory=Persona)
    intents: tuple[dict[str, Any], ...] = ()
    dispositions: tuple[dict[str, Any], ...] = ()

    def fingerprint(self) -> str:
        """Changes whenever KB text or phrases change (drives model rebuilds)."""
        h = hashlib.sha256()
        for a in sorted(self.articles, key=lambda a: a.id):
            h.update(f"{a.id}\0{a.title}\0{a.body}\0".encode())
        for p in self.phrases:
            h.update(p.encode() + b"\n")
        return h.hexdigest()[:16]


def parse_article(text: str, source: str = "") -> Article:
    """Parse one Markdown article with YAML front matter.

    Raises:
        PackError: front matter missing/invalid, or no id/title/body.
    """
    if not text.startswith("---"):
        raise PackError(f"{source}: missing YAML front matter (a '---' block)")
    try:
        _, front, body = text.split("---", 2)
        meta = yaml.safe_load(front) or {}
    except (ValueError, yaml.YAMLError) as exc:
        raise PackError(f"{source}: invalid front matter: {exc}") from exc
    if not isinstance(meta, dict):
        raise PackError(f"{source}: front matter must be a mapping")
    body = body.strip()
    for key in ("id", "title"):
        if not str(meta.get(key) or "").strip():
            raise PackError(f"{source}: front matter has no {key!r}")
    if not body:
        raise PackError(f"{source}: article body is empty")
    return Article(
        id=str(meta["id"]).strip(),
        title=str(meta["title"]).strip(),
        body=body,
        category=str(meta.get("category") or ""),
        tags=tuple(str(t) for t in meta.get("tags") or ()),
        intents=tuple(str(t) for t in meta.get("intents") or ()),
        source=source,
    )


def _load_yaml(path: Path) -> Any:
    if not path.exists():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise PackError(f"{path}: {exc}") from exc


def load_pack(root: Path) -> Pack:
    """Load a pack folder.

    Raises:
        PackError: the folder or one of its files is malformed.
    """
    root = Path(root)
    if not root.is_dir():
        raise PackError(f"pack folder {root} does not exist")
    meta = _load_yaml(root / "pack.yaml") or {}
    articles = []
    seen: set[str] = set()
    for path in sorted((root / "kb").glob("*.md")):
        art = parse_article(path.read_text(encoding="utf-8"), source=str(path))
        if art.id in seen:
            raise PackError(f"{path}: duplicate article id {art.id!r}")
        seen.add(art.id)
        articles.append(art)
    phrases_path = root / "phrases.txt"
    phrases = (
        tuple(
            line.strip()
            for line in phrases_path.read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")
        )
        if phrases_path.exists()
        else ()
    )
    persona_meta = meta.get("persona") or {}
    persona = Persona(**{k: str(v) for k, v in persona_meta.items() if k in Persona.__annotations__})
    intents = (_load_yaml(root / "intents.yaml") or {}).get("intents") or []
    dispositions = (_load_yaml(root / "dispositions.yaml") or {}).get("dispositions") or []
    return Pack(
        name=str(meta.get("name") or root.name),
        root=root,
        articles=tuple(articles),
        phrases=phrases,
        persona=persona,
        intents=tuple(intents),
        dispositions=tuple(dispositions),
    )
