"""Writing files so that a crash, a full disk or Ctrl-C never leaves half a file.

The ground floor of the lab tier: it imports nothing of this project, and
everything that writes a file (runs, checkpoints, plots, experiments,
benchmarks) writes it through ``atomic_write``.
"""
import errno
import json
import math
import os
import stat
import tempfile
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: see FolderLock
    fcntl = None

NO_ROOM_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
"""A full disk, a full quota, a file larger than the file system or a limit allows."""
INODE_HINT = " (if df shows free space, df -i shows no free inodes: delete many small files)"
"""Creating a file fails with ENOSPC on a disk with space but no inodes left."""


def _current_umask():
    """The process's umask (reading it means setting it, so it is set straight back)."""
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def no_room_advice(error, otherwise):
    """What to do about ``error``: make room when the disk or the quota is full, else
    ``otherwise``."""
    return "free some disk space or write elsewhere" if error.errno in NO_ROOM_ERRORS else otherwise


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
                      f"{no_room_advice(error, 'choose a writable folder')}"
                      f"{INODE_HINT if error.errno == errno.ENOSPC else ''}") from error
    try:
        write(temporary)
        os.chmod(temporary, 0o666 & ~_current_umask())
        os.replace(temporary, path)
    except OSError as error:
        advice = no_room_advice(error, "check that the folder is writable")
        raise OSError(error.errno, f"could not write {path} ({error.strerror or error}); "
                      f"{advice}. Earlier results there are unchanged") from error
    finally:
        if os.path.exists(temporary):
            os.remove(temporary)


def temporary_files(folder, names):
    """The temporary files ``atomic_write`` leaves in ``folder`` for files of these names
    when its process is killed mid-write: ``.<name>.<random>.tmp``, nothing else."""
    folder = Path(folder)
    return [path for name in names for path in folder.glob(f".{name}.*.tmp") if path.is_file()]


class Terminated(KeyboardInterrupt):
    """SIGTERM, handled as Ctrl-C is: what is being written is finished or dropped, and
    the command line exits with 143 rather than Ctrl-C's 130."""


class FolderBusyError(OSError):
    """Another process holds the lock of a folder."""


class LinkOutOfFolderError(OSError):
    """A file that a run would write is a link, which could lead out of its folder."""

    def __init__(self, path, kind):
        super().__init__(f"{path} is {kind}, not a plain file of the run's own (a run never "
                         f"writes through a link); delete {path} and run again")
        self.errno = errno.ELOOP


class FolderLock:
    """An exclusive lock on a folder, so that two processes never write into it at once.

    The lock is the operating system's (``flock``) on the file ``.lock`` in the
    folder, so it ends with the process that holds it, however that process
    ends: the file a killed process leaves behind is simply locked again by
    the next one. The file holds the holder's process ID, for the message a
    second process gets, and is removed on release. Windows has no ``flock``;
    there no lock is taken.

    Parameters
    ----------
    folder : str or Path
        An existing folder.
    """

    file_name = '.lock'

    def __init__(self, folder):
        self.path = Path(folder) / self.file_name
        self.descriptor = None

    def acquire(self):
        """Take the lock, or refuse at once.

        Raises
        ------
        FolderBusyError
            If another process holds it, naming that process.
        OSError
            If the lock file cannot be created, naming the folder.
        """
        if fcntl is None:
            return
        try:
            while self.descriptor is None:
                descriptor = self._open_in_folder()
                try:
                    fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    holder = os.read(descriptor, 64).decode(errors='replace').strip()
                    os.close(descriptor)
                    raise FolderBusyError(
                        f"{self.path.parent} is in use by another run (process "
                        f"{holder or 'unknown'}); wait until it has finished") from None
                if self._is_current(descriptor):
                    self.descriptor = descriptor
                    self._write_holder()
                else:
                    os.close(descriptor)
        except (FolderBusyError, LinkOutOfFolderError):
            raise
        except OSError as error:
            raise OSError(error.errno, f"cannot lock {self.path.parent} ({error.strerror}); "
                          f"check that the folder is writable") from error

    def _open_in_folder(self):
        """Open or create ``.lock`` itself, never a file it links to.

        ``O_NOFOLLOW`` refuses a symbolic link (a dangling one too, which would
        otherwise create its target); a hard link is a second name of a file
        that may lie anywhere on the same disk, and writing the process ID
        into it would overwrite that file.

        Raises
        ------
        LinkOutOfFolderError
            If ``.lock`` is a link or anything but a plain file.
        """
        try:
            descriptor = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW
                                 | getattr(os, 'O_NONBLOCK', 0), 0o666)
        except OSError as error:
            if error.errno == errno.ELOOP or self.path.is_symlink():
                raise LinkOutOfFolderError(self.path, 'a symbolic link') from None
            if error.errno == errno.EISDIR:
                raise LinkOutOfFolderError(self.path, 'a folder') from None
            raise
        status = os.fstat(descriptor)
        if not stat.S_ISREG(status.st_mode) or status.st_nlink != 1:
            os.close(descriptor)
            kind = ('a hard link to another file' if stat.S_ISREG(status.st_mode)
                    else 'a FIFO, device or socket')
            raise LinkOutOfFolderError(self.path, kind)
        return descriptor

    def _write_holder(self):
        """Write this process's ID into the lock file, if the disk has room for it: the
        ID is for messages only, the lock is held without it."""
        try:
            os.ftruncate(self.descriptor, 0)
            os.write(self.descriptor, f"{os.getpid()}\n".encode())
        except OSError:
            pass

    def _is_current(self, descriptor):
        """Whether the locked file is still the one named ``.lock``: its last holder may
        have removed it between our open and our lock, and then locking it proves nothing."""
        try:
            return os.stat(self.path).st_ino == os.fstat(descriptor).st_ino
        except FileNotFoundError:
            return False

    def release(self):
        """Remove the lock file and let go of the lock; nothing if it is not held."""
        if self.descriptor is not None:
            os.remove(self.path)
            os.close(self.descriptor)
            self.descriptor = None


def printable(text):
    """``text`` with each character that a terminal would act on (escape codes, carriage
    returns, newlines) written as a Python escape: for messages that quote a file's content,
    which could otherwise erase the line and show a message of its own."""
    return ''.join(character if character.isprintable()
                   else character.encode('unicode_escape').decode('ascii')
                   for character in str(text))


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
        raise ValueError(f"{path} is not a readable JSON file ({printable(error)})") from error
