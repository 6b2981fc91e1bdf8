"""A small report builder: one Markdown file and one self-contained HTML file (figures inlined
as base64, no network) from the same sequence of headings, paragraphs, tables and figures."""

from __future__ import annotations

import base64
import html
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1100px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
table{border-collapse:collapse;margin:1em 0;font-size:0.9em}
th,td{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#f3f3f3}
img{max-width:100%;border:1px solid #eee}
figcaption{font-size:0.9em;color:#555}
code{background:#f6f6f6;padding:1px 4px}
.pass{color:#1a7f37;font-weight:bold}.fail{color:#cf222e;font-weight:bold}
"""


def _inline_md(text: str) -> str:
    """Escape text and render the few inline Markdown marks the reports use."""
    out = html.escape(text)
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", out)
    out = re.sub(r"\*\*([^*]+)\*\*", r"<b>\1</b>", out)
    out = re.sub(r"\[([^\]]+)\]\(([^)\s]+)\)", r"<a href='\2'>\1</a>", out)  # [text](relative link)
    return out


@dataclass
class Document:
    """A report under construction: a title and an ordered list of blocks (headings, paragraphs,
    bullet lists, tables, figures) that render to the same Markdown and self-contained HTML.

    Each adder appends one block and returns the document, so calls chain.
    """
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "Document":
        """Append a section heading.

        Parameters
        ----------
        text : str
            The heading text (inline Markdown: `code`, **bold**, [text](link)).
        level : int, default 2
            The heading level (``2`` -> ``##`` / ``<h2>``); the title is level 1.

        Returns
        -------
        Document
            ``self``, for chaining.
        """
        self.blocks.append(("heading", (level, text)))
        return self

    def text(self, text: str) -> "Document":
        r"""Append a paragraph of text.

        Parameters
        ----------
        text : str
            The text (inline Markdown); in HTML, blank lines (``"\n\n"``) split it into paragraphs.

        Returns
        -------
        Document
            ``self``, for chaining.
        """
        self.blocks.append(("text", text))
        return self

    def bullets(self, items: list[str]) -> "Document":
        """Append a bullet list.

        Parameters
        ----------
        items : list of str
            One entry per bullet (inline Markdown); copied.

        Returns
        -------
        Document
            ``self``, for chaining.
        """
        self.blocks.append(("bullets", list(items)))
        return self

    def table(self, df: pd.DataFrame, caption: str = "", index: bool = False, floatfmt: str = "{:.4g}") -> "Document":
        """Append a table.

        Parameters
        ----------
        df : pandas.DataFrame
            The table, rendered with its column names; floats are formatted with ``floatfmt``, NaN and None
            shown empty.
        caption : str, default ""
            A caption under the table (none if empty).
        index : bool, default False
            Whether to show the index (as the first columns, via ``reset_index``).
        floatfmt : str, default "{:.4g}"
            The ``str.format`` pattern for float cells.

        Returns
        -------
        Document
            ``self``, for chaining.
        """
        self.blocks.append(("table", (df, caption, index, floatfmt)))
        return self

    def figure(self, path: str | Path, caption: str = "") -> "Document":
        """Append a figure (a PNG file; read when the document is rendered).

        Parameters
        ----------
        path : str or Path
            The PNG file: linked relative to the output folder in Markdown, inlined as base64 in HTML.
        caption : str, default ""
            Alt text and caption (no caption if empty).

        Returns
        -------
        Document
            ``self``, for chaining.
        """
        self.blocks.append(("figure", (Path(path), caption)))
        return self

    @staticmethod
    def _fmt(df: pd.DataFrame, floatfmt: str) -> pd.DataFrame:
        def f(v):
            if isinstance(v, float):
                return "" if pd.isna(v) else floatfmt.format(v)
            return "" if v is None else str(v)

        return df.map(f) if hasattr(df, "map") else df.applymap(f)

    def to_markdown(self, base: Path) -> str:
        """Render the document as Markdown.

        Parameters
        ----------
        base : Path
            The folder the Markdown file is written to; figure paths under it are written relative to it,
            others as given.

        Returns
        -------
        str
            The Markdown text: the title as ``#``, then the blocks in order.
        """
        lines = [f"# {self.title}", ""]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                lines += ["#" * level + " " + text, ""]
            elif kind == "text":
                lines += [payload, ""]
            elif kind == "bullets":
                lines += [f"- {item}" for item in payload] + [""]
            elif kind == "table":
                df, caption, index, floatfmt = payload
                shown = self._fmt(df.reset_index() if index else df, floatfmt)
                cols = [str(c) for c in shown.columns]
                lines.append("| " + " | ".join(cols) + " |")
                lines.append("|" + "|".join("---" for _ in cols) + "|")
                for _, row in shown.iterrows():
                    lines.append("| " + " | ".join(str(v) for v in row) + " |")
                if caption:
                    lines += ["", f"*{caption}*"]
                lines.append("")
            elif kind == "figure":
                path, caption = payload
                rel = path.relative_to(base) if path.is_relative_to(base) else path
                lines += [f"![{caption}]({rel.as_posix()})", ""]
                if caption:
                    lines += [f"*{caption}*", ""]
        return "\n".join(lines)

    def to_html(self) -> str:
        """Render the document as one self-contained HTML page (inline CSS, figures inlined as base64 PNG,
        no network access needed).

        Returns
        -------
        str
            The HTML text; the figure files must exist.
        """
        parts = [f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{html.escape(self.title)}</title>",
                 f"<style>{_CSS}</style></head><body><h1>{html.escape(self.title)}</h1>"]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                parts.append(f"<h{level}>{_inline_md(text)}</h{level}>")
            elif kind == "text":
                for para in payload.split("\n\n"):
                    parts.append(f"<p>{_inline_md(para)}</p>")
            elif kind == "bullets":
                parts.append("<ul>" + "".join(f"<li>{_inline_md(i)}</li>" for i in payload) + "</ul>")
            elif kind == "table":
                df, caption, index, floatfmt = payload
                shown = self._fmt(df.reset_index() if index else df, floatfmt)
                table = shown.to_html(index=False, escape=True, border=0)
                cap = f"<figcaption>{_inline_md(caption)}</figcaption>" if caption else ""
                parts.append(f"<figure>{table}{cap}</figure>")
            elif kind == "figure":
                path, caption = payload
                data = base64.b64encode(path.read_bytes()).decode()
                cap = f"<figcaption>{_inline_md(caption)}</figcaption>" if caption else ""
                parts.append(f"<figure><img alt='{html.escape(caption)}' src='data:image/png;base64,{data}'>{cap}</figure>")
        parts.append("</body></html>")
        return "\n".join(parts)

    def save(self, out_dir: str | Path, stem: str = "report") -> tuple[Path, Path]:
        """Write the document as Markdown and HTML.

        Parameters
        ----------
        out_dir : str or Path
            The output folder (created if missing).
        stem : str, default "report"
            The file name without suffix.

        Returns
        -------
        tuple of (Path, Path)
            The written ``<stem>.md`` and ``<stem>.html``.
        """
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, htm = out / f"{stem}.md", out / f"{stem}.html"
        md.write_text(self.to_markdown(out))
        htm.write_text(self.to_html())
        return md, htm
