"""Download: resume, checksum before use; extraction: nothing escapes the target folder."""
from __future__ import annotations

import hashlib
import io
import os
import tarfile
import threading
import zipfile
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest

from helpers import errors
from helpers.data import download
from helpers.data.download import download_file, safe_extract
from helpers.data.scan import looks_like_mvtec_root
from helpers.errors import ChecksumError, UnsafeArchiveError


class RangeHandler(SimpleHTTPRequestHandler):
    """Serves files from a folder on loopback, honouring ``Range: bytes=N-``."""

    def log_message(self, *args):  # keep test output clean
        pass

    def do_GET(self):
        path = self.translate_path(self.path)
        if not os.path.isfile(path):
            self.send_error(404, "Not Found")       # as a dead address answers
            return
        data = open(path, "rb").read()
        rng = self.headers.get("Range")
        start = int(rng.split("=")[1].split("-")[0]) if rng else 0
        self.server.ranges.append(start)
        if start >= len(data) and rng:
            self.send_error(416, "Range Not Satisfiable")
            return
        self.send_response(206 if rng else 200)
        self.send_header("Content-Length", str(len(data) - start))
        if rng:
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        self.end_headers()
        if self.server.drop_after is not None:     # the connection drops midway, as on a flaky network
            self.wfile.write(data[start:start + self.server.drop_after])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(data[start:])


class _Served(tuple):
    """(served folder, base URL), with the server itself as ``.httpd`` (tests set ``drop_after``, read ``ranges``)."""

    def __new__(cls, folder, base, httpd):
        obj = super().__new__(cls, (folder, base))
        obj.httpd = httpd
        return obj


@pytest.fixture()
def server(tmp_path):
    served = tmp_path / "served"
    served.mkdir()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), partial(RangeHandler, directory=str(served)))
    httpd.ranges, httpd.drop_after = [], None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield _Served(served, f"http://127.0.0.1:{httpd.server_address[1]}", httpd)
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


@pytest.mark.parametrize("sha", [True, False], ids=["with-checksum", "without-checksum"])
def test_dropped_connection_keeps_the_part_and_resumes(server, tmp_path, sha):
    """A short answer is never taken for the file, with or without a checksum; the next call resumes it."""
    served, base = server
    payload = bytes(range(256)) * 4000
    (served / "data.bin").write_bytes(payload)
    digest = hashlib.sha256(payload).hexdigest() if sha else None
    dest = tmp_path / "data.bin"
    server.httpd.drop_after = 400_000
    with pytest.raises(errors.IncompleteDownloadError, match=r"400,000 of 1,024,000 bytes.*run again to resume"):
        download_file(f"{base}/data.bin", dest, sha256=digest, chunk=65536)
    part = tmp_path / "data.bin.part"
    assert not dest.exists() and part.stat().st_size == 400_000
    server.httpd.drop_after = None
    download_file(f"{base}/data.bin", dest, sha256=digest, chunk=65536)
    assert dest.read_bytes() == payload and not part.exists()
    assert server.httpd.ranges == [0, 400_000]          # the second request asked for the rest only


def test_complete_part_is_checked_not_downloaded_again(server, tmp_path):
    served, base = server
    payload = b"x" * 5000
    (served / "data.bin").write_bytes(payload)
    (tmp_path / "data.bin.part").write_bytes(payload)      # whole, but not yet moved into place
    download_file(f"{base}/data.bin", tmp_path / "data.bin", sha256=hashlib.sha256(payload).hexdigest())
    assert (tmp_path / "data.bin").read_bytes() == payload


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


@pytest.fixture()
def served_archive(server, synthetic_root):
    """The generated MVTec-layout tree as ``mvtec_anomaly_detection.tar.xz`` on the loopback server."""
    served, base = server
    archive = served / download.ARCHIVE_NAME
    with tarfile.open(archive, "w:xz") as tf:
        for category in sorted(p for p in synthetic_root.iterdir() if p.is_dir()):
            tf.add(category, arcname=category.name)
    return f"{base}/{download.ARCHIVE_NAME}", hashlib.sha256(archive.read_bytes()).hexdigest(), base


def test_dead_address_falls_through_to_the_next(served_archive, tmp_path, monkeypatch):
    url, digest, base = served_archive
    monkeypatch.setattr(download, "MVTEC_URLS", (f"{base}/moved/{download.ARCHIVE_NAME}", url))
    monkeypatch.delenv("MVTEC_URL", raising=False)
    root = download.download_mvtec(tmp_path / "mvtec", sha256=digest, min_free=0)
    assert looks_like_mvtec_root(root) and not (tmp_path / download.ARCHIVE_NAME).exists()


def test_every_address_failing_says_what_to_do(served_archive, tmp_path, monkeypatch):
    url, _, base = served_archive
    monkeypatch.setattr(download, "MVTEC_URLS", (f"{base}/moved/{download.ARCHIVE_NAME}", url))
    with pytest.raises(errors.DownloadError) as err:
        download.download_mvtec(tmp_path / "mvtec", sha256="0" * 64, min_free=0)   # the right file, wrong sum
    message = str(err.value)
    assert f"{base}/moved/" in message and "HTTP Error 404" in message and "Checksum mismatch" in message
    assert "set MVTEC_URL" in message and str(tmp_path / download.ARCHIVE_NAME) in message
    assert not (tmp_path / "mvtec").exists()


def test_interrupted_extraction_is_never_taken_for_the_dataset(served_archive, tmp_path, monkeypatch):
    url, digest, _ = served_archive
    real_extractall = tarfile.TarFile.extractall

    def killed_midway(self, path, members=None, **kw):
        real_extractall(self, path, members=list(members)[: len(members) // 2], **kw)
        raise KeyboardInterrupt("runtime disconnected")

    monkeypatch.setattr(tarfile.TarFile, "extractall", killed_midway)
    with pytest.raises(KeyboardInterrupt):
        download.download_mvtec(tmp_path / "mvtec", url=url, sha256=digest, min_free=0)
    assert (tmp_path / "mvtec.partial").is_dir() and not looks_like_mvtec_root(tmp_path / "mvtec")
    monkeypatch.setattr(tarfile.TarFile, "extractall", real_extractall)
    root = download.download_mvtec(tmp_path / "mvtec", url=url, sha256=digest, min_free=0)   # the archive is kept
    assert looks_like_mvtec_root(root) and not (tmp_path / "mvtec.partial").exists()
    assert sum(1 for _ in root.rglob("*.png")) == sum(1 for _ in served_archive_tree(url))


def served_archive_tree(url):
    """The PNG members of the served archive (to compare a completed extraction with)."""
    import urllib.request

    with urllib.request.urlopen(url) as r, tarfile.open(fileobj=io.BytesIO(r.read()), mode="r:xz") as tf:
        return [m for m in tf.getmembers() if m.name.endswith(".png")]


def test_too_little_disk_is_said_before_downloading(tmp_path):
    with pytest.raises(OSError, match=r"GiB free, .* GiB needed"):
        download.check_free_space(tmp_path / "not" / "yet", needed=1 << 62)
