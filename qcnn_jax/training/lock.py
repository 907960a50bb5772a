"""One process per run folder: an exclusive OS lock on `{folder}/.lock`.

`fcntl.flock` locks belong to the open file: the OS releases them when the holder exits, however it
exits (a SIGKILL included), so a lock is never stale. The file keeps the holder's PID, host, start
time and command for the message a second process gets; it stays behind, unlocked, after the run.
"""

import contextlib
import fcntl
import json
import os
import socket
import sys
import time

LOCK_FILENAME = ".lock"


class FolderBusyError(ValueError):
  """Another live process holds the folder's lock."""


def _holder(fd: int) -> str:
  """Who holds the lock, from the lock file's record."""
  os.lseek(fd, 0, os.SEEK_SET)
  try:
    record = json.loads(os.read(fd, 1 << 16) or b"{}")
  except ValueError:
    record = {}
  pid, host, started = record.get("pid", "?"), record.get("host", "?"), record.get("started", "?")
  return f"process {pid} on {host}, started {started}"


@contextlib.contextmanager
def hold(folder: str | os.PathLike, what: str = "workdir"):
  """Holds the lock of `folder` (created if missing) for the `with` body.

  Raises:
    FolderBusyError: another process holds it; nothing in `folder` was changed.
  """
  folder = os.path.abspath(folder)
  os.makedirs(folder, exist_ok=True)
  fd = os.open(os.path.join(folder, LOCK_FILENAME), os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      raise FolderBusyError(
          f"{what} {folder} is in use by {_holder(fd)}: wait for that run to end (or stop it), or use "
          f"another {what}.") from None
    record = {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
              "command": " ".join(sys.argv)}
    os.ftruncate(fd, 0)
    os.pwrite(fd, json.dumps(record).encode(), 0)
    yield
  finally:
    os.close(fd)  # releases the lock
