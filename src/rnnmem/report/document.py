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
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> "Document":
        self.blocks.append(("heading", (level, text)))
        return self

    def text(self, text: str) -> "Document":
        self.blocks.append(("text", text))
        return self

    def bullets(self, items: list[str]) -> "Document":
        self.blocks.append(("bullets", list(items)))
        return self

    def table(self, df: pd.DataFrame, caption: str = "", index: bool = False, floatfmt: str = "{:.4g}") -> "Document":
        self.blocks.append(("table", (df, caption, index, floatfmt)))
        return self

    def figure(self, path: str | Path, caption: str = "") -> "Document":
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
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        md, htm = out / f"{stem}.md", out / f"{stem}.html"
        md.write_text(self.to_markdown(out))
        htm.write_text(self.to_html())
        return md, htm
