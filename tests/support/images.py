"""Images for the tests, built without decoding them."""

import struct
import zlib


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def huge_png(width: int = 12_000, height: int = 12_000) -> bytes:
    """A black grayscale PNG of width x height pixels (144 megapixels by default), written row by
    row through zlib so that building it never holds the decoded image: a few hundred KB on disk,
    width x height bytes once Pillow decodes it — the decompression bomb an upload may carry."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)  # filter byte 0, then one byte per pixel
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", header) + _chunk(b"IDAT", b"".join(parts)) + _chunk(b"IEND", b"")


def png(width: int, height: int) -> bytes:
    """A small red RGB PNG, made by Pillow."""
    import io

    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (width, height), (200, 30, 30)).save(out, format="PNG")
    return out.getvalue()


def broken_png() -> bytes:
    """A file that says it is a PNG and is not: what a truncated or corrupted upload leaves."""
    return b"\x89PNG\r\n\x1a\n this is not really a png"
