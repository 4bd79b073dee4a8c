"""Sanitized HTML -> readable plain text, for the text part of a mail: headings, paragraphs,
lists, quotes and preformatted blocks stay recognisable, links are written out."""

import re
import textwrap
from collections.abc import Callable
from html.parser import HTMLParser

WIDTH = 72
_SPACE = re.compile(r"\s+")
_BLOCKS = {"p", "div", "h1", "h2", "h3", "h4", "h5", "h6", "ul", "ol", "li", "blockquote", "pre", "table", "tr",
           "hr", "dl", "dt", "dd", "figure", "figcaption", "section", "article"}


def html_to_text(html: str, *, link: Callable[[str], str] = str) -> str:
    """The text of `html` (trusted to be sanitized, e.g. Article.body_html), wrapped at 72
    columns. `link` turns an href or src into the address written out (e.g. made absolute)."""
    parser = _TextParser(link)
    parser.feed(html)
    parser.close()
    parser.flush()
    return parser.result()


class _TextParser(HTMLParser):
    def __init__(self, link: Callable[[str], str]):
        super().__init__(convert_charrefs=True)
        self.link = link
        self.blocks: list[tuple[str, bool]] = []  # (text, tight: joined to the previous by one newline)
        self.inline: list[str] = []
        self.lists: list[dict] = []  # {"ordered": bool, "next": number, "items": seen so far}
        self.links: list[tuple[str, int]] = []  # (href, index in self.inline where its text starts)
        self.marker = ""  # the pending list marker of the current item
        self.quote = self.pre = 0
        self.heading = 0
        self.tight = False

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in _BLOCKS:
            self.flush()
        if tag in ("ul", "ol"):
            start = attrs.get("start") or "1"
            self.lists.append({"ordered": tag == "ol", "next": int(start) if start.isdigit() else 1, "items": 0})
        elif tag == "li":
            current = self.lists[-1] if self.lists else {"ordered": False, "next": 1, "items": 0}
            self.marker = f"{current['next']}. " if current["ordered"] else "- "
            current["next"] += 1
            self.tight = current["items"] > 0 or len(self.lists) > 1
            current["items"] += 1
        elif tag == "blockquote":
            self.quote += 1
        elif tag == "pre":
            self.pre += 1
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.heading = int(tag[1])
        elif tag == "br":
            self.inline.append("\n")
        elif tag == "hr":
            self.blocks.append(("-" * 20, False))
        elif tag in ("td", "th") and self.inline:
            self.inline.append(" | ")
        elif tag == "a":
            self.links.append((attrs.get("href") or "", len(self.inline)))
        elif tag == "img" and attrs.get("alt"):
            self.inline.append(f"[{attrs['alt']}]")

    def handle_startendtag(self, tag, attrs):
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag):
        if tag == "a" and self.links:
            href, start = self.links.pop()
            text = _SPACE.sub(" ", "".join(self.inline[start:])).strip()
            href = self.link(href) if href and not href.startswith("#") else ""
            if href and href not in (text, f"mailto:{text}"):
                self.inline.append(f" ({href})" if text else href)
        if tag in _BLOCKS:
            self.flush()
        if tag in ("ul", "ol") and self.lists:
            self.lists.pop()
            self.tight = False
        elif tag == "blockquote":
            self.quote = max(0, self.quote - 1)
        elif tag == "pre":
            self.pre = max(0, self.pre - 1)
        elif tag in ("h1", "h2", "h3", "h4", "h5", "h6"):
            self.heading = 0

    def handle_data(self, data):
        # Outside <pre> a newline is a space (Markdown keeps the source's soft line breaks);
        # only <br> breaks a line.
        self.inline.append(data if self.pre else data.replace("\r", " ").replace("\n", " "))

    def flush(self) -> None:
        raw, self.inline = "".join(self.inline), []
        if self.pre:
            lines = raw.strip("\n").split("\n")
        else:
            lines = [_SPACE.sub(" ", part).strip() for part in raw.split("\n")]
            lines = [line for line in lines if line]
        if not lines:
            return
        if self.heading:
            title = " ".join(lines)
            lines = [title, ("=" if self.heading == 1 else "-") * min(len(title), WIDTH)] if self.heading <= 2 \
                else [f"{'#' * self.heading} {title}"]
        elif not self.pre:
            indent = "   " * max(0, len(self.lists) - 1)
            first, rest = indent + self.marker, indent + " " * len(self.marker)
            wrapped = []
            for number, line in enumerate(lines):
                wrapped += textwrap.wrap(line, WIDTH, initial_indent=first if number == 0 else rest,
                                         subsequent_indent=rest, break_long_words=False, break_on_hyphens=False)
            lines = wrapped
        self.marker = ""
        prefix = "> " * self.quote
        self.blocks.append(("\n".join(prefix + line for line in lines), self.tight))
        self.tight = bool(self.lists)

    def result(self) -> str:
        out = ""
        for text, tight in self.blocks:
            out += (("\n" if tight else "\n\n") if out else "") + text
        return out
