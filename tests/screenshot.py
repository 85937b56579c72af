"""A PNG of an X screen from Xvfb's frame buffer file (`Xvfb -fbdir DIR` keeps the screen as an XWD image in
DIR/Xvfb_screen0), in plain Python: the tests need no image library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path


def xwd_pixels(path: Path) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGB bytes) of a ZPixmap XWD image with 32 bits per pixel (Xvfb's 24-bit
    screens), as X11's XWDFileHeader lays it out: 25 big-endian CARD32 fields, the window name, the
    colour map (12 bytes per entry), then the pixels."""
    data = path.read_bytes()
    fields = struct.unpack(">25I", data[:100])
    header_size, width, height, byte_order = fields[0], fields[4], fields[5], fields[7]
    bits_per_pixel, bytes_per_line, ncolors = fields[11], fields[12], fields[19]
    assert bits_per_pixel == 32, bits_per_pixel
    start = header_size + 12 * ncolors
    rows = []
    for y in range(height):
        line = data[start + y * bytes_per_line : start + y * bytes_per_line + 4 * width]
        if byte_order == 0:  # LSBFirst: B, G, R, X
            rgb = bytes(b for i in range(0, len(line), 4) for b in (line[i + 2], line[i + 1], line[i]))
        else:  # MSBFirst: X, R, G, B
            rgb = bytes(b for i in range(0, len(line), 4) for b in line[i + 1 : i + 4])
        rows.append(rgb)
    return width, height, rows


def write_png(path: Path, width: int, height: int, rows: list[bytes]) -> Path:
    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body))
            + kind
            + body
            + struct.pack(">I", zlib.crc32(kind + body) & 0xFFFFFFFF)
        )

    raw = b"".join(b"\x00" + row for row in rows)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
    path.write_bytes(png + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))
    return path
