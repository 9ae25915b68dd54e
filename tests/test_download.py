"""Download: resume, checksum before use; extraction: nothing escapes the target folder."""
from __future__ import annotations

import hashlib
import io
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers.download import ChecksumError, UnsafeArchiveError, download_file, safe_extract


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files from a folder on loopback, honouring ``Range: bytes=N-``."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        data = open(path, "rb").read()
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture()
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield served, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_download_resumes_and_verifies(server, tmp_path):
    served, base = server
    payload = bytes(range(256)) * 4000
    (served / "data.bin").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest()
    dest = tmp_path / "out" / "data.bin"
    dest.parent.mkdir()
    (dest.parent / "data.bin.part").write_bytes(payload[:300_000])   # an interrupted earlier download
    download_file(f"{base}/data.bin", dest, sha256=digest, chunk=65536)
    assert dest.read_bytes() == payload
    assert not (dest.parent / "data.bin.part").exists()
    download_file(f"{base}/data.bin", dest, sha256=digest)  # present and verified: no new download


def test_wrong_checksum_is_refused(server, tmp_path):
    served, base = server
    (served / "a.tar.xz").write_bytes(b"not the real archive" * 100)
    dest = tmp_path / "a.tar.xz"
    with pytest.raises(ChecksumError, match="expected sha256 0000"):
        download_file(f"{base}/a.tar.xz", dest, sha256="0" * 64)
    assert not dest.exists() and not (tmp_path / "a.tar.xz.part").exists()


def _tar_with(tmp_path, name: str, mode: str = "w:gz"):
    path = tmp_path / "evil.tar.gz"
    with tarfile.open(path, mode) as tf:
        for member, data in (("bottle/train/good/000.png", b"fine"), (name, b"escape")):
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return path


def test_tar_with_parent_member_is_refused(tmp_path):
    target = tmp_path / "target"
    with pytest.raises(UnsafeArchiveError, match=r"\.\./outside.txt"):
        safe_extract(_tar_with(tmp_path, "../outside.txt"), target)
    assert not (tmp_path / "outside.txt").exists()
    assert not (target / "bottle").exists()  # checked before anything was written


def test_tar_with_absolute_member_and_link_are_refused(tmp_path):
    with pytest.raises(UnsafeArchiveError):
        safe_extract(_tar_with(tmp_path, "/tmp/abs.txt"), tmp_path / "t1")
    path = tmp_path / "link.tar"
    with tarfile.open(path, "w") as tf:
        info = tarfile.TarInfo("bottle/link")
        info.type = tarfile.SYMTYPE
        info.linkname = "../../../etc/passwd"
        tf.addfile(info)
    with pytest.raises(UnsafeArchiveError):
        safe_extract(path, tmp_path / "t2")


def test_safe_archives_extract(tmp_path):
    tar = tmp_path / "ok.tar.xz"
    with tarfile.open(tar, "w:xz") as tf:
        info = tarfile.TarInfo("bottle/train/good/000.png")
        info.size = 3
        tf.addfile(info, io.BytesIO(b"abc"))
    safe_extract(tar, tmp_path / "x")
    assert (tmp_path / "x/bottle/train/good/000.png").read_bytes() == b"abc"
    zpath = tmp_path / "ok.zip"
    with zipfile.ZipFile(zpath, "w") as zf:
        zf.writestr("wood/test/good/000.png", b"xyz")
    safe_extract(zpath, tmp_path / "z")
    assert (tmp_path / "z/wood/test/good/000.png").read_bytes() == b"xyz"
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../evil.txt", b"!")
    with pytest.raises(UnsafeArchiveError):
        safe_extract(evil, tmp_path / "z2")
