"""Checked downloads, by download_all.sh's rule: a file is fetched to `<name>.part` beside its place,
checked, and only then renamed to its name, so a kept file is always a whole, checked one.

An interrupted download leaves its `.part`, which the next try continues with an HTTP range request
(or starts again when the server ignores ranges); a `.part` that fails its check is deleted.
"""

import hashlib
import os
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from utils.errors import InputError, UserError
from utils.progress import progress_bar

CHUNK_BYTES = 1 << 20
TIMEOUT_S = 60


class DownloadError(UserError, OSError):
    """A file could not be fetched from its address."""


@dataclass(frozen=True)
class Remote:
    """A published file: where it is, the name it is kept under, and its checksum when one is known
    (`algorithm:hex`, e.g. `md5:...` where the publisher gives md5; None where nobody publishes one)."""

    url: str
    name: str
    checksum: str | None = None

    def address(self, mirror: str | None) -> str:
        """The official address, or `<mirror>/<name>` (a URL prefix or a local folder)."""
        if not mirror:
            return self.url
        if "://" not in mirror:
            return Path(mirror).resolve().joinpath(self.name).as_uri()
        return f"{mirror.rstrip('/')}/{self.name}"


def file_digest(path: Path, algorithm: str) -> str:
    with open(path, "rb") as file:
        return hashlib.file_digest(file, algorithm).hexdigest()


def check_digest(path: Path, checksum: str) -> None:
    """Raise `InputError` naming `path` unless its digest is `checksum` (`algorithm:hex`)."""
    algorithm, expected = checksum.split(":")
    found = file_digest(path, algorithm)
    if found != expected:
        raise InputError(f"{path} has {algorithm} {found}, not the published {expected}")


def _open(address: str, start: int):
    request = urllib.request.Request(address, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        return urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as error:
        if error.code == 416 and start:  # the .part already holds the whole file
            return None
        raise


def _download(address: str, part: Path) -> None:
    """Append what `part` lacks of `address` to it (all of it when the server ignores ranges)."""
    start = part.stat().st_size if part.exists() else 0
    response = _open(address, start)
    if response is None:
        return
    with response:
        resumed = start > 0 and response.status == 206
        if not resumed:
            start = 0
        length = response.headers.get("Content-Length")
        total = start + int(length) if length else None
        with (
            open(part, "ab" if resumed else "wb") as file,
            progress_bar(total=total, initial=start, unit="B", unit_scale=True, desc=part.stem) as bar,
        ):
            while chunk := response.read(CHUNK_BYTES):
                file.write(chunk)
                bar.update(len(chunk))
    if total is not None and part.stat().st_size != total:
        raise DownloadError(f"{address} ended after {part.stat().st_size:,} of {total:,} bytes")


def fetch(remote: Remote, folder: Path, mirror: str | None = None) -> tuple[Path, bool]:
    """`folder/remote.name`, downloaded and checked unless already there; and whether it was fetched.

    A file already kept is taken as it is (it was checked when kept). Raises `DownloadError` when the
    address cannot be read and `InputError` when the download fails its check (its `.part` deleted).
    """
    destination = folder / remote.name
    if destination.exists():
        return destination, False
    folder.mkdir(parents=True, exist_ok=True)
    part = destination.with_name(destination.name + ".part")
    address = remote.address(mirror)
    print(f"downloading {remote.name} from {address}" + (" (continuing)" if part.exists() else ""))
    try:
        _download(address, part)
    except (urllib.error.URLError, OSError) as error:
        reason = getattr(error, "reason", error)
        kept = f"; what was received is kept in {part} and a rerun continues it" if part.exists() else ""
        raise DownloadError(
            f"could not download {remote.name} from {address} ({reason}){kept}. Check the connection and "
            "the address, or set a mirror that holds the file"
        ) from error
    if remote.checksum:
        try:
            check_digest(part, remote.checksum)
        except InputError as error:
            part.unlink()
            raise InputError(f"the download of {remote.name} from {address} was deleted: {error}") from None
    os.replace(part, destination)
    return destination, True
