"""``text``: the human-readable narrative of the resources the calculator writes (FHIR dom-6).

A receiver that cannot process a resource shows its ``text.div``; the calculator writes a
``generated`` narrative from the resource's own content, as escaped XHTML (FHIR narrative rules:
a ``div`` in the XHTML namespace, no script, no attributes that run code).
"""
from __future__ import annotations

from html import escape
from typing import Iterable

XHTML = "http://www.w3.org/1999/xhtml"


def narrative(title: str, lines: Iterable[str]) -> dict[str, str]:
    """A ``generated`` Narrative: ``title`` as a paragraph and ``lines`` as a list (plain text,
    escaped here)."""
    items = "".join(f"<li>{escape(line, quote=False)}</li>" for line in lines)
    body = f"<p><b>{escape(title, quote=False)}</b></p>" + (f"<ul>{items}</ul>" if items else "")
    return {"status": "generated", "div": f'<div xmlns="{XHTML}">{body}</div>'}
