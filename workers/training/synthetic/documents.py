"""Documents that ground generated examples: read as text and cut into chunks."""

from __future__ import annotations

import html.parser
import re
from dataclasses import dataclass
from pathlib import Path

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
SUFFIXES = (".txt", ".md", ".pdf", ".html", ".htm")


class DocumentError(ValueError):
    """A document that cannot be used, said so a person can fix it."""


@dataclass(frozen=True)
class Chunk:
    document: str  # the file's name
    index: int
    text: str


class _Text(html.parser.HTMLParser):
    """The visible text of an HTML page (no scripts, styles or markup)."""

    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: object) -> None:
        if tag in ("script", "style", "noscript"):
            self._hidden += 1
        elif tag in ("p", "br", "div", "li", "h1", "h2", "h3", "h4", "tr", "section", "article"):
            self.parts.append("\n\n")

    def handle_endtag(self, tag: str) -> None:
        if tag in ("script", "style", "noscript") and self._hidden:
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.parts.append(data)


def read_document(path: Path | str) -> str:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise DocumentError(f"{path.name}: Atelier reads {', '.join(SUFFIXES)} documents.")
    if not path.exists():
        raise DocumentError(f"No document at {path}.")
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        raise DocumentError(
            f"{path.name} is {size / 1024**2:.0f} MB; a document may be at most {MAX_DOCUMENT_BYTES // 1024**2} MB. "
            "Split it, or give the parts that matter."
        )
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        from pypdf import PdfReader
        from pypdf.errors import PdfReadError

        try:
            reader = PdfReader(path)
            text = "\n\n".join(page.extract_text() or "" for page in reader.pages)
        except (PdfReadError, ValueError, KeyError, OSError) as exc:
            raise DocumentError(f"{path.name} could not be read as a PDF: {exc}") from exc
    else:
        raw = path.read_text(encoding="utf-8", errors="replace")
        if suffix in (".html", ".htm"):
            parser = _Text()
            parser.feed(raw)
            text = "".join(parser.parts)
        else:
            text = raw
    text = re.sub(r"[ \t]+", " ", text)
    text = re.sub(r"\n\s*\n\s*", "\n\n", text).strip()
    if not text:
        raise DocumentError(
            f"{path.name} has no text (an empty file, or a scanned PDF without a text layer). Remove it or add text."
        )
    return text


def chunk(text: str, size: int = 1200) -> list[str]:
    """Paragraphs packed into pieces of at most `size` characters; a longer paragraph is cut at sentences
    (or, failing that, at `size`)."""
    pieces: list[str] = []
    for paragraph in text.split("\n\n"):
        sentences = (
            re.split(r"(?<=[.!?])\s+", paragraph.strip()) if len(paragraph) > size else [paragraph.strip()]
        )
        for sentence in sentences:
            while len(sentence) > size:
                pieces.append(sentence[:size])
                sentence = sentence[size:]
            if sentence:
                pieces.append(sentence)
    chunks: list[str] = []
    for piece in pieces:
        if chunks and len(chunks[-1]) + 2 + len(piece) <= size:
            chunks[-1] += "\n\n" + piece
        else:
            chunks.append(piece)
    return chunks


def load_documents(paths: list[str], size: int = 1200) -> list[Chunk]:
    found: list[Chunk] = []
    for path in paths:
        name = Path(path).name
        found += [Chunk(name, i, piece) for i, piece in enumerate(chunk(read_document(path), size))]
    return found
