"""Getting MVTec AD: download with resume and checksum, and extraction that cannot escape its folder.

The official archive is about 4.9 GB. Its address has moved several times: the known addresses are tried
in order (``MVTEC_URL`` first when set, and ``MVTEC_SHA256`` overrides the checksum), and a failure says
what to do next. The dataset is
licensed CC BY-NC-SA 4.0 (non-commercial); :func:`download_mvtec` prints the notice.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import shutil
import tarfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path, PurePosixPath

from tqdm.auto import tqdm

from ..errors import ChecksumError, DownloadError, IncompleteDownloadError, UnsafeArchiveError

__all__ = ["MVTEC_URLS", "MVTEC_URL", "MVTEC_PAGE", "ARCHIVE_NAME", "MIN_FREE_BYTES", "MVTEC_SHA256",
           "LICENCE_NOTICE", "ARCHIVE_SUFFIXES",
           "sha256sum",
           "verify_checksum", "download_file", "check_free_space", "fetch_archive", "safe_extract", "download_mvtec",
           "extract_archives"]

#: Known addresses of the official archive, tried in order after ``MVTEC_URL``; the sha256 decides which
#: copy is good. The first was reported working in 2026-03 (open-edge-platform/anomalib#3441); the second
#: is anomalib's older one, reported dead (HTTP 404) there. The address has moved several times.
MVTEC_URLS: tuple[str, ...] = (
    "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f283/download/"
    "420938113-1629960298/mvtec_anomaly_detection.tar.xz",
    "https://www.mydrive.ch/shares/38536/3830184030e49fe74747669442f0f282/download/"
    "420938113-1629952094/mvtec_anomaly_detection.tar.xz",
)
MVTEC_URL = MVTEC_URLS[0]
#: Where MVTec publishes the current address (for the message when every known one fails).
MVTEC_PAGE = "https://www.mvtec.com/company/research/datasets/mvtec-ad/downloads"
ARCHIVE_NAME = "mvtec_anomaly_detection.tar.xz"
#: Free disk needed to download (4.9 GB) and extract (5.3 GB) the full archive, with a margin.
MIN_FREE_BYTES = 11 * 2**30
#: sha256 of ``mvtec_anomaly_detection.tar.xz`` (override with ``MVTEC_SHA256``).
MVTEC_SHA256 = "cf4313b13603bec67abb49ca959488f7eedce2a9f7795ec54446c649ac98cd3d"

LICENCE_NOTICE = (
    "MVTec AD (Bergmann et al., CVPR 2019) is licensed CC BY-NC-SA 4.0: non-commercial use, "
    "attribution, share-alike. https://creativecommons.org/licenses/by-nc-sa/4.0/"
)

ARCHIVE_SUFFIXES = (".tar.xz", ".tar.gz", ".tgz", ".tar.bz2", ".tar", ".zip")






def sha256sum(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def verify_checksum(path: str | os.PathLike, expected: str | None) -> str:
    """Return the file's sha256; raise :class:`ChecksumError` if it is not ``expected``."""
    actual = sha256sum(path)
    if expected and actual.lower() != expected.lower():
        raise ChecksumError(
            f"Checksum mismatch for {path}: expected sha256 {expected}, got {actual}. The download is "
            "incomplete or the file at that address changed. Delete the file and download again, or set "
            "MVTEC_URL/MVTEC_SHA256 if the dataset moved.")
    return actual


def download_file(url: str, dest: str | os.PathLike, sha256: str | None = None,
                  chunk: int = 1 << 20, timeout: float = 60.0) -> Path:
    """Download ``url`` to ``dest`` with a progress bar, resuming a partial ``dest.part``.

    - A connection that drops before the announced size (``Content-Length``) has arrived raises
      :class:`IncompleteDownloadError` and keeps ``dest.part``: the next call resumes from it (HTTP Range).
    - The checksum is verified before the file is moved into place, so ``dest`` only ever holds a complete,
      verified file. A complete download with the wrong checksum is deleted; one whose size the server did
      not announce is kept (it may be short) and the next call resumes it.
    - An existing ``dest`` with the right checksum is not downloaded again.
    """
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if dest.exists():
        verify_checksum(dest, sha256)
        print(f"Already downloaded and verified: {dest}")
        return dest
    part = dest.with_name(dest.name + ".part")
    received, total = _fetch_into(url, part, chunk, timeout)
    if total is not None and received < total:
        raise IncompleteDownloadError(
            f"The connection to {url} dropped after {received:,} of {total:,} bytes. The partial file is kept at {part}: "
            "run again to resume from there.")
    try:
        verify_checksum(part, sha256)
    except ChecksumError as err:
        if total is None:   # no announced size: it may be short, so keep it for a resume
            raise ChecksumError(f"{err} The server did not announce the file's size, so the download may have been "
                                f"cut short: {part} is kept and the next run resumes it; if this repeats, delete "
                                "it.") from None
        part.unlink()
        raise ChecksumError(f"{err} The file was complete ({received:,} bytes, as announced), so it was "
                            "deleted.") from None
    part.replace(dest)
    return dest


def _fetch_into(url: str, part: Path, chunk: int, timeout: float) -> tuple[int, int | None]:
    """Append ``url``'s bytes to ``part`` (resuming when the server allows); ``(bytes on disk, full size or None)``."""
    start = part.stat().st_size if part.exists() else 0
    request = urllib.request.Request(url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:      # the partial file is already as long as the whole file
            print(f"{part.name} already holds the whole file ({start:,} bytes); checking it.")
            return start, start
        raise
    with response:
        resumed = start > 0 and response.status == 206 and _range_start(response) == start
        if start and not resumed:
            print("The server does not support resuming here; starting the download again.")
            start = 0
        length = response.headers.get("Content-Length")
        total = int(length) + start if length and length.isdigit() else None
        received = start
        with open(part, "ab" if resumed else "wb") as out, tqdm(
                total=total, initial=start, unit="B", unit_scale=True, desc=part.name[:-5]) as bar:
            try:
                while block := response.read(chunk):
                    out.write(block)
                    received += len(block)
                    bar.update(len(block))
            except (OSError, http.client.HTTPException) as err:   # a reset connection: what arrived is kept
                print(f"Connection lost ({type(err).__name__}: {err}).")
    return received, total


def _range_start(response) -> int | None:
    """The first byte of a 206 answer (``Content-Range: bytes START-END/TOTAL``)."""
    value = response.headers.get("Content-Range", "")
    try:
        return int(value.split()[1].split("-")[0])
    except (IndexError, ValueError):
        return None


def _check_member_name(name: str, target: Path) -> None:
    pure = PurePosixPath(name.replace("\\", "/"))
    resolved = (target / pure).resolve()
    if pure.is_absolute() or ".." in pure.parts or not resolved.is_relative_to(target.resolve()):
        raise UnsafeArchiveError(
            f"Refusing to extract: archive member {name!r} would be written outside {target}. "
            "The archive is corrupt or malicious; nothing was extracted.")


def safe_extract(archive: str | os.PathLike, target: str | os.PathLike) -> Path:
    """Extract a tar (any compression) or zip archive into ``target``, refusing escaping members.

    Every member name is checked before anything is written; tar archives are then extracted with
    the standard library's ``filter="data"`` (no links out, no devices, no absolute paths).
    """
    archive, target = Path(archive), Path(target)
    target.mkdir(parents=True, exist_ok=True)
    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as zf:
            for name in zf.namelist():
                _check_member_name(name, target)
            zf.extractall(target)
        return target
    with tarfile.open(archive) as tf:
        members = tf.getmembers()
        for member in members:
            _check_member_name(member.name, target)
            if member.issym() or member.islnk():
                _check_member_name(str(PurePosixPath(member.name).parent / member.linkname), target)
        try:
            tf.extractall(target, members=members, filter="data")
        except tarfile.FilterError as err:
            raise UnsafeArchiveError(f"Refusing to extract {archive}: {err}") from err
    return target


def check_free_space(folder: str | os.PathLike, needed: int) -> None:
    """Raise ``OSError`` saying what is free and what is needed when ``folder``'s disk has too little."""
    folder = Path(folder)
    probe = next((p for p in (folder, *folder.parents) if p.exists()), Path("."))
    free = shutil.disk_usage(probe).free
    if free < needed:
        raise OSError(f"Not enough disk space at {probe}: {free / 2**30:.1f} GiB free, {needed / 2**30:.1f} GiB "
                      "needed to download and extract MVTec AD. Free some space, or extract elsewhere and set "
                      "MVTEC_DIR to that folder.")


def fetch_archive(archive: Path, sha256: str | None, urls: list[str]) -> Path:
    """A verified ``archive``: the file already there, else the first address that gives a good copy.

    Raises :class:`DownloadError` listing every address tried and its error, and what to do next.
    """
    tries = []
    for url in urls:
        try:
            return download_file(url, archive, sha256)
        except (OSError, ChecksumError) as err:   # urllib's HTTPError/URLError are OSErrors
            tries.append(f"  {url}\n    → {type(err).__name__}: {err}")
    raise DownloadError(
        "MVTec AD could not be downloaded from any known address:\n" + "\n".join(tries) + "\nWhat to do: find the "
        f"current address at {MVTEC_PAGE} and set MVTEC_URL (and MVTEC_SHA256 if the archive changed), or put "
        f"{ARCHIVE_NAME} at {archive} yourself (e.g. a copy kept on Google Drive) and run again: it is checked "
        "and used without downloading.")


def download_mvtec(dest_dir: str | os.PathLike, url: str | None = None, sha256: str | None = None,
                   keep_archive: bool = False, min_free: int = MIN_FREE_BYTES,
                   archive_dir: str | os.PathLike | None = None) -> Path:
    """Download and extract the full MVTec AD archive into ``dest_dir``; return the dataset root.

    Skipped when ``dest_dir`` already holds an MVTec layout. The archive is looked for, or downloaded, at
    ``archive_dir / mvtec_anomaly_detection.tar.xz`` (default ``dest_dir.parent``; on Colab a Drive folder, so
    it is downloaded once and extracted by each runtime): ``url`` (or ``MVTEC_URL``) is tried first, then
    every address in :data:`MVTEC_URLS`; the checksum (``MVTEC_SHA256`` overrides) decides which copy is
    good. Free disk is checked first (``MVTEC_MIN_FREE_GB`` overrides the 11 GiB, e.g. for a smaller mirror).
    Extraction goes to a ``.partial`` folder renamed to ``dest_dir`` only
    when complete, so an interrupted extraction is never taken for the dataset.
    """
    from .scan import looks_like_mvtec_root  # avoid a cycle

    dest_dir = Path(dest_dir).expanduser()
    print(LICENCE_NOTICE)
    if looks_like_mvtec_root(dest_dir):
        print(f"MVTec AD already present at {dest_dir}; skipping the download.")
        return dest_dir
    archive = Path(archive_dir or dest_dir.parent).expanduser() / ARCHIVE_NAME
    min_free = int(float(os.environ["MVTEC_MIN_FREE_GB"]) * 2**30) if os.environ.get("MVTEC_MIN_FREE_GB") else min_free
    check_free_space(dest_dir.parent, min_free - (archive.stat().st_size if archive.exists() else 0))
    first = url or os.environ.get("MVTEC_URL")
    urls = list(dict.fromkeys([u for u in (first, *MVTEC_URLS) if u]))
    archive = fetch_archive(archive, sha256 or os.environ.get("MVTEC_SHA256") or MVTEC_SHA256, urls)
    print(f"Extracting {archive.name} (several minutes for the full dataset) ...")
    partial = dest_dir.with_name(dest_dir.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)          # what an interrupted extraction left
    safe_extract(archive, partial)
    if dest_dir.exists() and not any(dest_dir.iterdir()):
        dest_dir.rmdir()
    partial.replace(dest_dir)
    if not keep_archive:
        archive.unlink()
    return dest_dir


def extract_archives(archives: list[str | os.PathLike], dest_dir: str | os.PathLike) -> Path:
    """Extract user-supplied archives (e.g. per-category ``bottle.tar.xz`` from Google Drive).

    Each archive is extracted safely into ``dest_dir``; a category archive that holds a single
    top-level folder named after the category ends up as ``dest_dir/<category>/``.
    """
    dest_dir = Path(dest_dir).expanduser()
    print(LICENCE_NOTICE)
    for archive in tqdm([Path(a) for a in archives], desc="archives"):
        if not archive.name.endswith(ARCHIVE_SUFFIXES):
            raise ValueError(f"{archive} is not an archive: expected one of {ARCHIVE_SUFFIXES}.")
        safe_extract(archive, dest_dir)
    return dest_dir
