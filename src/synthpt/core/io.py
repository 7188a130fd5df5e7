"""Crash-safe file I/O for examples, splits and results.

Experiments run for hours and get killed (preemption, full disks, Ctrl-C).  A half-written
``train.jsonl`` or ``results.json`` that looks complete would silently corrupt every later
step, so every whole-file write goes to a temporary file in the same directory, is fsynced
and then renamed over the target with :func:`os.replace` (atomic on POSIX).  Either the old
file or the complete new one exists, never a torn one.  Any ``OSError`` (ENOSPC, EACCES, ...)
becomes one :class:`~synthpt.core.errors.SynthptError` line naming the path.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO, Any

from synthpt.core.errors import fail, first_line


def _oserror(path: Path, action: str, e: OSError) -> Exception:
    reason = e.strerror or str(e)
    return fail(f"{path}: cannot {action} ({reason})")


def decode_utf8(path: Path, data: bytes) -> str:
    """Decode UTF-8 (a leading BOM is dropped) or fail naming the line of the first bad byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        bad = data[e.start : e.start + 1].hex()
        raise fail(f"{path}: not UTF-8 text (byte 0x{bad} at line {line}); re-save the file as UTF-8") from None


def read_text(path: str | Path) -> str:
    """The whole file as text, with clear errors for a missing, unreadable or non-UTF-8 file."""
    p = Path(path)
    if not p.exists():
        raise fail(f"{p}: file not found")
    if not p.is_file():
        raise fail(f"{p}: not a file")
    try:
        data = p.read_bytes()
    except OSError as e:
        raise _oserror(p, "read file", e) from None
    return decode_utf8(p, data)


def read_jsonl_numbered(path: str | Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs of a JSON-lines file, so callers can name the line of a bad row."""
    p = Path(path)
    text = read_text(p)
    rows: list[tuple[int, dict[str, Any]]] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise fail(f"{p}: line {lineno}: invalid JSON ({e.msg} at column {e.colno})") from None
        if not isinstance(row, dict):
            raise fail(f"{p}: line {lineno}: expected a JSON object, got {type(row).__name__}")
        rows.append((lineno, row))
    if not rows:
        raise fail(f"{p}: file is empty (no JSON lines)")
    return rows


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file (one object per line; blank lines are skipped)."""
    return [row for _, row in read_jsonl_numbered(path)]


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable; best effort, some filesystems refuse directory fsync."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _target_mode(path: Path) -> int:
    """Keep an existing file's permissions; new files get the umask default (mkstemp uses 0600)."""
    try:
        return path.stat().st_mode & 0o777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextlib.contextmanager
def atomic_writer(path: str | Path, mode: str = "w") -> Iterator[IO[Any]]:
    """An open file whose content appears at ``path`` only when the block ends without error.

    It is a temp file in the same directory, fsynced and renamed over ``path`` at the end; an
    exception (a bad row, Ctrl-C, a full disk) removes it and leaves ``path`` as it was.  For
    outputs written in pieces (``synthpt predict`` streams its rows into one)."""
    p = Path(path)
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _oserror(p.parent, "create directory", e) from None
    if p.is_dir():
        raise fail(f"{p}: is a directory, cannot write a file there")
    tmp: str | None = None
    in_body = False
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
        with os.fdopen(fd, mode, **({} if "b" in mode else {"encoding": "utf-8"})) as fh:
            in_body = True
            yield fh
            in_body = False
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _target_mode(p))
        os.replace(tmp, p)
        tmp = None
    except OSError as e:
        if in_body:  # the caller's own error (reading its input, say): theirs to report
            raise
        raise _oserror(p, "write file", e) from None
    finally:
        if tmp is not None:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
    _fsync_dir(p.parent)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically: temp file in the same dir, fsync, rename."""
    with atomic_writer(path, "wb") as fh:
        fh.write(data)


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """``torch.save`` atomically (checkpoints): serialised in memory, then :func:`atomic_write_bytes`,
    so a kill or a full disk leaves the previous checkpoint, never a torn one."""
    import io

    import torch

    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def atomic_save_safetensors(path: str | Path, tensors: dict[str, Any], metadata: dict[str, str] | None = None) -> None:
    """Write tensors as a safetensors file atomically: serialised in memory, then
    :func:`atomic_write_bytes` (the one safetensors writer of synthpt: prompts, label prompts, weight net)."""
    from safetensors.torch import save

    atomic_write_bytes(path, save({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, metadata=metadata))


def load_safetensors(path: str | Path) -> dict[str, Any]:
    """The tensors of a safetensors file; one clear line for a torn or foreign file."""
    from safetensors.torch import load_file

    try:
        return load_file(str(path))
    except Exception as e:  # safetensors raises several error types for torn files
        raise fail(f"{path}: corrupt safetensors file ({first_line(e)})") from None


def read_json_object(path: str | Path, what: str, hint: str = "") -> dict[str, Any]:
    """A JSON file that must hold one object (a record, a state, a config); otherwise one line:
    ``PATH: WHAT (why); HINT``."""
    p = Path(path)
    tail = f"; {hint}" if hint else ""
    try:
        obj = json.loads(read_text(p))
    except json.JSONDecodeError as e:
        raise fail(f"{p}: {what} (invalid JSON: {e.msg} at line {e.lineno}){tail}") from None
    if not isinstance(obj, dict):
        raise fail(f"{p}: {what} (not a JSON object){tail}")
    return obj


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write UTF-8 ``text`` atomically (see :func:`atomic_write_bytes`)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def _jsonl(rows: Iterable[dict[str, Any]]) -> str:
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Write rows as JSON lines atomically; serialised first so a bad row leaves no file."""
    atomic_write_text(path, _jsonl(rows))


def write_json(path: str | Path, obj: Any) -> None:
    """Write pretty JSON atomically (results, metadata, configs)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")


def append_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    """Append rows and fsync, for chunked writes (e.g. generation checkpoints).

    On failure the file is truncated back to its previous size, so a reader never sees a
    partial last line from this call.
    """
    p = Path(path)
    data = _jsonl(rows).encode("utf-8")
    if not data:
        return
    try:
        p.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise _oserror(p.parent, "create directory", e) from None
    try:
        fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as e:
        raise _oserror(p, "open file for appending", e) from None
    try:
        start = os.fstat(fd).st_size
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        except OSError as e:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, start)
            raise _oserror(p, "append to file", e) from None
    finally:
        os.close(fd)


def path_in_out(path: str | Path, out: Path) -> str | None:
    """``path`` as a reader of the output folder ``out`` reaches it, or None when it lies outside.

    Inside ``out`` it is ``out``-relative; inside the folder ``out/cache`` points to it is ``cache/...`` even
    when that link leads to a cache shared by several output folders (resolving both sides would put it outside
    ``out``).  Records and report links store this form so an output folder can move.
    """
    p = Path(path).resolve()
    cache = (out / "cache").resolve()
    if p.is_relative_to(cache):
        return (Path("cache") / p.relative_to(cache)).as_posix()
    if p.is_relative_to(out.resolve()):
        return p.relative_to(out.resolve()).as_posix()
    return None
