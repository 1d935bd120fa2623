"""Attached images: decoded once to prove they are images, within the size limit, ready to send."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image as Pillow

from llmstream.errors import BadInput
from llmstream.images import read_image

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
    assert image.mime == "image/png"
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
    assert words in info.value.sentence() and "PNG, JPEG" in info.value.sentence()


def test_an_image_over_the_limit_is_refused_before_it_is_read(tmp_path):
    path = noise(tmp_path / "big.png", 400)  # about 160 KB
    with pytest.raises(BadInput) as info:
        read_image(path, 100 * 1024)
    assert (
        f"The image big.png is {round(path.stat().st_size / 1024)} KB; the limit is 100 KB per image."
        in info.value.sentence()
    )
    assert "MAX_IMAGE_MB" in info.value.hint


def test_a_decompression_bomb_is_refused(tmp_path, monkeypatch):
    path = picture(tmp_path / "bomb.png", size=(300, 300))
    monkeypatch.setattr(Pillow, "MAX_IMAGE_PIXELS", 10_000)  # 90,000 pixels is then a bomb
    with pytest.raises(BadInput) as info:
        read_image(path, MB)
    assert "too many pixels" in info.value.sentence()


def test_a_missing_file_gets_a_sentence(tmp_path):
    with pytest.raises(BadInput) as info:
        read_image(tmp_path / "gone.png", MB)
    assert "could not be read" in info.value.sentence()
