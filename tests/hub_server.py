"""A local stand-in for the Hugging Face Hub: serves checkpoint folders over the endpoints huggingface_hub uses
(model info by revision, then resolve/<commit>/<file> with HEAD and GET), so `models pull` runs offline."""

from __future__ import annotations

import hashlib
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

COMMIT = "0123456789abcdef0123456789abcdef01234567"


class HubServer:
    def __init__(self, repos: dict[str, Path]):
        self.repos = repos
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _file(self):
                path = unquote(self.path.split("?")[0])
                for repo, folder in server.repos.items():
                    prefix = f"/{repo}/resolve/"
                    if path.startswith(prefix):
                        name = path[len(prefix) :].split("/", 1)[1]
                        return folder / name
                return None

            def _info(self):
                path = unquote(self.path.split("?")[0])
                for repo, folder in server.repos.items():
                    if path.startswith(f"/api/models/{repo}/tree/"):
                        return [
                            {
                                "type": "file",
                                "path": p.name,
                                "size": p.stat().st_size,
                                "oid": hashlib.sha1(p.read_bytes()).hexdigest(),
                            }
                            for p in sorted(folder.iterdir())
                            if p.is_file()
                        ]
                    if path.startswith(f"/api/models/{repo}"):
                        files = sorted(p.name for p in folder.iterdir() if p.is_file())
                        return {
                            "id": repo,
                            "modelId": repo,
                            "sha": COMMIT,
                            "private": False,
                            "siblings": [{"rfilename": f} for f in files],
                        }
                return None

            def _send_file(self, body: bool):
                server.requests.append(f"{self.command} {self.path}")
                info = self._info()
                if info is not None:
                    data = json.dumps(info).encode()
                    self.send_response(200)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    if body:
                        self.wfile.write(data)
                    return
                file = self._file()
                if file is None or not file.exists():
                    self.send_response(404)
                    self.send_header("X-Error-Code", "EntryNotFound")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                data = file.read_bytes()
                etag = hashlib.sha256(data).hexdigest()
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("ETag", f'"{etag}"')
                self.send_header("X-Repo-Commit", COMMIT)
                self.end_headers()
                if body:
                    self.wfile.write(data)

            def do_GET(self):
                self._send_file(True)

            def do_HEAD(self):
                self._send_file(False)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()
