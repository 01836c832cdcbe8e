"""Citations that point at the exact place: a page's heading anchor, a Git file's line range at a commit.

Chunks know their heading (:class:`~bot.domain.Chunk`), not where they sit upstream, so each kind records what is
needed next to the fetched document (the page's heading ids, the file's blob URL at the commit) and, once the
document is stored, its chunks are mapped to links here. A heading without an id on the page gets no anchor
rather than a guessed one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from html.parser import HTMLParser

_HEADINGS = frozenset({"h1", "h2", "h3", "h4", "h5", "h6"})
_MARKUP = re.compile(r"[*_`]|\[([^\]]*)\]\([^)]*\)")
_PERMALINK_MARKS = "¶#🔗§ \t\n"


def heading_key(text: str) -> str:
    """A heading as both the HTML and the Markdown the loader made of it compare: no markup, one-spaced, lower."""
    plain = _MARKUP.sub(lambda m: m.group(1) or "", text)
    return " ".join(plain.strip(_PERMALINK_MARKS).split()).lower()


class _HeadingIds(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.ids: dict[str, str] = {}
        self._tag = ""
        self._id = ""
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = {name: value or "" for name, value in attrs}
        if tag in _HEADINGS:
            self._tag, self._id, self._text = tag, values.get("id", ""), []
        elif self._tag and not self._id:
            href = values.get("href", "")
            self._id = values.get("id") or values.get("name") or (href[1:] if href.startswith("#") else "")

    def handle_data(self, data: str) -> None:
        if self._tag:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if tag == self._tag:
            key = heading_key("".join(self._text))
            if key and self._id:
                self.ids.setdefault(key, self._id)
            self._tag = ""


def heading_anchors(html: str) -> dict[str, str]:
    """Heading key (:func:`heading_key`) → the id a link can point at: the heading's own, a child's, or the target
    of the heading's permalink (``<a href="#id">¶</a>``)."""
    parser = _HeadingIds()
    parser.feed(html)
    parser.close()
    return parser.ids


def page_link(url: str, heading: str, anchors: dict[str, str]) -> str:
    anchor = anchors.get(heading_key(heading)) if heading else None
    return f"{url}#{anchor}" if anchor else url


def line_links(blob_url: str, text: str, line_offset: int, chunk_texts: Sequence[str]) -> list[str]:
    """``blob_url#Lstart-Lend`` per chunk: each chunk's body (after its title/heading prefix) found in ``text`` in
    order, its lines shifted by the ``line_offset`` lines the loader stripped. A body not found verbatim gets the
    plain ``blob_url``."""
    links = []
    cursor = 0
    for chunk_text in chunk_texts:
        body = chunk_text.split("\n\n", 1)[-1]
        at = text.find(body, cursor)
        if at < 0:
            links.append(blob_url)
            continue
        start = text.count("\n", 0, at) + 1 + line_offset
        links.append(f"{blob_url}#L{start}-L{start + body.count(chr(10))}")
        cursor = at + 1
    return links
