"""The bundle folder, safely: refuse an `--out` whose replacement would lose data, clean up after
killed exports, and move a finished bundle into place atomically."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from prp.runtime.bundle import MANIFEST

from ..errors import ExportError

# Folders an export makes beside its bundle: `.NAME.tmp-PID` while writing, `.NAME.old-PID`
# while swapping an old bundle out. A killed export leaves them; the next export removes them
# once PID is no live process and they hold nothing but files an export writes.
_LEFTOVER = re.compile(r"\.(?P<name>.+)\.(?:tmp|old)-(?P<pid>[1-9][0-9]{0,9})")
_EXPORT_FILE = re.compile(
    r"manifest\.json|supernet\.pte|weights\.bin|path_[0-9]+\.onnx|export\.log"
    r"|\.(?:manifest\.json|export\.log)\.\w+\.tmp"
)
# prp-export's log of third-party output, written into the bundle after it is in place: not a
# file any backend reads, so not in the manifest's `files` (which it could not be hashed into).
EXPORT_LOG = "export.log"


def _project_manifest(d: Path) -> dict[str, Any] | None:
    """`d/manifest.json` when it is a manifest of this project (schema version, files, paths)."""
    try:
        data = json.loads((d / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if (
        isinstance(data, dict)
        and isinstance(data.get("schema_version"), int)
        and isinstance(data.get("files"), dict)
        and isinstance(data.get("paths"), list)
    ):
        return data
    return None


def _foreign_entries(d: Path) -> list[str]:
    """Entries of folder `d` that no export wrote: anything but plain files named as export
    files or listed in `d`'s own manifest (an older bundle may have other file names)."""
    manifest = _project_manifest(d)
    listed = set(manifest["files"]) if manifest else set()
    return sorted(
        e.name
        for e in d.iterdir()
        if e.is_symlink()
        or not e.is_file()
        or not (e.name in listed or _EXPORT_FILE.fullmatch(e.name))
    )


def remove_export_folder(d: Path) -> bool:
    """Delete folder `d` if it holds only files an export writes; False (and `d` untouched)
    if it holds anything else or cannot be removed."""
    try:
        if d.is_symlink() or not d.is_dir() or _foreign_entries(d):
            return False
        for e in d.iterdir():
            e.unlink()
        d.rmdir()
    except OSError:
        return False
    return True


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` runs (or may run: where unsure, it counts as alive)."""
    if pid == os.getpid() or os.name != "posix":  # Windows' os.kill would terminate it
        return True
    try:
        os.kill(pid, 0)  # signal 0: existence check only
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, OSError):
        return True
    return True


def remove_stale_leftovers(parent: Path) -> list[str]:
    """Remove the `.NAME.tmp-PID` / `.NAME.old-PID` folders of killed exports in `parent`;
    returns their names. Folders of live PIDs, or holding anything an export does not
    write, are left alone."""
    if not parent.is_dir():
        return []
    removed = []
    for e in sorted(parent.iterdir()):
        m = _LEFTOVER.fullmatch(e.name)
        if m and not _pid_alive(int(m["pid"])) and remove_export_folder(e):
            removed.append(e.name)
    return removed


def check_out(out: Path, run_dir: Path) -> None:
    """Refuse an `--out` whose replacement would lose data: the run being exported or a folder
    above it (or above the current folder), a file, a link, or a folder that is neither empty
    nor a bundle of this project holding only its own files."""
    real_out, real_run, cwd = out.resolve(), run_dir.resolve(), Path.cwd().resolve()
    if real_out == real_run or real_out in real_run.parents:
        what = "is" if real_out == real_run else "holds"
        raise ExportError(
            f"--out {out} {what} the run {run_dir} being exported, and would be replaced by the "
            f"bundle; choose another --out, e.g. exported/{real_run.name}"
        )
    if real_out == cwd or real_out in cwd.parents:
        raise ExportError(f"--out {out} is the current folder or above it; choose another --out")
    if out.is_symlink():
        raise ExportError(f"--out {out} is a symbolic link; give the folder itself instead")
    above = next(p for p in out.parents if p.exists())
    if not above.is_dir():
        raise ExportError(f"--out {out}: {above} is a file, not a folder; choose another --out")
    if not out.exists():
        return
    if not out.is_dir():
        raise ExportError(f"--out {out} exists and is not a folder; choose another --out")
    if not any(out.iterdir()):
        return
    if _project_manifest(out) is None:
        raise ExportError(
            f"--out {out} is a folder that is neither empty nor a bundle (no manifest.json of "
            f"prp-export); exporting would replace it: choose another --out"
        )
    foreign = _foreign_entries(out)
    if foreign:
        shown = ", ".join(foreign[:5]) + (
            f" and {len(foreign) - 5} more" if len(foreign) > 5 else ""
        )
        raise ExportError(
            f"--out {out} holds a bundle and also {shown}, which prp-export did not write; "
            f"move them away or choose another --out"
        )


def move_into_place(tmp: Path, out: Path, run_dir: Path) -> None:
    """Rename `tmp` onto `out`; an existing bundle there is replaced only once `tmp` is whole,
    and only if `out` still passes `_check_out` (the folder may have changed meanwhile)."""
    check_out(out, run_dir)
    if not out.exists():
        out.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, out)
        return
    old = out.parent / f".{out.name}.old-{os.getpid()}"
    if (old.exists() or old.is_symlink()) and not remove_export_folder(old):
        raise ExportError(f"{old} exists and holds files prp-export does not write; move it away")
    os.replace(out, old)
    try:
        os.replace(tmp, out)
    except BaseException:
        os.replace(old, out)  # the old bundle goes back: nothing is lost
        raise
    remove_export_folder(old)  # only export files, as `_check_out` found; else it is kept
