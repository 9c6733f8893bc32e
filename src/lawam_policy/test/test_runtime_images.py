"""Image decoding from the raw fields of sensor_msgs/Image and CompressedImage."""
import io
import pathlib
import sys

import numpy as np
import pytest

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # before the package is installed

from lawam_policy.runtime.images import (BadImage, UnsupportedEncoding, decode_compressed,  # noqa: E402
                                         decode_raw)

H, W = 4, 5
RGB = np.arange(H * W * 3, dtype=np.uint8).reshape(H, W, 3)


def raw(encoding):
    if encoding == "rgb8":
        return RGB
    if encoding == "bgr8":
        return RGB[..., ::-1]
    if encoding == "rgba8":
        return np.concatenate([RGB, np.full((H, W, 1), 7, np.uint8)], axis=2)
    if encoding == "bgra8":
        return np.concatenate([RGB[..., ::-1], np.full((H, W, 1), 7, np.uint8)], axis=2)
    raise AssertionError(encoding)


@pytest.mark.parametrize("encoding", ["rgb8", "bgr8", "rgba8", "bgra8"])
@pytest.mark.parametrize("padding", [0, 3])
def test_colour_encodings_decode_to_rgb(encoding, padding):
    pixels = raw(encoding)
    ch = pixels.shape[2]
    rows = np.concatenate([pixels.reshape(H, W * ch), np.zeros((H, padding), np.uint8)], axis=1)
    out = decode_raw(encoding, H, W, W * ch + padding, rows.tobytes())
    assert out.shape == (H, W, 3) and out.dtype == np.uint8
    assert np.array_equal(out, RGB)


def test_mono8_is_replicated_to_three_channels():
    mono = np.arange(H * W, dtype=np.uint8).reshape(H, W)
    import array
    out = decode_raw("mono8", H, W, W, array.array("B", mono.tobytes()))  # rclpy hands over array('B')
    assert out.shape == (H, W, 3)
    assert all(np.array_equal(out[..., c], mono) for c in range(3))


def test_unsupported_encoding_is_a_clear_error():
    with pytest.raises(UnsupportedEncoding, match="16UC1.*supported: rgb8, bgr8, rgba8, bgra8, mono8"):
        decode_raw("16UC1", H, W, W * 2, bytes(H * W * 2))


def test_truncated_data_is_refused():
    with pytest.raises(BadImage):
        decode_raw("rgb8", H, W, W * 3, bytes(10))


@pytest.mark.parametrize("fmt", ["png", "jpeg"])
def test_compressed_formats(fmt):
    from PIL import Image
    img = np.zeros((16, 16, 3), np.uint8)
    img[:8] = (200, 30, 10)
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format=fmt.upper())
    out = decode_compressed(f"rgb8; {fmt} compressed bgr8" if fmt == "jpeg" else fmt, buf.getvalue())
    assert out.shape == (16, 16, 3)
    if fmt == "png":
        assert np.array_equal(out, img)
    else:  # lossy, but the colours are where they were
        assert abs(int(out[2, 2, 0]) - 200) < 20 and out[12, 12].max() < 20


def test_compressed_unsupported_format_and_garbage():
    with pytest.raises(UnsupportedEncoding):
        decode_compressed("tiff", b"II*\x00")
    with pytest.raises(BadImage):
        decode_compressed("png", b"not a png")


def test_subgoal_heatmap_similarity_and_colours():
    from lawam_policy.runtime.heatmap import colorize, similarity_map
    rng = np.random.default_rng(0)
    cur = rng.normal(size=(196, 8))
    sub = rng.normal(size=(196, 8))
    sub[37] = 3 * cur[100]  # the subgoal patch most like current patch 100
    sim = similarity_map(cur, sub, 100)
    assert sim.shape == (14, 14) and np.unravel_index(np.argmax(sim), sim.shape) == (2, 9)
    assert sim.max() == pytest.approx(1.0)
    img = colorize(sim)
    assert img.shape == (224, 224, 3) and img.dtype == np.uint8
    hot = img[2 * 16 + 8, 9 * 16 + 8]
    assert hot[0] == 255 and hot[2] == 0  # the most similar patch is red
    with pytest.raises(ValueError):
        similarity_map(cur, sub, 196)


# ---- issue 13: one decoder, cv_bridge's semantics -------------------------------------------------
def msg(encoding, pixels):
    """A sensor_msgs/Image stand-in (the decoder reads fields only) of (H, W, C) bytes."""
    from types import SimpleNamespace
    h, w = pixels.shape[:2]
    return SimpleNamespace(encoding=encoding, height=h, width=w, step=pixels[0].size, data=pixels.tobytes())


RED_AS_BGR = np.tile(np.array([0, 0, 255], np.uint8), (2, 2, 1))  # issue 13's input: a BGR driver's red


@pytest.mark.parametrize("encoding,advice", [("8UC3", "'bgr8' or 'rgb8'"), ("8UC4", "'bgra8' or 'rgba8'")])
def test_generic_colour_encodings_are_refused_naming_what_to_set(encoding, advice):
    from lawam_policy.runtime.images import check_image, decode_image
    pixels = RED_AS_BGR if encoding == "8UC3" else np.concatenate([RED_AS_BGR, RED_AS_BGR[..., :1]], axis=2)
    for call in (decode_image, check_image):
        with pytest.raises(UnsupportedEncoding) as err:
            call(msg(encoding, pixels))
        assert f"{encoding!r} is generic" in str(err.value) and advice in str(err.value)
    # declared as what it is, the same bytes are red
    assert decode_image(msg("bgr8", RED_AS_BGR))[0, 0].tolist() == [255, 0, 0]


def test_8UC1_is_grey_like_mono8():
    from lawam_policy.runtime.images import decode_image
    grey = np.arange(6, dtype=np.uint8).reshape(2, 3, 1)
    out = decode_image(msg("8UC1", grey))
    assert out.shape == (2, 3, 3) and np.array_equal(out, np.repeat(grey, 3, axis=2))
    assert np.array_equal(out, decode_image(msg("mono8", grey)))


@pytest.mark.parametrize("encoding", ["16UC1", "mono16", "32FC1", "bayer_rggb8", "yuv422", "8UC2", "rgb16", ""])
def test_every_other_raw_encoding_is_refused_with_the_supported_list(encoding):
    from lawam_policy.runtime.images import decode_image
    with pytest.raises(UnsupportedEncoding, match="supported: rgb8, bgr8, rgba8, bgra8, mono8, 8UC1"):
        decode_image(msg(encoding, np.zeros((2, 2, 2), np.uint8)))


def png(array, mode=None):
    from PIL import Image
    buf = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


@pytest.mark.parametrize("fmt,data,why", [
    ("png", "grey16", "16-bit PNG"),                             # deep data behind an innocent format string
    ("16UC1; png compressed ", "grey16", "'16UC1'"),
    ("16UC1; compressedDepth png", "grey16", "depth image"),
    ("8UC3; jpeg compressed bgr8", "jpeg", "'8UC3' is generic"),  # image_transport passes 8UC3 bytes as is
    ("bgr16; png compressed bgr16", "grey16", "'bgr16'"),
    ("h264", "jpeg", "unsupported compressed image format 'h264'"),
])
def test_compressed_images_that_are_not_8_bit_colour_or_grey_are_refused(fmt, data, why):
    from lawam_policy.runtime.images import check_image, decode_image
    from types import SimpleNamespace
    if data == "grey16":
        payload = png(np.full((4, 4), 40000, np.uint16))
    else:
        from PIL import Image
        buf = io.BytesIO()
        Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(buf, format="JPEG")
        payload = buf.getvalue()
    with pytest.raises(UnsupportedEncoding, match=why.replace("(", "\\(")):
        decode_image(SimpleNamespace(format=fmt, data=payload))
    if data != "grey16" or fmt != "png":  # the format string alone says so: refused before decoding too
        with pytest.raises(UnsupportedEncoding):
            check_image(SimpleNamespace(format=fmt, data=payload))


@pytest.mark.parametrize("fmt", ["png", "bgr8; png compressed bgr8", "mono8; png compressed ", "8UC1; png"])
def test_8_bit_compressed_colour_and_grey_decode(fmt):
    from lawam_policy.runtime.images import decode_image
    from types import SimpleNamespace
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[..., 0] = 250
    grey = np.full((4, 4), 77, np.uint8)
    data = png(grey) if "mono8" in fmt or "8UC1" in fmt else png(rgb)
    out = decode_image(SimpleNamespace(format=fmt, data=data))
    assert out.shape == (4, 4, 3)
    assert out[0, 0].tolist() == ([77] * 3 if data == png(grey) else [250, 0, 0])
