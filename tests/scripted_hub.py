"""A stand-in for the Hugging Face Hub on 127.0.0.1, for the app's fetch of `hf.co/...` models.

The real Hub can't be reached from the test machines, and nothing may be downloaded in
tests, so this serves the few routes huggingface_hub uses to fetch one file (the tree
listing, then HEAD and GET on `resolve`), with the bundled GGUF as the repository's file,
paced so a fetch takes a few seconds and its progress can be watched. It records the
`Authorization` headers it receives. Point the app at it with `HF_ENDPOINT`.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

COMMIT = "1234567890abcdef1234567890abcdef12345678"


class ScriptedHub:
    def __init__(
        self, repos: dict[str, dict[str, Path]], *, seconds: float = 3.0, private: tuple[str, ...] = ()
    ) -> None:
        self.repos = repos
        self.private = private  # repositories that answer only with a token
        self.seconds = seconds  # how long one file takes to send
        self.authorizations: list[str] = []
        self.downloads = 0
        hub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_HEAD(self) -> None:
                hub.serve(self, body=False)

            def do_GET(self) -> None:
                hub.serve(self, body=True)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> ScriptedHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()

    def _repo(self, handler: BaseHTTPRequestHandler, repo: str) -> dict[str, Path] | None:
        files = self.repos.get(repo)
        if files is None or (repo in self.private and not handler.headers.get("Authorization")):
            self._answer(
                handler,
                401 if repo in self.private else 404,
                b'{"error": "Repository not found"}',
                {"X-Error-Code": "RepoNotFound"},
            )
            return None
        return files

    def serve(self, handler: BaseHTTPRequestHandler, body: bool) -> None:
        self.authorizations.append(handler.headers.get("Authorization", ""))
        path = handler.path.split("?", 1)[0]
        if path.startswith("/api/models/") and "/tree/" in path:
            repo = path.removeprefix("/api/models/").split("/tree/", 1)[0]
            files = self._repo(handler, repo)
            if files is not None:
                listing = [
                    {"type": "file", "path": name, "size": p.stat().st_size, "oid": _oid(name)}
                    for name, p in files.items()
                ]
                self._answer(handler, 200, json.dumps(listing).encode(), {"Content-Type": "application/json"}, body)
            return
        if "/resolve/" in path:
            repo, rest = path.lstrip("/").split("/resolve/", 1)
            name = rest.split("/", 1)[1]
            files = self._repo(handler, repo)
            if files is None:
                return
            if name not in files:
                self._answer(handler, 404, b"{}", {"X-Error-Code": "EntryNotFound"})
                return
            self._file(handler, files[name], _oid(name), body)
            return
        self._answer(handler, 404, b"{}", {}, body)

    def _file(self, handler: BaseHTTPRequestHandler, source: Path, etag: str, body: bool) -> None:
        size = source.stat().st_size
        handler.send_response(200)
        for key, value in {
            "Content-Length": str(size),
            "ETag": f'"{etag}"',
            "X-Repo-Commit": COMMIT,
            "Accept-Ranges": "bytes",
        }.items():
            handler.send_header(key, value)
        handler.end_headers()
        if not body:
            return
        self.downloads += 1
        chunk = 1 << 20
        pause = self.seconds / max(1, size // chunk)
        with source.open("rb") as f:
            while data := f.read(chunk):
                handler.wfile.write(data)
                time.sleep(pause)

    @staticmethod
    def _answer(
        handler: BaseHTTPRequestHandler, status: int, data: bytes, headers: dict[str, str], body: bool = True
    ) -> None:
        handler.send_response(status)
        handler.send_header("Content-Length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        if body:
            handler.wfile.write(data)


def _oid(name: str) -> str:
    return hashlib.sha256(name.encode()).hexdigest()


def hub_cache(root: Path, repo: str, files: dict[str, Path]) -> Path:
    """A Hub cache laid out as huggingface_hub lays it out, holding `files` (blobs link to the sources)."""
    folder = root / ("models--" + repo.replace("/", "--"))
    snapshot = folder / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (folder / "blobs").mkdir()
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(COMMIT)
    for name, source in files.items():
        blob = folder / "blobs" / _oid(name)
        blob.symlink_to(source)
        (snapshot / name).symlink_to(Path("../../blobs") / blob.name)
    return root
