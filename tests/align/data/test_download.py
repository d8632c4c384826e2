"""`ulmrec data download` against a local HTTP server on 127.0.0.1 serving fixture files in a thread."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from ulmrec_align.data.cli import app
from ulmrec_align.data.download import DATASETS, DownloadError, download_dataset, download_file
from ulmrec_align.data.pipeline import prepare_dataset
from ulmrec_align.data.synthetic import write_synthetic_amazon


class FixtureServer:
    """Serves ``files`` by name; optional Range support and a one-shot connection drop after N bytes."""

    def __init__(self, files: dict[str, bytes], *, ranges: bool = True) -> None:
        self.files = files
        self.ranges = ranges
        self.cut_after: int | None = None
        self.requests: list[tuple[str, str | None]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                name = self.path.rsplit("/", 1)[-1]
                header = self.headers.get("Range")
                server.requests.append((name, header))
                if name not in server.files:
                    self.send_error(404, "Not Found")
                    return
                body = server.files[name]
                start = 0
                if header and server.ranges:
                    start = int(header.removeprefix("bytes=").split("-")[0])
                    if start >= len(body):
                        self.send_error(416, "Range Not Satisfiable")
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.end_headers()
                payload = body[start:]
                if server.cut_after is not None:
                    payload, server.cut_after = payload[: server.cut_after], None
                    self.wfile.write(payload)
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(payload)

            def log_message(self, *args: object) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/amazon/categoryFiles/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> FixtureServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(timeout=5)


@pytest.fixture(scope="module")
def beauty_files(tmp_path_factory) -> dict[str, bytes]:
    """Real gzipped files in the 2014 format, named like the public Beauty files."""
    folder = write_synthetic_amazon(tmp_path_factory.mktemp("src"), n_users=40, n_items=30, category="Beauty")
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_downloads_verifies_and_prepares(tmp_path, beauty_files):
    with FixtureServer(beauty_files) as server:
        results = download_dataset(
            "amazon-beauty",
            tmp_path,
            base_url=server.url,
            progress=False,
            checksums={"meta_Beauty.json.gz": sha(beauty_files["meta_Beauty.json.gz"])},
        )
        assert [r.status for r in results] == ["downloaded", "downloaded"]
        assert [r.verified for r in results] == [False, True]
        for name in DATASETS["amazon-beauty"]:
            assert (tmp_path / name).read_bytes() == beauty_files[name]
        sums = (tmp_path / "SHA256SUMS").read_text().splitlines()
        assert sorted(sums) == sorted(f"{sha(beauty_files[n])}  {n}" for n in DATASETS["amazon-beauty"])
        assert not list(tmp_path.glob("*.part"))

        again = download_dataset("amazon-beauty", tmp_path, base_url=server.url, progress=False)
        assert [r.status for r in again] == ["present", "present"]
        assert [r.verified for r in again] == [True, True]  # against the SHA256SUMS recorded the first time
        assert len(server.requests) == 2  # nothing fetched again
    assert prepare_dataset(source="amazon", path=tmp_path).n_users == 40


def test_corrupted_file_is_fetched_again(tmp_path, beauty_files):
    with FixtureServer(beauty_files) as server:
        download_dataset("amazon-beauty", tmp_path, base_url=server.url, progress=False)
        (tmp_path / "meta_Beauty.json.gz").write_bytes(b"bit rot")
        results = download_dataset("amazon-beauty", tmp_path, base_url=server.url, progress=False)
    assert [r.status for r in results] == ["present", "downloaded"]
    assert (tmp_path / "meta_Beauty.json.gz").read_bytes() == beauty_files["meta_Beauty.json.gz"]


def test_interrupted_download_resumes_with_range(tmp_path, beauty_files):
    name = "reviews_Beauty_5.json.gz"
    body = beauty_files[name]
    with FixtureServer(beauty_files) as server:
        server.cut_after = 1000
        with pytest.raises(DownloadError, match="run the command again to resume"):
            download_file(server.url + name, tmp_path / name, progress=False)
        assert (tmp_path / f"{name}.part").stat().st_size == 1000
        assert not (tmp_path / name).exists()
        result = download_file(server.url + name, tmp_path / name, sha256=sha(body), progress=False)
    assert result.status == "resumed"
    assert result.verified
    assert server.requests[-1] == (name, "bytes=1000-")
    assert (tmp_path / name).read_bytes() == body
    assert not (tmp_path / f"{name}.part").exists()


def test_server_without_range_support_restarts(tmp_path, beauty_files):
    name = "meta_Beauty.json.gz"
    (tmp_path / f"{name}.part").write_bytes(b"garbage that is not a prefix")
    with FixtureServer(beauty_files, ranges=False) as server:
        result = download_file(server.url + name, tmp_path / name, progress=False)
    assert result.status == "downloaded"
    assert (tmp_path / name).read_bytes() == beauty_files[name]


def test_checksum_mismatch_keeps_nothing(tmp_path, beauty_files):
    name = "meta_Beauty.json.gz"
    with FixtureServer(beauty_files) as server, pytest.raises(DownloadError, match="sha256 mismatch"):
        download_file(server.url + name, tmp_path / name, sha256="0" * 64, progress=False)
    assert list(tmp_path.iterdir()) == []


def test_http_errors_are_clear(tmp_path, beauty_files):
    with FixtureServer(beauty_files) as server:
        with pytest.raises(DownloadError, match="HTTP 404"):
            download_dataset("amazon-games", tmp_path, base_url=server.url, progress=False)
        url = server.url
    with pytest.raises(DownloadError, match="cannot connect"):
        download_file(url + "meta_Beauty.json.gz", tmp_path / "x", progress=False, timeout=5)
    with pytest.raises(DownloadError, match="unknown dataset"):
        download_dataset("amazon-books", tmp_path)


def test_cli_download_with_given_checksums(tmp_path, beauty_files):
    args = ["download", "amazon-beauty", "--out", str(tmp_path), "--quiet"]
    with FixtureServer(beauty_files) as server:
        args += ["--base-url", server.url]
        for name in DATASETS["amazon-beauty"]:
            args += ["--sha256", f"{name}={sha(beauty_files[name])}"]
        result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert result.output.count("verified") == 2
    assert "not verified" not in result.output
    bad = CliRunner().invoke(app, ["download", "amazon-beauty", "--out", str(tmp_path), "--sha256", "oops"])
    assert "FILE=<64 hex digits>" in str(bad.exception)


def test_part_file_longer_than_the_body_restarts(tmp_path, beauty_files):
    name = "meta_Beauty.json.gz"
    (tmp_path / f"{name}.part").write_bytes(b"x" * (len(beauty_files[name]) + 10))
    with FixtureServer(beauty_files) as server:
        result = download_file(server.url + name, tmp_path / name, progress=False)
    assert result.status == "downloaded"
    assert [h for _, h in server.requests] == [
        f"bytes={len(beauty_files[name]) + 10}-",
        None,
    ]  # 416, then full
    assert (tmp_path / name).read_bytes() == beauty_files[name]
