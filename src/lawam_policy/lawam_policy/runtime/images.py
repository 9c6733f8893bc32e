"""The one image decoder: sensor_msgs/Image and CompressedImage -> (H, W, 3) uint8 RGB.

Used by the policy node, the recorder and the bag import alike, so a message is either decoded the same way
everywhere or refused with the same message everywhere (never a traceback, never a wrong image).

Rules (cv_bridge's semantics for a conversion to ``rgb8``):
- ``rgb8``, ``bgr8``, ``rgba8``, ``bgra8`` (alpha dropped), ``mono8`` and ``8UC1`` (grey copied into three
  channels) are decoded.
- ``8UC3`` / ``8UC4`` are refused: generic encodings carry no channel order (a BGR camera driver that says
  ``8UC3`` would otherwise be stored with red and blue swapped); the message says to set ``bgr8``/``rgb8``.
- Everything else (16-bit, float, Bayer, YUV, ...) is refused: the policy and the datasets take 8-bit colour.
- CompressedImage: JPEG or PNG holding 8-bit colour or grey, decoded with Pillow. The source encoding in the
  format string (image_transport writes e.g. ``"bgr8; jpeg compressed bgr8"``) follows the rules above, so
  ``"8UC3; jpeg ..."``, ``"16UC1; png ..."`` and ``compressedDepth`` are refused; a 16-bit PNG is refused
  whatever its format string says.

Kept free of ROS and cv_bridge (the PyPI cv-bridge is an unmaintained port): it reads the message's fields,
so rclpy messages and rosbags messages both work. Errors: :class:`UnsupportedEncoding` (the encoding or format
is not decodable to RGB) and :class:`BadImage` (the data do not match the header), both ``ValueError``.
"""
from __future__ import annotations

import io

import numpy as np

RAW_ENCODINGS = ("rgb8", "bgr8", "rgba8", "bgra8", "mono8", "8UC1")
COMPRESSED_FORMATS = ("jpeg", "png")

_CHANNELS = {"rgb8": 3, "bgr8": 3, "rgba8": 4, "bgra8": 4, "mono8": 1, "8uc1": 1}
# generic encodings with several channels: what to set instead
_GENERIC = {"8uc3": "'bgr8' or 'rgb8'", "8uc4": "'bgra8' or 'rgba8'"}
_SUPPORTED = (f"supported: {', '.join(RAW_ENCODINGS)} (sensor_msgs/Image) or 8-bit colour/grey "
              f"{'/'.join(COMPRESSED_FORMATS)} (sensor_msgs/CompressedImage)")


class ImageError(ValueError):
    """An image that cannot be decoded to RGB; the message says why."""


class UnsupportedEncoding(ImageError):
    @classmethod
    def for_encoding(cls, encoding: str) -> "UnsupportedEncoding":
        generic = _GENERIC.get(str(encoding).strip().lower())
        if generic:
            return cls(f"image encoding {encoding!r} is generic and carries no channel order, so it is refused "
                       f"for colour (as cv_bridge does): set the camera driver's encoding to {generic}, "
                       "whichever order its bytes are in")
        return cls(f"unsupported image encoding {encoding!r}; {_SUPPORTED}")


class BadImage(ImageError):
    pass


def check_encoding(encoding: str) -> int:
    """Channels of a decodable sensor_msgs/Image encoding; raises UnsupportedEncoding otherwise."""
    ch = _CHANNELS.get(str(encoding).strip().lower())
    if ch is None:
        raise UnsupportedEncoding.for_encoding(encoding)
    return ch


def check_format(fmt: str) -> None:
    """Refuse a CompressedImage format string that cannot hold 8-bit colour/grey JPEG or PNG (cheap: no
    decoding). Raises UnsupportedEncoding."""
    f = str(fmt).strip().lower()
    if "compresseddepth" in f:
        raise UnsupportedEncoding(f"compressed image format {fmt!r} is a depth image; {_SUPPORTED}")
    source, sep, codec = f.partition(";")
    if sep and source.strip():  # image_transport: "<source encoding>; <codec> compressed <target>"
        try:
            check_encoding(str(fmt).partition(";")[0].strip())
        except UnsupportedEncoding as e:
            raise UnsupportedEncoding(f"compressed image ({fmt!r}): {e}") from None
    elif not sep:
        codec = f
    if not any(name in codec for name in COMPRESSED_FORMATS + ("jpg",)):
        raise UnsupportedEncoding(f"unsupported compressed image format {fmt!r}; {_SUPPORTED}")


def check_image(msg) -> None:
    """Cheap check of a sensor_msgs/Image (``encoding``) or CompressedImage (``format``) before queuing it."""
    if hasattr(msg, "encoding"):
        check_encoding(msg.encoding)
    else:
        check_format(msg.format)


def decode_image(msg) -> np.ndarray:
    """sensor_msgs/Image or CompressedImage (any object with their fields) -> (H, W, 3) uint8 RGB copy.

    Raises UnsupportedEncoding or BadImage (see the module docstring)."""
    if hasattr(msg, "encoding"):
        return decode_raw(msg.encoding, msg.height, msg.width, msg.step, msg.data)
    return decode_compressed(msg.format, msg.data)


def _as_bytes(data) -> np.ndarray:
    try:
        return np.frombuffer(data, dtype=np.uint8)  # bytes, array.array('B') (rclpy), memoryview, uint8 arrays
    except (TypeError, ValueError):
        return np.asarray(data, dtype=np.uint8).reshape(-1)  # a plain list of ints


def decode_raw(encoding: str, height: int, width: int, step: int, data) -> np.ndarray:
    """sensor_msgs/Image fields -> (height, width, 3) uint8 RGB (a copy, safe to keep)."""
    ch = check_encoding(encoding)
    height, width, step = int(height), int(width), int(step)
    if height <= 0 or width <= 0:
        raise BadImage(f"image has no pixels ({width}x{height})")
    row = width * ch
    if step < row:
        raise BadImage(f"{encoding} image row step {step} is shorter than width*channels = {row}")
    buf = _as_bytes(data)
    if buf.size < step * (height - 1) + row:
        raise BadImage(f"{encoding} image data has {buf.size} bytes, {width}x{height} with step {step} needs "
                       f"{step * (height - 1) + row}")
    if buf.size < step * height:  # last row may be unpadded
        buf = np.concatenate([buf, np.zeros(step * height - buf.size, np.uint8)])
    pixels = buf[: step * height].reshape(height, step)[:, :row].reshape(height, width, ch)
    enc = encoding.strip().lower()
    if enc == "rgb8":
        return pixels.copy()
    if enc == "bgr8":
        return pixels[..., ::-1].copy()
    if enc == "rgba8":
        return pixels[..., :3].copy()
    if enc == "bgra8":
        return pixels[..., 2::-1].copy()
    return np.repeat(pixels, 3, axis=2)  # mono8, 8UC1


_PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def decode_compressed(fmt: str, data) -> np.ndarray:
    """sensor_msgs/CompressedImage fields -> (H, W, 3) uint8 RGB. `fmt` like "jpeg", "png",
    "bgr8; jpeg compressed bgr8"."""
    from PIL import Image  # lazy: only compressed streams need it

    check_format(fmt)
    raw = bytes(_as_bytes(data))
    # PNG header: bit depth is byte 24 (IHDR). Pillow would silently cut 16-bit colour to 8 bits and clip
    # 16-bit grey to white, so anything deeper than 8 bits is refused here, whatever the format string says.
    if raw[:8] == _PNG_MAGIC and len(raw) > 24 and raw[24] > 8:
        raise UnsupportedEncoding(f"compressed image ({fmt!r}) is a {raw[24]}-bit PNG; only 8-bit colour or "
                                  "grey images are decoded")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            if img.format not in ("JPEG", "PNG"):
                raise UnsupportedEncoding(f"compressed image ({fmt!r}) is {img.format}; {_SUPPORTED}")
            if img.mode not in ("1", "L", "LA", "P", "PA", "RGB", "RGBA", "CMYK", "YCbCr"):
                raise UnsupportedEncoding(f"compressed image ({fmt!r}) has pixel mode {img.mode} (not 8-bit "
                                          "colour or grey)")
            return np.asarray(img.convert("RGB"), dtype=np.uint8).copy()
    except ImageError:
        raise
    except Exception as err:  # noqa: BLE001 - Pillow raises several types for corrupt data
        raise BadImage(f"cannot decode {fmt!r} image: {err}") from err
