#!/usr/bin/env python3
"""Make a large camera JPEG small while keeping its metadata byte for byte.

Usage: python3 scripts/golden/shrink.py IN.jpg OUT.jpg [--scale 8]   (needs Pillow: pip install Pillow)

Every APPn (EXIF with its thumbnail, XMP, MPF, ICC, maker segments) and COM segment before the image data is
copied unchanged; the image itself (quantisation and Huffman tables, frame header, scan) is replaced by a
downscaled re-encoding, and anything after the end-of-image marker (secondary images some phones append) is
dropped. The readers under test (mtp, mapillary_tools) read only those metadata segments, so a reading of the
small file equals the reading of the original; tests/data/real/SOURCES.md says which files were shrunk.
"""

import argparse
import io
import struct
import sys

from PIL import Image

SOI, EOI, SOS = 0xD8, 0xD9, 0xDA


def segments(data: bytes):
    """(marker, whole segment bytes) up to and including SOS; then ("scan", rest)."""
    if data[:2] != b"\xff\xd8":
        raise ValueError("not a JPEG")
    i = 2
    while i < len(data):
        if data[i] != 0xFF:
            raise ValueError(f"no marker at {i}")
        marker = data[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        length = struct.unpack(">H", data[i + 2:i + 4])[0]
        yield marker, data[i:i + 2 + length]
        i += 2 + length
        if marker == SOS:
            yield "scan", data[i:]
            return


def is_metadata(marker) -> bool:
    return marker != "scan" and (0xE0 <= marker <= 0xEF or marker == 0xFE)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("src")
    ap.add_argument("dst")
    ap.add_argument("--scale", type=int, default=8)
    a = ap.parse_args()
    original = open(a.src, "rb").read()
    img = Image.open(io.BytesIO(original))
    size = (max(1, img.width // a.scale), max(1, img.height // a.scale))
    img.draft("RGB", size)  # decode at reduced size (DCT scaling) before the exact resize
    small = img.convert("RGB").resize(size)
    buf = io.BytesIO()
    small.save(buf, "JPEG", quality=80)
    encoded = buf.getvalue()
    out = bytearray(b"\xff\xd8")
    for marker, seg in segments(original):
        if is_metadata(marker):
            out += seg
    for marker, seg in segments(encoded):
        if marker == "scan":
            end = seg.rfind(b"\xff\xd9")
            out += seg[:end + 2]
        elif not is_metadata(marker):
            out += seg
    open(a.dst, "wb").write(bytes(out))
    print(f"{a.src}: {len(original)} -> {len(out)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
