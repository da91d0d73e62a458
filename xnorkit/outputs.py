"""Output folders: where xnorkit may write, and replacing one without ever losing or half-writing it.

Every folder xnorkit writes (a BUILD, BUILD/rtl, BUILD/hls, a firmware library) holds a `.xnorkit` file naming
its kind. A destination is refused, before anything is written, when replacing it could lose a user's files:
the current folder or one above it, the folder of an input or one above it, a file, or a non-empty folder that
is not an xnorkit output of the same kind.

Replacement is crash-safe: the new tree is written complete beside the old one (`.NAME-new-*`), then the old
one is renamed aside (`.NAME-old`) and the new one into place, with SIGINT and SIGTERM held off between the
two renames; the old tree is deleted last. A run killed outright (SIGKILL, power loss) leaves at most those
hidden folders, which the next write to the same destination resolves first: the old tree is put back if
the destination is missing, the rest deleted. Writers of one destination take a lock (`.NAME.lock`), so two
at once run one after the other.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock

from xnorkit.errors import XnorkitError

MARKER = ".xnorkit"
# folders written before the marker existed are recognized by a file only that kind holds
_LEGACY_SIGN = {"build": "ir.json", "rtl": "design.json", "firmware": "library.json", "hls": "run_hls.tcl",
                "flow": "report.json", "run": "checkpoint.pt", "synth": "synth.ys"}


def kind_of(folder: Path) -> str | None:
    """The kind of xnorkit output `folder` is, or None."""
    marker = folder / MARKER
    if marker.is_file():
        return marker.read_text(errors="replace").strip()[:32] or None
    return next((kind for kind, name in _LEGACY_SIGN.items() if (folder / name).is_file()), None)


def check_target(dest: Path, kind: str, inputs: Sequence[Path] = ()) -> None:
    """Refuse (one line) a destination whose replacement could lose files that are not an xnorkit `kind`."""
    where = Path(dest).resolve()
    for given in inputs:
        source = Path(given).resolve()
        if where == source or where in source.parents:
            raise XnorkitError(f"output folder {dest} holds the input {given}; name another folder")
    check_folder(dest, (kind,))


def check_folder(folder: Path, kinds: Sequence[str]) -> None:
    """Refuse (one line) to add files to a folder that is not new, empty, or an xnorkit output of `kinds`."""
    folder = Path(folder)
    where, here = folder.resolve(), Path.cwd().resolve()
    if where == here or where in here.parents:
        raise XnorkitError(f"output folder {folder} is the current folder or above it; name a new folder, e.g. "
                           f"-o build")
    if folder.exists() and not folder.is_dir():
        raise XnorkitError(f"output {folder} is a file, not a folder; name a folder")
    if folder.is_dir() and any(folder.iterdir()) and kind_of(folder) not in kinds:
        raise XnorkitError(f"output folder {folder} is not empty and is not an xnorkit {' or '.join(kinds)} folder; "
                           f"name a new or empty folder (nothing was changed)")
    _check_writable(folder)


def _check_writable(folder: Path) -> None:
    """Refuse, before any work (training can take hours), a folder that cannot be made or written: tried with
    a temporary folder in its nearest existing ancestor, removed at once."""
    base = next(p for p in (folder.absolute(), *folder.absolute().parents) if p.exists())
    try:
        with _signals_held():  # an interrupt between the two would leave the probe behind
            os.rmdir(tempfile.mkdtemp(prefix=".xnorkit-probe-", dir=base))
    except OSError as e:
        raise XnorkitError(f"cannot write into {base} ({e.strerror or e}); choose a writable folder") from None


def check_file(path: Path) -> None:
    """Refuse (one line), before any work, an output file name that cannot be written: a folder, or a name in a
    folder that does not exist."""
    path = Path(path)
    if path.is_dir():
        raise XnorkitError(f"output {path} is a folder; name a file")
    if not path.parent.is_dir():
        raise XnorkitError(f"the folder of output {path} does not exist; create it or name another place")


def write_file(path: Path, data: str | bytes) -> Path:
    """Write one file beside its final name and rename it into place: never half-written."""
    path = Path(path)
    check_file(path)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
        os.replace(tmp, path)
    except OSError as e:
        with suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise XnorkitError(f"cannot write {path} ({e.strerror or e}); choose a writable place") from None
    return path


def _aside(dest: Path) -> Path:
    return dest.parent / f".{dest.name}-old"


def recover(dest: Path) -> None:
    """Resolve what a killed write left beside `dest`: the old tree back if `dest` is missing, the rest gone."""
    old = _aside(dest)
    if old.is_dir() and not dest.exists():
        old.rename(dest)
    if old.exists():
        shutil.rmtree(old)
    for leftover in dest.parent.glob(f".{dest.name}-new-*"):
        shutil.rmtree(leftover, ignore_errors=True)


@contextmanager
def _signals_held() -> Iterator[None]:
    """SIGINT and SIGTERM wait until the block ends (delivered then)."""
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


@contextmanager
def replacing(dest: Path, kind: str, inputs: Sequence[Path] = ()) -> Iterator[Path]:
    """Yield a temporary folder beside `dest`; when the block ends without an error it becomes `dest` (replacing
    the previous output of the same kind), otherwise it is removed and `dest` is as it was."""
    dest = Path(dest)
    check_target(dest, kind, inputs)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        lock_path = dest.parent / f".{dest.name}.lock"
        # made here first: FileLock waits forever, as if another writer held it, on a file it cannot create
        os.close(os.open(lock_path, os.O_WRONLY | os.O_CREAT, 0o644))
        lock = FileLock(str(lock_path))
        lock.acquire()
    except OSError as e:
        raise XnorkitError(f"cannot write into {dest.parent} ({e.strerror or e}); choose a writable folder") from None
    try:
        with _signals_held():
            recover(dest)
        check_target(dest, kind, inputs)  # another writer may have finished meanwhile
        tmp = None
        try:
            with _signals_held():  # made and named at once: the `finally` below always knows it
                tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}-new-", dir=dest.parent))
            yield tmp
            (tmp / MARKER).write_text(kind + "\n")
            tmp.chmod(0o755)  # mkdtemp makes it private
            with _signals_held():
                if dest.exists():
                    dest.rename(_aside(dest))
                tmp.rename(dest)
        finally:
            with _signals_held():  # an interrupt now would leave the cleanup half done
                if tmp is not None:
                    shutil.rmtree(tmp, ignore_errors=True)
                if not dest.exists() and _aside(dest).is_dir():
                    _aside(dest).rename(dest)
                shutil.rmtree(_aside(dest), ignore_errors=True)
    finally:
        with _signals_held():  # the lock file stays: deleting it could let a third writer lock a different file
            lock.release()
            del lock  # its finalizer runs here, not where an interrupt could break into it


def write_tree(dest: Path, files: dict[str, str], kind: str = "generated") -> Path:
    """Replace folder `dest` with exactly `files` (and its marker), all or nothing."""
    with replacing(dest, kind) as tmp:
        for rel, text in files.items():
            target = (tmp / rel).resolve()
            if tmp.resolve() not in target.parents:
                raise XnorkitError(f"generated file name {rel!r} leaves its folder")
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
    return dest


def _importing(frame) -> bool:
    while frame is not None:
        if frame.f_code.co_filename.startswith("<frozen importlib"):
            return True
        frame = frame.f_back
    return False


_exiting = False  # set once the command is done or undone: later signals change nothing
_interrupted = False  # an interrupt was raised: an exception that follows is its consequence


def _interrupt(signum, frame) -> None:
    global _interrupted
    if _exiting:
        return
    if _importing(frame):
        # a C extension interrupted while it initializes fails to import (onnxruntime: "initialization failed")
        # or crashes: deliver the signal again once the import is over
        _deliver_later(signum)
        return
    _interrupted = True
    raise KeyboardInterrupt


def was_interrupted() -> bool:
    """Whether an interrupt was raised: library code cleaning up after it may raise something else in its place
    (numpy's savez closing its zip file: "seek of closed file"), which is still the interrupt."""
    return _interrupted


def _deliver_later(signum: int) -> None:
    retry = threading.Timer(0.05, os.kill, (os.getpid(), signum))
    retry.daemon = True
    retry.start()


def _unraisable(hook_args) -> None:
    """An interrupt that fell into a finalizer (where Python prints and drops exceptions) is delivered again. After
    an interrupt, a finalizer's error is one of an object the interrupt left half built (a ZipFile interrupted in
    its constructor has no `_writing` when it is collected): the command is on its way out with its one line, so
    the error is dropped, not printed as a traceback."""
    if isinstance(hook_args.exc_value, KeyboardInterrupt):
        _deliver_later(signal.SIGINT)
        return
    if _interrupted:
        return
    sys.__unraisablehook__(hook_args)


def interrupt_as_exception() -> None:
    """SIGINT and SIGTERM raise KeyboardInterrupt, so every `finally` runs (the CLI installs this first); an
    import in progress finishes first, and one that falls into a finalizer is raised again after it."""
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    sys.unraisablehook = _unraisable


def stop_interrupts() -> None:
    """The command is done or undone: from here on SIGINT and SIGTERM are ignored (a retry still pending from
    an import too), so leaving can print nothing more."""
    global _exiting
    _exiting = True
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
