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
