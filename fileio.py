"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file.

The ground floor of the lab tier: it imports nothing of this project, and
everything that writes a file (runs, checkpoints, plots, experiments,
benchmarks) writes it through ``atomic_write``.
"""
import errno
import json
import math
import os
import tempfile
from pathlib import Path

DISK_FULL_ERRORS = (errno.ENOSPC, errno.EDQUOT)


def _current_umask():
    """The process's umask (reading it means setting it, so it is set straight back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def atomic_write(path, write):
    """Call ``write(temporary_path)``, then rename the result to ``path``.

    The file appears under its final name only once complete, so a crash, a
    full disk or Ctrl-C never leaves half a file, and an earlier version of
    the file stays intact until the new one is whole. The file gets the
    permissions the user's umask gives any new file (the temporary file is
    created private, 0600, and widened before the rename).

    Raises
    ------
    OSError
        With a message naming the file and what to do.
    """
    path = Path(path)
    try:
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.",
                                             suffix='.tmp')
        os.close(handle)
    except OSError as error:
        raise OSError(error.errno, f"cannot write into {path.parent} ({error.strerror}); "
                      f"choose a writable folder") from error
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except OSError as error:
        advice = ("free some disk space or write elsewhere" if error.errno in DISK_FULL_ERRORS
                  else "check that the folder is writable")
        raise OSError(error.errno, f"could not write {path} ({error.strerror or error}); "
                      f"{advice}. Earlier results there are unchanged") from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def strict_json(value):
    """``value`` with every non-finite float replaced by None, so it is valid JSON.

    JSON has no NaN or Infinity; Python's ``json`` writes them as bare words
    that other readers reject.
    """
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: strict_json(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(item) for item in value]
    return value


def save_json(path, data):
    """Write ``data`` as indented, strictly valid JSON, atomically."""
    def write(temporary):
        with open(temporary, 'w') as file:
            json.dump(strict_json(data), file, indent=2, allow_nan=False)
            file.write('\n')
    atomic_write(path, write)


def load_json(path):
    """Read a JSON file written by ``save_json``.

    Raises
    ------
    OSError
        If the file cannot be read.
    ValueError
        If it is not valid JSON, naming the file.
    """
    try:
        return json.loads(Path(path).read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{path} is not a readable JSON file ({error})") from error
