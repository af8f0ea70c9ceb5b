"""A report as one document model, rendered twice: a self-contained HTML page and Markdown.

A `Document` is sections of blocks (paragraphs, tables, bullet lists, figures); the prose is written
once and both renderings follow it. HTML gets inline CSS and inline SVG figures, no scripts and no
external resources (the Kubeflow UI shows it in a sandboxed iframe); Markdown gets each figure's
table fallback, or a pointer to the HTML page when a figure has none.
"""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Strong:
    """Emphasised text inside a paragraph or list item."""

    text: str


Inline = str | Strong


@dataclass(frozen=True)
class Paragraph:
    """Text; `style`: "" (plain), "callout" (the verdict), "warning" (what the run cannot tell), "muted"."""

    parts: tuple[Inline, ...]
    style: str = ""


@dataclass(frozen=True)
class Table:
    """A table; the first `text_columns` columns are text (left-aligned), the rest numbers.

    Rows in `highlight` are marked (a shaded row in HTML, a bold first cell in Markdown) and get
    `badge` after their first cell when one is given.
    """

    header: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    text_columns: int = 1
    highlight: frozenset[int] = frozenset()
    badge: str = ""


@dataclass(frozen=True)
class BulletList:
    """A list of items, each a sequence of inline parts."""

    items: tuple[tuple[Inline, ...], ...]
    style: str = ""


@dataclass(frozen=True)
class Figure:
    """An inline SVG (or a small PNG); Markdown shows `fallback` (a table) under the caption, when given."""

    svg: str
    caption: str
    css_class: str
    data: dict[str, str] = field(default_factory=dict)  # data-* attributes, for tests and styling
    fallback: Table | None = None
    png: bytes = b""  # a picture in place of the SVG (embedded as a data: URI)


@dataclass(frozen=True)
class Figures:
    """Figures side by side; `markdown_note` stands in for those without a Markdown fallback."""

    figures: tuple[Figure, ...]
    markdown_note: str = "The figures are in report.html."


Block = Paragraph | Table | BulletList | Figures


@dataclass(frozen=True)
class Section:
    """A titled part of the document; `style` "reference" frames it as not-this-run material."""

    id: str
    title: str
    blocks: tuple[Block, ...]
    style: str = ""
    subsections: tuple[Section, ...] = ()


@dataclass(frozen=True)
class Document:
    """The whole report: a title, what comes before the first section, and the sections."""

    title: str
    lead: tuple[Block, ...]
    sections: tuple[Section, ...]
    footer: tuple[Block, ...] = ()


# ---------------------------------------------------------------------------------------------
# Markdown


def to_markdown(doc: Document) -> str:
    """The document as Markdown (GitHub flavour: pipe tables; figures as their table or a pointer)."""
    parts = [f"# {doc.title}", *(_md_block(b) for b in doc.lead)]
    for section in doc.sections:
        parts += _md_section(section, level=2)
    parts += [_md_block(b) for b in doc.footer]
    return "\n\n".join(p for p in parts if p) + "\n"


def _md_section(section: Section, level: int) -> list[str]:
    parts = [f"{'#' * level} {section.title}", *(_md_block(b) for b in section.blocks)]
    for sub in section.subsections:
        parts += _md_section(sub, level + 1)
    return parts


def _md_inline(parts: tuple[Inline, ...]) -> str:
    return "".join(_md_strong(p.text) if isinstance(p, Strong) else p for p in parts)


def _md_strong(text: str) -> str:
    # Markdown closes no emphasis after a space ("**Verdict: **x" stays literal): keep spaces outside.
    core = text.strip()
    return text[: len(text) - len(text.lstrip())] + f"**{core}**" + text[len(text.rstrip()) :]


def _md_block(block: Block) -> str:
    if isinstance(block, Paragraph):
        text = _md_inline(block.parts)
        return f"> {text}" if block.style in ("callout", "warning") else text
    if isinstance(block, BulletList):
        return "\n".join(f"- {_md_inline(item)}" for item in block.items)
    if isinstance(block, Table):
        return _md_table(block)
    if isinstance(block, Figures):
        shown = [f"**{f.caption}**\n\n{_md_table(f.fallback)}" for f in block.figures if f.fallback]
        if len(shown) < len(block.figures):
            shown.append(block.markdown_note)
        return "\n\n".join(shown)
    raise TypeError(f"unknown block {type(block).__name__}")


def _md_table(table: Table) -> str:
    def line(cells) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|").replace("\n", " ") for c in cells) + " |"

    rows = []
    for i, row in enumerate(table.rows):
        if i in table.highlight:
            first = f"**{row[0]}**" + (f" ({table.badge})" if table.badge else "")
            row = (first, *row[1:])
        rows.append(line(row))
    return "\n".join([line(table.header), line(["---"] * len(table.header)), *rows])


# ---------------------------------------------------------------------------------------------
# HTML

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, "DejaVu Sans", sans-serif; margin: 24px;
       color: #1d1d1f; background: #fff; line-height: 1.4; }
h1 { font-size: 1.5em; margin-bottom: 0.3em; }
h2 { font-size: 1.2em; margin-top: 1.8em; border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
table { border-collapse: collapse; margin: 0.6em 0; font-size: 0.9em; }
th, td { border: 1px solid #d0d0d0; padding: 4px 8px; text-align: right; }
th { background: #f3f4f6; }
td.text, th.text { text-align: left; }
tr.highlight td { background: #fff4c2; font-weight: 600; }
.badge { display: inline-block; background: #b45309; color: #fff; border-radius: 3px; padding: 0 5px;
         font-size: 0.75em; margin-left: 4px; vertical-align: middle; }
.callout { background: #fff4c2; border-left: 5px solid #b45309; padding: 8px 12px; margin: 12px 0; }
.warning { background: #fde8e8; border-left: 5px solid #b91c1c; padding: 8px 12px; margin: 12px 0; }
.reference { background: #f5f7fa; border: 1px dashed #8a94a6; padding: 4px 14px 10px; margin-top: 1.8em; }
.reference h2 { border-bottom: none; margin-top: 0.6em; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; }
figure svg, figure img { max-width: 100%; height: auto; }
.muted { color: #666; font-size: 0.9em; }
nav a { margin-right: 12px; }
"""


def to_html(doc: Document) -> str:
    """The document as one self-contained HTML page (inline CSS and SVG, no scripts)."""
    esc = html.escape
    nav = " ".join(f'<a href="#{esc(s.id)}">{esc(s.title)}</a>' for s in doc.sections)
    body = [f"<h1>{esc(doc.title)}</h1>", f"<nav>{nav}</nav>", *(_html_block(b) for b in doc.lead)]
    body += [_html_section(s, level=2) for s in doc.sections]
    body += [_html_block(b) for b in doc.footer]
    newline = "\n"
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{esc(doc.title)}</title>
<style>{CSS}</style>
</head>
<body>
{newline.join(body)}
</body>
</html>
"""


def _html_section(section: Section, level: int) -> str:
    esc = html.escape
    inner = [
        f'<h{level} id="{esc(section.id)}">{esc(section.title)}</h{level}>',
        *(_html_block(b) for b in section.blocks),
        *(_html_section(sub, level + 1) for sub in section.subsections),
    ]
    if section.style:
        return f'<section class="{esc(section.style)}">' + "\n".join(inner) + "</section>"
    return "\n".join(inner)


def _html_inline(parts: tuple[Inline, ...]) -> str:
    return "".join(
        f"<strong>{html.escape(p.text)}</strong>" if isinstance(p, Strong) else html.escape(p) for p in parts
    )


def _html_block(block: Block) -> str:
    style = f' class="{block.style}"' if getattr(block, "style", "") else ""
    if isinstance(block, Paragraph):
        return f"<p{style}>{_html_inline(block.parts)}</p>"
    if isinstance(block, BulletList):
        return f"<ul{style}>" + "".join(f"<li>{_html_inline(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        return _html_table(block)
    if isinstance(block, Figures):
        figures = []
        for f in block.figures:
            data = "".join(f' data-{html.escape(k)}="{html.escape(v)}"' for k, v in f.data.items())
            body = f.svg
            if f.png:
                encoded = base64.b64encode(f.png).decode()
                body = f'<img alt="{html.escape(f.caption)}" src="data:image/png;base64,{encoded}">'
            figures.append(f'<figure class="{html.escape(f.css_class)}"{data}>{body}</figure>')
        return f'<div class="figures">{"".join(figures)}</div>'
    raise TypeError(f"unknown block {type(block).__name__}")


def _html_table(table: Table) -> str:
    def cells(tag: str, values, badge: str = "") -> str:
        out = []
        for i, value in enumerate(values):
            text = html.escape(str(value))
            if i == 0 and badge:
                text += f'<span class="badge">{html.escape(badge)}</span>'
            cls = ' class="text"' if i < table.text_columns else ""
            out.append(f"<{tag}{cls}>{text}</{tag}>")
        return "".join(out)

    body = []
    for i, row in enumerate(table.rows):
        marked = i in table.highlight
        row_class = ' class="highlight"' if marked else ""
        body.append(f"<tr{row_class}>{cells('td', row, table.badge if marked else '')}</tr>")
    return f"<table><thead><tr>{cells('th', table.header)}</tr></thead><tbody>{''.join(body)}</tbody></table>"
