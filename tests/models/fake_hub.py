"""A local stand-in for the Hugging Face Hub, for tests and the container test (HF_ENDPOINT points at it).

It answers like huggingface.co does for `/{repo_id}/resolve/{revision}/{filename}`: weight files (LFS) answer
HEAD with a 302 to a CDN on another origin plus X-Linked-Etag, X-Linked-Size and X-Repo-Commit; small files answer
200 with ETag, X-Repo-Commit and Content-Length; errors carry X-Error-Code (RepoNotFound as a 401,
RevisionNotFound and EntryNotFound as 404s). Repos named `slow/...` answer late, `broken/...` with a 500.
`timm_repo` makes the files of a repo in timm's own Hub layout (config.json + model.safetensors).
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote

import torch

COMMIT_MAIN = "a" * 40
COMMIT_OLD = "b" * 40
SLOW_SECONDS = 4.0


@dataclass
class FakeHub:
    """Repos as {repo_id: {revision: {filename: bytes}}} plus a log of (method, path) requests."""

    repos: dict[str, dict[str, dict[str, bytes]]] = field(default_factory=dict)
    commits: dict[str, str] = field(default_factory=lambda: {"main": COMMIT_MAIN})
    requests: list[tuple[str, str]] = field(default_factory=list)
    url: str = ""
    cdn_url: str = ""

    def add(self, repo_id: str, files: dict[str, bytes], revision: str = "main") -> None:
        self.repos.setdefault(repo_id, {})[revision] = files
        if revision not in self.commits:  # a commit hash is its own commit
            self.commits[revision] = revision

    def blob(self, sha: str) -> bytes | None:
        for revisions in self.repos.values():
            for files in revisions.values():
                for data in files.values():
                    if hashlib.sha256(data).hexdigest() == sha:
                        return data
        return None


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest output clean
            pass

        def do_HEAD(self) -> None:
            self._serve(body=False)

        def do_GET(self) -> None:
            self._serve(body=True)

        def _serve(self, body: bool) -> None:
            hub.requests.append((self.command, self.path))
            if self.path.startswith("/cdn/"):
                return self._send(200, {}, hub.blob(self.path[5:]) or b"", body)
            parts = self.path.lstrip("/").split("/", 4)
            if len(parts) < 5 or parts[2] != "resolve":
                return self._send(404, {}, b"", body)
            repo_id, revision, filename = f"{parts[0]}/{parts[1]}", unquote(parts[3]), unquote(parts[4])
            if parts[0] == "slow":
                time.sleep(SLOW_SECONDS)
            if parts[0] == "broken":
                return self._send(500, {}, b"Internal Error", body)
            if repo_id not in hub.repos:
                return self._send(401, {"X-Error-Code": "RepoNotFound"}, b"", body)
            if revision not in hub.repos[repo_id]:
                return self._send(404, {"X-Error-Code": "RevisionNotFound"}, b"", body)
            commit = hub.commits[revision]
            files = hub.repos[repo_id][revision]
            if filename not in files:
                return self._send(404, {"X-Error-Code": "EntryNotFound", "X-Repo-Commit": commit}, b"", body)
            data = files[filename]
            if filename.endswith((".bin", ".safetensors", ".pt", ".pth", ".ckpt")):  # LFS: redirect to the CDN
                sha = hashlib.sha256(data).hexdigest()
                headers = {
                    "Location": f"{hub.cdn_url}/cdn/{sha}",
                    "X-Linked-Etag": f'"{sha}"',
                    "X-Linked-Size": str(len(data)),
                    "X-Repo-Commit": commit,
                    "ETag": '"git-pointer-etag"',
                }
                return self._send(302, headers, b"", body)
            etag = hashlib.sha1(data).hexdigest()  # noqa: S324 - git's blob id, as the Hub uses
            return self._send(200, {"ETag": f'"{etag}"', "X-Repo-Commit": commit}, data, body)

        def _send(self, status: int, headers: dict[str, str], data: bytes, body: bool) -> None:
            try:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if body:
                    self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client gave up (slow-server test)
                pass

    return Handler


def serve_hub(hub: FakeHub, host: str = "127.0.0.1") -> ThreadingHTTPServer:
    """Serve `hub` on a free port of `host` from a daemon thread; shut it down with .shutdown()."""
    server = ThreadingHTTPServer((host, 0), _handler(hub))
    server.daemon_threads = True
    server.block_on_close = False  # do not wait for the slow handler at teardown
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@contextmanager
def reachable_hub(monkeypatch, tmp_path: Path) -> Iterator[FakeHub]:
    """A FakeHub served with its CDN (another origin, as on huggingface.co), named by HF_ENDPOINT, with an empty
    cache, no token and not offline; both servers shut down after."""
    fake = FakeHub()
    main, cdn = serve_hub(fake), serve_hub(fake)
    fake.url, fake.cdn_url = (f"http://127.0.0.1:{s.server_address[1]}" for s in (main, cdn))
    monkeypatch.setenv("HF_ENDPOINT", fake.url)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf-cache"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf-home"))
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    try:
        yield fake
    finally:
        for server in (main, cdn):
            server.shutdown()
            server.server_close()


def timm_repo(folder: Path, classes: int = 10, **pretrained_cfg) -> tuple[torch.nn.Module, dict[str, bytes]]:
    """A small untrained timm ViT (test_vit: 160 px, bicubic, mean and std 0.5) and the files of a Hub repo in timm's
    own layout, written by timm's own Hub writer (save_for_hf) into `folder`; `pretrained_cfg` entries replace the
    written ones."""
    import timm
    from timm.models import save_for_hf

    torch.manual_seed(0)
    model = timm.create_model("test_vit", pretrained=False, num_classes=classes).eval()
    save_for_hf(model, str(folder / "repo"), safe_serialization=True)
    config = json.loads((folder / "repo" / "config.json").read_text())
    config["pretrained_cfg"].update(pretrained_cfg)
    weights = (folder / "repo" / "model.safetensors").read_bytes()
    return model, {"config.json": json.dumps(config).encode(), "model.safetensors": weights}
