"""The small Markdown subset of ``training/data/ASSUMPTIONS.md``, read into blocks for a template.

Headings (``#`` to ``####``, shifted two levels down so the report's own h1 / h2 stay above),
bullet lists with indented continuation lines, and paragraphs; inline ```code``` and ``**bold**``.
Nothing here writes HTML: ``templates/macros.html`` renders the blocks, escaping every text.
A maintained Markdown library was not used because its output differs in markup (heading levels,
line breaks inside list items) from the report's, which tests and readers rely on.
"""
from __future__ import annotations

import re

_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*([^*]+)\*\*")


def inline_spans(text: str) -> list[tuple[str, str]]:
    """(kind, text) pieces of one line: kind is "code", "strong" or "text"."""
    spans = []
    for i, piece in enumerate(_CODE.split(text)):
        if i % 2:
            spans.append(("code", piece))
            continue
        for j, part in enumerate(_STRONG.split(piece)):
            if part:
                spans.append(("strong" if j % 2 else "text", part))
    return spans


def markdown_blocks(markdown: str) -> list[dict]:
    """Blocks of ``markdown``: dicts with ``kind`` "heading" (``level``, ``text``), "list"
    (``items``) or "paragraph" (``text``); every text is a list of :func:`inline_spans`."""
    blocks, paragraph, items = [], [], []

    def flush():
        if paragraph:
            blocks.append({"kind": "paragraph", "text": inline_spans(" ".join(paragraph))})
            paragraph.clear()
        if items:
            blocks.append({"kind": "list", "items": [inline_spans(i) for i in items]})
            items.clear()

    for line in markdown.splitlines():
        stripped = line.strip()
        heading = re.match(r"(#{1,4})\s+(.*)", stripped)
        if not stripped:
            flush()
        elif heading:
            flush()
            blocks.append({"kind": "heading", "level": min(len(heading.group(1)) + 2, 6),
                           "text": inline_spans(heading.group(2))})
        elif re.match(r"[-*]\s+", stripped):
            if paragraph:
                flush()
            items.append(re.sub(r"^[-*]\s+", "", stripped))
        elif items and line[:1].isspace():
            items[-1] += " " + stripped
        else:
            if items:
                flush()
            paragraph.append(stripped)
    flush()
    return blocks
