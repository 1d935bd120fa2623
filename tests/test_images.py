"""Attached images: decoded once to prove they are images, within the size limit, ready to send."""

from __future__ import annotations

import base64
import io
import struct
import zlib

import pytest
from PIL import Image as Pillow

from llmstream.errors import BadInput
from llmstream.images import read_image, size

MB = 2**20


def picture(path, kind="PNG", size=(16, 12), color="teal"):
    Pillow.new("RGB", size, color).save(path, kind)
    return path


def noise(path, side=64):
    Pillow.effect_noise((side, side), 100).save(path, "PNG")  # noise does not compress
    return path


@pytest.mark.parametrize(
    ("kind", "mime"), [("PNG", "image/png"), ("JPEG", "image/jpeg"), ("WEBP", "image/webp"), ("GIF", "image/gif")]
)
def test_common_formats_go_as_they_are(tmp_path, kind, mime):
    path = picture(tmp_path / f"cat.{kind.lower()}", kind)
    image = read_image(path, MB)
    assert image.mime == mime and image.data == path.read_bytes() and image.name == path.name
    assert image.data_url() == f"data:{mime};base64," + base64.b64encode(path.read_bytes()).decode()
    assert "bytes" in repr(image) and len(repr(image)) < 80


def test_other_formats_are_re_encoded_as_png(tmp_path):
    image = read_image(picture(tmp_path / "scan.bmp", "BMP"), MB)
    assert image.mime == "image/png" and image.name == "scan.bmp"
    with Pillow.open(io.BytesIO(image.data)) as again:
        assert again.format == "PNG" and again.size == (16, 12) and again.getpixel((3, 3)) == (0, 128, 128)


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (
            lambda p: p.write_text("just some notes, not a picture"),
            "The attachment notes.png is not an image that can be read.",
        ),
        (
            lambda p: p.write_bytes(noise(p).read_bytes()[:3000]),
            "The attachment notes.png is not an image that can be read.",
        ),
        (lambda p: p.write_bytes(b""), "not an image that can be read"),
    ],
)
def test_a_file_that_is_not_a_decodable_image_gets_a_sentence(tmp_path, make, words):
    path = tmp_path / "notes.png"
    make(path)
    with pytest.raises(BadInput) as info:
        read_image(path, MB)
    assert words in info.value.sentence() and info.value.hint == "Attach a PNG, JPEG, WebP or GIF picture."


def test_an_image_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = noise(tmp_path / "big.png", 400)  # about 160 KB
    with pytest.raises(BadInput) as info:
        read_image(path, 100 * 1024)
    assert (
        f"The image big.png is {round(path.stat().st_size / 1024)} KB; the limit is 100 KB per image."
        in info.value.sentence()
    )
    assert info.value.hint == "Attach a smaller image, or raise MAX_IMAGE_MB."


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = picture(tmp_path / "bomb.png", size=(300, 300))
    monkeypatch.setattr(Pillow, "MAX_IMAGE_PIXELS", 10_000)  # 90,000 pixels is then a bomb
    with pytest.raises(BadInput) as info:
        read_image(path, MB)
    assert info.value.sentence() == "The image bomb.png has too many pixels to be sent. Attach a smaller image."


def test_a_missing_file_gets_a_sentence(tmp_path):
    with pytest.raises(BadInput) as info:
        read_image(tmp_path / "gone.png", MB)
    assert info.value.sentence() == "The attachment gone.png could not be read. Attach it again."


def test_sizes_read_as_people_say_them():
    assert [size(160_000), size(1023 * 1024), size(MB - 1)] == ["156 KB", "1023 KB", "1024 KB"]
    assert [size(MB), size(10 * MB), size(1.5 * MB)] == ["1 MB", "10 MB", "1.5 MB"]  # no trailing zeros
    assert [size(int(1.26 * MB)), size(int(1.26 * MB), 2)] == ["1.3 MB", "1.26 MB"]  # one decimal unless asked


def sparse(path, length):
    """A file of `length` bytes that takes no disk space: the size check comes before any read."""
    with open(path, "wb") as f:
        f.truncate(length)
    return path


@pytest.mark.parametrize(
    ("length", "limit", "said"),
    [
        (int(12.34 * MB), 10 * MB, "is 12.3 MB; the limit is 10 MB"),  # one decimal tells them apart
        (int(10.046 * MB), 10 * MB, "is 10.05 MB; the limit is 10 MB"),  # the first that does, not more
        (int(10.102 * MB), int(10.06 * MB), "is 10.1 MB; the limit is 10.06 MB"),  # each at the same precision
        (10 * MB + 2000, 10 * MB, "is 10.002 MB; the limit is 10 MB"),
        (10 * MB + 100, 10 * MB, "is 10,485,860 bytes; the limit is 10,485,760 bytes"),  # past 3 decimals: bytes
    ],
)
def test_an_image_over_the_limit_is_told_with_just_enough_decimals_to_differ(tmp_path, length, limit, said):
    with pytest.raises(BadInput) as info:
        read_image(sparse(tmp_path / "huge.png", length), limit)
    assert info.value.message == f"The image huge.png {said} per image."


def test_a_path_with_a_nul_byte_is_an_attachment_that_could_not_be_read(tmp_path):
    with pytest.raises(BadInput) as info:
        read_image(f"{tmp_path}/cat\x00.png", MB)
    assert info.value.message == "The attachment cat\x00.png could not be read."


def test_an_image_of_exactly_the_limit_is_accepted(tmp_path):
    path = picture(tmp_path / "cat.png")
    assert read_image(path, path.stat().st_size).data == path.read_bytes()


def test_an_image_just_over_the_pixel_limit_is_refused_too(tmp_path, monkeypatch):
    """Between the limit and twice it Pillow only warns; that warning refuses the image as well."""
    path = picture(tmp_path / "bomb.png", size=(150, 100))
    monkeypatch.setattr(Pillow, "MAX_IMAGE_PIXELS", 10_000)
    with pytest.raises(BadInput) as info:
        read_image(path, MB)
    assert info.value.sentence() == "The image bomb.png has too many pixels to be sent. Attach a smaller image."


def test_an_image_pillow_only_warns_about_is_accepted(tmp_path):
    """Only the pixel-count warning refuses an image: a PNG with a bad animation chunk is still a PNG."""
    png = picture(tmp_path / "cat.png").read_bytes()
    body = b"acTL" + struct.pack(">II", 0, 0)  # an animation of zero frames: Pillow warns, shows the still
    path = tmp_path / "odd.png"
    path.write_bytes(png[:33] + struct.pack(">I", 8) + body + struct.pack(">I", zlib.crc32(body)) + png[33:])
    with pytest.warns(UserWarning, match="Invalid APNG"):
        image = read_image(path, MB)
    assert image.mime == "image/png" and image.data == path.read_bytes()
