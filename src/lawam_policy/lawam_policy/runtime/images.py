"""Decoding camera frames from the raw fields of sensor_msgs/Image and CompressedImage into HxWx3 RGB uint8.

Kept free of ROS and cv_bridge (the PyPI cv-bridge is an unmaintained port): the node passes the
message's fields. Anything but the listed encodings raises UnsupportedEncoding with a clear message.
"""
from __future__ import annotations

import io

import numpy as np

RAW_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8")
COMPRESSED_FORMATS = ("jpeg", "png")

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1}


class UnsupportedEncoding(ValueError):
    @classmethod
    def for_encoding(cls, encoding: str) -> "UnsupportedEncoding":
        return cls(f"unsupported image encoding {encoding!r}; supported: {', '.join(RAW_ENCODINGS)} "
                   f"(or a CompressedImage in {'/'.join(COMPRESSED_FORMATS)})")


class BadImage(ValueError):
    pass


def decode_raw(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """sensor_msgs/Image fields -> (height, width, 3) uint8 RGB (a copy, safe to keep)."""
    enc = encoding.lower()
    if enc not in _CHANNELS:
        raise UnsupportedEncoding.for_encoding(encoding)
    ch = _CHANNELS[enc]
    if height <= 0 or width <= 0:
        raise BadImage(f"image has no pixels ({width}x{height})")
    row = width * ch
    if step < row:
        raise BadImage(f"{encoding} image row step {step} is shorter than width*channels = {row}")
    try:
        buf = np.frombuffer(data, dtype=np.uint8)  # bytes, array.array('B') (rclpy), memoryview
    except TypeError:
        buf = np.asarray(data, dtype=np.uint8).reshape(-1)  # a plain list of ints
    if buf.size < step * (height - 1) + row:
        raise BadImage(f"{encoding} image data has {buf.size} bytes, {width}x{height} with step {step} needs "
                       f"{step * (height - 1) + row}")
    if buf.size < step * height:  # last row may be unpadded
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    pixels = buf[: step * height].reshape(height, step)[:, :row].reshape(height, width, ch)
    if enc == "rgb8":
        return pixels.copy()
    if enc == "bgr8":
        return pixels[..., ::-1].copy()
    if enc == "rgba8":
        return pixels[..., :3].copy()
    if enc == "bgra8":
        return pixels[..., 2::-1].copy()
    return np.repeat(pixels, 3, axis=2)  # mono8


def decode_compressed(fmt: str, data) -> np.ndarray:
    """sensor_msgs/CompressedImage fields -> (H, W, 3) uint8 RGB. `fmt` like "jpeg", "png", "bgr8; jpeg ..."."""
    from PIL import Image  # lazy: only compressed streams need it

    f = fmt.lower()
    if not any(name in f for name in COMPRESSED_FORMATS + ("jpg",)):
        raise UnsupportedEncoding(f"unsupported compressed image format {fmt!r}; supported: "
                                  f"{', '.join(COMPRESSED_FORMATS)}")
    try:
        with Image.open(io.BytesIO(bytes(data))) as img:
            if img.format not in ("JPEG", "PNG"):
                raise UnsupportedEncoding(f"compressed image is {img.format}, supported: jpeg, png")
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except UnsupportedEncoding:
        raise
    except Exception as err:  # PIL raises several types for corrupt data
        raise BadImage(f"cannot decode {fmt!r} image: {err}") from err
