"""A local HTTP server for media, with byte ranges (as web servers and CDNs answer players), that records the
requests it gets: the stand-in for a network stream."""

from __future__ import annotations

import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class RangeHandler(SimpleHTTPRequestHandler):
    """Files from `directory`, honouring `Range: bytes=a-b` with 206 Partial Content (http.server does not)."""

    def __init__(self, *args, seen: list, **kwargs):
        self.seen = seen
        super().__init__(*args, **kwargs)

    def log_message(self, *args):
        pass

    def send_head(self):
        self.seen.append({k.lower(): v for k, v in self.headers.items()} | {"path": self.path})
        match = re.fullmatch(r"bytes=(\d+)-(\d*)", self.headers.get("Range", ""))
        path = Path(self.translate_path(self.path))
        if not match or not path.is_file():
            return super().send_head()
        size = path.stat().st_size
        start = int(match.group(1))
        end = min(int(match.group(2)) if match.group(2) else size - 1, size - 1)
        if start >= size:
            self.send_error(416)
            return None
        f = path.open("rb")
        f.seek(start)
        self.send_response(206)
        self.send_header("Content-Type", self.guess_type(str(path)))
        self.send_header("Accept-Ranges", "bytes")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(end - start + 1))
        self.end_headers()
        self.range_left = end - start + 1
        return f

    def copyfile(self, source, outputfile):
        left = getattr(self, "range_left", None)
        if left is None:
            return super().copyfile(source, outputfile)
        while left > 0:
            data = source.read(min(65536, left))
            if not data:
                break
            outputfile.write(data)
            left -= len(data)


class MediaServer:
    """`with MediaServer(folder) as server:` serves `folder` at `server.url`; `server.seen` lists the requests'
    headers."""

    def __init__(self, folder: Path):
        self.seen: list[dict] = []
        handler = functools.partial(RangeHandler, directory=str(folder), seen=self.seen)
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def __enter__(self):
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
