"""Pure content transformations used by the pipeline: body -> safe HTML, image -> thumbnail."""

import html as html_lib
import io
import re
import threading

import markdown
import nh3
from PIL import Image, ImageOps

EXCERPT_LENGTH = 280
# Block-level tags (and <br>) separate words; inline tags (<strong>, <em>, <a>, <code>...) do not.
_BLOCK_TAGS = re.compile(
    r"</?(?:p|div|br|hr|h[1-6]|ul|ol|li|dl|dt|dd|blockquote|pre|table|thead|tbody|tr|td|th|"
    r"section|article|figure|figcaption)\b[^>]*>",
    re.IGNORECASE,
)
_TAGS = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")
_WORDS = re.compile(r"\w+(?:['’]\w+)*")


_converters = threading.local()


def _markdown() -> markdown.Markdown:
    """One converter per thread, reset between articles: building one (loading its extensions)
    cost about as much as converting a short article."""
    converter = getattr(_converters, "markdown", None)
    if converter is None:
        converter = _converters.markdown = markdown.Markdown(extensions=["extra", "sane_lists"], output_format="html")
    return converter.reset()


class ContentError(Exception):
    """The article's own content cannot be processed; retrying will not help."""


def render_body(body: str) -> tuple[str, str, int]:
    """Markdown -> sanitized HTML, plus a plain-text excerpt and a word count."""
    html = nh3.clean(_markdown().convert(body))
    text = html_lib.unescape(_TAGS.sub("", _BLOCK_TAGS.sub(" ", html)))
    text = _SPACE.sub(" ", text).strip()
    excerpt = text if len(text) <= EXCERPT_LENGTH else text[: EXCERPT_LENGTH - 1].rsplit(" ", 1)[0] + "…"
    return html, excerpt, len(_WORDS.findall(text))


def make_thumbnail(source, size: tuple[int, int]) -> bytes:
    """A JPEG thumbnail of the image in the open binary file `source`, at most `size`."""
    try:
        with Image.open(source) as image:
            image = ImageOps.exif_transpose(image)
            # reducing_gap=1.5: shrink by a whole factor first (reduce(), cheap), then resample the
            # last 1.5-3x (Pillow's default is 2.0; >= 3.0 is indistinguishable from fair). The
            # resize then takes ~40% less CPU; thumbnails are most of a burst's CPU.
            image.thumbnail(size, reducing_gap=1.5)
            if image.mode not in ("RGB", "L"):
                image = image.convert("RGB")
            out = io.BytesIO()
            image.save(out, format="JPEG", quality=85, optimize=True)
            return out.getvalue()
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        # Pillow reports unreadable or corrupt files as OSError (UnidentifiedImageError) or
        # SyntaxError; none of them improve with a retry.
        raise ContentError(f"image could not be read: {exc}") from exc
