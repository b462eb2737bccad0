"""One run at a time per output folder: a lock the kernel lets go of when its owner dies.

``tunewise run`` takes ``<output_dir>/.tunewise-run.lock`` before it reads or writes anything else
and holds it for the run's life: an exclusive ``flock`` on the open file, which the kernel releases
however the process ends (exit, crash, kill -9; a power loss takes every lock with it), so a dead
run never keeps a folder. The file also holds an owner record (pid, the process's start time from
``/proc/PID/stat``, boot id, host, when) so a second run is refused at once with a message naming
the folder and the owner. Where the filesystem offers no ``flock`` the record alone decides: an
owner on this host whose pid still runs with the recorded start time holds the folder, a record
from another host is trusted (delete the file once that run is gone), anything else is stale.

The lock file is left as it was found: removed when the run made it, its bytes and mtime put back
when it was already there (a killed run's) and the run was refused, so a refused run changes
nothing. A multi-process launcher holds the lock for its ranks and names itself in
``TUNEWISE_OUTPUT_LOCK`` (``PID:FOLDER``); ranks never take the lock again.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunewise.plugins.errors import TunewiseError

LOCK_FILE = ".tunewise-run.lock"
LAUNCHER_ENV = "TUNEWISE_OUTPUT_LOCK"
"""Set by a multi-process launcher for its ranks: ``PID:FOLDER`` of the lock it holds for them."""
_NO_FLOCK = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOTSUP, errno.ENOSYS, errno.EINVAL}


class OutputLocked(TunewiseError):
    """Another run owns the output folder."""


def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """When ``pid`` started (clock ticks since boot, ``/proc/PID/stat`` field 22); None if unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: count fields after the last ")".
    fields = stat.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def owner_record(pid: int | None = None) -> dict[str, Any]:
    """Who holds a lock: this process (or ``pid``), told apart from a later process with the same pid."""
    pid = os.getpid() if pid is None else pid
    return {"pid": pid, "start_ticks": process_start_ticks(pid), "boot_id": _boot_id(),
            "host": socket.gethostname(), "since": time.strftime("%Y-%m-%d %H:%M:%S")}


def owner_alive(record: dict[str, Any]) -> bool:
    """Whether the process a record names still runs (records from other hosts cannot be checked: True)."""
    if record.get("host") != socket.gethostname():
        return True
    try:
        pid = int(record["pid"])
    except (KeyError, TypeError, ValueError):
        return False
    if record.get("boot_id") and _boot_id() and record["boot_id"] != _boot_id():
        return False  # recorded before a reboot
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # someone else's process: it exists
    ticks = process_start_ticks(pid)
    return record.get("start_ticks") is None or ticks is None or ticks == record["start_ticks"]


def _read_record(fd: int) -> dict[str, Any]:
    try:
        data = os.pread(fd, 4096, 0)
        record = json.loads(data.decode("utf-8")) if data.strip() else {}
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _describe(record: dict[str, Any]) -> str:
    if not record.get("pid"):
        return "another tunewise run (starting up)"
    where = f" on {record['host']}" if record.get("host") and record["host"] != socket.gethostname() else ""
    since = f", since {record['since']}" if record.get("since") else ""
    return f"another tunewise run (pid {record['pid']}{where}{since})"


@dataclass
class OutputLock:
    """A held output-folder lock; :meth:`release` puts the lock file back as it was found."""

    folder: Path
    path: Path
    fd: int | None
    previous: tuple[bytes, int, int] | None = None
    """The lock file's bytes, atime and mtime (ns) when a killed run had left it; None when this run made it."""
    created: list[Path] = field(default_factory=list)
    """Folders this lock made (deepest first), removed again when they are left empty."""

    def release(self, *, accepted: bool) -> None:
        """Let go; a refused run (``accepted`` False) leaves a killed run's lock file byte for byte."""
        if self.fd is None:
            return
        try:
            if self.previous is not None and not accepted:
                content, atime, mtime = self.previous
                os.ftruncate(self.fd, 0)
                os.pwrite(self.fd, content, 0)
                os.utime(self.path, ns=(atime, mtime))
            else:
                # Unlinked while still held: a run waiting on this inode sees it is gone and starts over.
                self.path.unlink(missing_ok=True)
        except OSError:
            pass
        finally:
            os.close(self.fd)
            self.fd = None
        for made in self.created:
            try:
                made.rmdir()  # only when empty: a refused run leaves no folder behind
            except OSError:
                break

    def launcher_env(self) -> dict[str, str]:
        """The environment entry that tells a launcher's ranks this lock covers them."""
        return {LAUNCHER_ENV: f"{os.getpid()}:{self.folder}"}


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` (and parents); the ones made, deepest first."""
    missing: list[Path] = []
    probe = folder
    while not probe.exists() and probe != probe.parent:
        missing.append(probe)
        probe = probe.parent
    if folder.exists() and not folder.is_dir():
        raise TunewiseError(f"output folder {folder} is a file; choose a folder with --out DIR")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TunewiseError(f"cannot create the output folder {folder}: {exc.strerror or exc}") from None
    return missing


def acquire(folder: Path) -> OutputLock:
    """Own ``folder`` for this process's run, or raise :class:`OutputLocked` naming its owner."""
    folder = Path(folder).expanduser().resolve()
    created = _make_folder(folder)
    path = folder / LOCK_FILE
    try:
        while True:
            try:
                try:
                    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
                    made = True
                except FileExistsError:
                    try:
                        fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
                    except FileNotFoundError:
                        continue  # its owner removed it just now
                    made = False
            except OSError as exc:
                raise TunewiseError(f"cannot write in the output folder {folder}: {exc.strerror or exc}") from None
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                record = _read_record(fd)
                os.close(fd)
                raise OutputLocked(f"{folder} is in use by {_describe(record)}; wait for it to end, stop it, "
                                   "or pass --out DIR for another folder") from None
            except OSError as exc:
                if exc.errno not in _NO_FLOCK:
                    os.close(fd)
                    raise
                record = _read_record(fd)  # no flock on this filesystem: the owner record decides
                if record and owner_alive(record):
                    os.close(fd)
                    raise OutputLocked(f"{folder} is in use by {_describe(record)}; wait for it to end, or "
                                       f"delete {path} if that run is gone (this filesystem has no file locks)"
                                       ) from None
            held = os.fstat(fd)
            try:
                now = os.stat(path)
            except FileNotFoundError:
                now = None
            if now is None or (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino):
                os.close(fd)  # unlinked by its owner while we waited for it: take the new file
                continue
            previous = None if made else (os.pread(fd, held.st_size, 0), held.st_atime_ns, held.st_mtime_ns)
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(owner_record()).encode() + b"\n", 0)
            return OutputLock(folder, path, fd, previous, created)
    except BaseException:
        for folder_made in created:
            try:
                folder_made.rmdir()
            except OSError:
                break
        raise


def covered_by_launcher(folder: Path) -> bool:
    """Whether this process is a rank of a launcher that holds ``folder``'s lock (see :data:`LAUNCHER_ENV`)."""
    value = os.environ.get(LAUNCHER_ENV, "")
    pid, _, named = value.partition(":")
    if not pid.isdigit() or not named:
        return False
    folder = Path(folder).expanduser().resolve()
    if Path(named) != folder:
        return False
    try:
        fd = os.open(folder / LOCK_FILE, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read_record(fd).get("pid") == int(pid)  # held, by the launcher that named itself
        except OSError:
            return _read_record(fd).get("pid") == int(pid)
        return False  # nobody holds it: the launcher is gone
    finally:
        os.close(fd)
