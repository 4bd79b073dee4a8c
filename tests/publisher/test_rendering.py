"""Thumbnails: shrunk with libjpeg's scaled decoding (draft mode), then turned upright by their
EXIF orientation; the result is the one transposing the full image first would give."""

import io

from PIL import Image, ImageOps

from publisher.rendering import make_thumbnail

RED, BLUE = (220, 20, 20), (20, 20, 220)


def _two_halves_jpeg(size: tuple[int, int], orientation: int | None) -> bytes:
    """Left half red, right half blue, stored as a camera stores it: turned, with the EXIF
    Orientation tag saying how to show it."""
    image = Image.new("RGB", size, BLUE)
    image.paste(RED, (0, 0, size[0] // 2, size[1]))
    exif = Image.Exif()
    if orientation is not None:
        exif[0x0112] = orientation
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=95, exif=exif.tobytes())
    return out.getvalue()


def _transposed_first(data: bytes, size: tuple[int, int]) -> Image.Image:
    """The old way: transpose the full image, then shrink it."""
    with Image.open(io.BytesIO(data)) as image:
        upright = ImageOps.exif_transpose(image)
        upright.thumbnail(size, reducing_gap=1.5)
        return upright


def _near(pixel, colour) -> bool:
    return all(abs(a - b) <= 40 for a, b in zip(pixel, colour))


def test_an_exif_rotated_jpeg_comes_out_upright_and_within_the_box_as_before():
    # Orientation 6: shown turned a quarter clockwise, so the stored left half is the top.
    data = _two_halves_jpeg((1600, 800), orientation=6)
    for box in ((400, 400), (300, 200), (200, 300)):
        with Image.open(io.BytesIO(make_thumbnail(io.BytesIO(data), box))) as thumb:
            expected = _transposed_first(data, box)
            assert thumb.size == expected.size
            assert thumb.size[0] <= box[0] and thumb.size[1] <= box[1]
            width, height = thumb.size
            assert _near(thumb.getpixel((width // 2, 2)), RED)
            assert _near(thumb.getpixel((width // 2, height - 3)), BLUE)
    assert Image.open(io.BytesIO(make_thumbnail(io.BytesIO(data), (400, 400)))).size == (200, 400)


def test_a_jpeg_without_orientation_keeps_its_shape_and_halves():
    data = _two_halves_jpeg((1600, 800), orientation=None)
    with Image.open(io.BytesIO(make_thumbnail(io.BytesIO(data), (400, 400)))) as thumb:
        assert thumb.size == (400, 200)
        assert _near(thumb.getpixel((2, 100)), RED) and _near(thumb.getpixel((397, 100)), BLUE)
