"""Files fetched from the network: downloaded whole or not at all, checked, extracted.

`download_file` writes to a temporary name beside the destination and renames
it only once the whole file has arrived with the expected md5 sum, so a
half-written download is never taken for a whole one. `extract_archive`
unpacks a tar archive into a temporary folder and renames it when complete.
`DownloadError` and `CorruptDataError` are the two ways a data file fails:
every data set's reader raises them, and the training scripts turn them into
one line and exit code 2.
"""
import hashlib
import http.client
import os
import shutil
import tarfile
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

DOWNLOAD_CHUNK_BYTES = 1 << 20
# Without network a connection attempt may hang rather than fail: give up after this.
DOWNLOAD_TIMEOUT_SECONDS = 20


class DownloadError(OSError):
    """A data file could not be downloaded (no network, interrupted, wrong checksum)."""


class CorruptDataError(ValueError):
    """A data file or folder on disk is truncated, incomplete or in the wrong format."""


def file_md5(path):
    """Return the hex md5 digest of a file, read in chunks."""
    digest = hashlib.md5()
    with open(path, 'rb') as file:
        while chunk := file.read(DOWNLOAD_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def download_file(url, destination, md5):
    """Download `url` to `destination`, which appears only when complete and verified.

    The bytes go to a temporary file beside `destination`, which is renamed
    to `destination` only once the whole body has arrived and its md5 sum
    matches `md5`. On any failure the temporary file is deleted, so a
    half-written download is never taken for a whole one.

    Parameters
    ----------
    url : str
        Where to download from (any scheme urllib opens, e.g. https or file).
    destination : str or Path
        The final path; its folder is created if needed.
    md5 : str
        Expected hex md5 digest of the file.

    Raises
    ------
    DownloadError
        No network, an interrupted transfer, or a checksum mismatch (which
        is what a transfer that ended early gives). The message says where to
        put the file by hand.
    """
    destination = Path(destination)
    new_folders = [folder for folder in (destination.parent, *destination.parent.parents)
                   if not folder.exists()]
    destination.parent.mkdir(parents=True, exist_ok=True)
    by_hand = (f'Without network access, download {url} on another machine and put it at '
               f'{destination.resolve()}, then run again.')
    print(f'Downloading {url} to {destination}')
    descriptor, partial_name = tempfile.mkstemp(dir=destination.parent,
                                                prefix=f'.{destination.name}.', suffix='.part')
    partial = Path(partial_name)
    try:
        digest = hashlib.md5()
        received = 0
        try:
            with os.fdopen(descriptor, 'wb') as partial_file, \
                    urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_SECONDS) as response:
                announced = response.headers.get('Content-Length')
                with tqdm(total=int(announced) if announced else None, unit='B',
                          unit_scale=True, unit_divisor=1024, desc=destination.name,
                          disable=None) as progress:
                    while chunk := response.read(DOWNLOAD_CHUNK_BYTES):
                        partial_file.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        progress.update(len(chunk))
        except (OSError, http.client.HTTPException) as error:
            raise DownloadError(f'Could not download {url}: {error}. {by_hand}') from error
        if digest.hexdigest() != md5:
            raise DownloadError(f'{url} arrived with md5 {digest.hexdigest()} instead of {md5} '
                                f'({received} bytes received, {announced or "?"} announced), '
                                f'so it was discarded; run again to retry. {by_hand}')
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
        if not destination.exists():
            remove_empty_folders(new_folders)


def remove_empty_folders(folders):
    """Remove each of ``folders``, deepest first, that is still empty: a download that
    failed leaves no folder behind (a mistyped ``--data_dir`` creates nothing)."""
    for folder in folders:
        try:
            folder.rmdir()
        except OSError:
            return


def extract_archive(archive, folder):
    """Extract the tar `archive` so that `folder` appears only when fully extracted.

    The archive is unpacked into a temporary folder beside `folder`, and the
    folder named ``folder.name`` inside it is renamed to `folder` at the end.
    """
    folder = Path(folder)
    staging = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f'.{folder.name}.',
                                    suffix='.extracting'))
    try:
        with tarfile.open(archive) as tar:
            # Python >= 3.11.4 can refuse members that would land outside `staging`.
            safety = {'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}
            tar.extractall(staging, **safety)
        os.rename(staging / folder.name, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
