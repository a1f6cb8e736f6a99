"""Class-folder trees, as folders or tar archives: their layout (`arrange_tree`), the listing
of a folder, the header index of an archive, and the inflated copy a compressed archive is
read through."""

from __future__ import annotations

import hashlib
import lzma
import os
import shutil
import tarfile
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath

import numpy as np
from prp.runtime.files import atomic_path

from .base import CACHE_ENV, IMAGE_SUFFIXES, SPEC_HELP, DatasetError, cache_dir
from .listing import FileReader, Listing, Reader, Source, TarReader, decompressor


def _is_hidden(part: str) -> bool:
    return part.startswith(".") or part == "__MACOSX"


def _image_paths(paths: Sequence[str]) -> list[PurePosixPath]:
    """The image files among relative paths, skipping hidden files and folders."""
    found = []
    for path in paths:
        p = PurePosixPath(path)
        parts = [q for q in p.parts if q not in ("", ".")]
        if not parts or any(_is_hidden(q) for q in parts):
            continue
        if p.suffix.lower() in IMAGE_SUFFIXES:
            found.append(PurePosixPath(*parts))
    return found


def arrange_tree(
    paths: Sequence[str], where: str
) -> tuple[tuple[str, ...], list[tuple[str, int]], list[tuple[str, int]] | None]:
    """Finds the layout of a tree of images: its classes and (name, label) of train and test,
    each sorted by class then file name. A folder wrapping the whole tree is looked through."""
    images = _image_paths(paths)
    if not images:
        raise DatasetError(
            f"no images in {where} (looked for {', '.join(IMAGE_SUFFIXES)} files in class "
            f"sub-folders); {SPEC_HELP}"
        )
    skip = 0  # leading folders that wrap the whole tree, e.g. cifar10/train/cat/0.jpg
    while all(len(p.parts) >= skip + 3 for p in images):
        heads = {p.parts[skip] for p in images}
        if len(heads) != 1 or heads & {"train", "test"}:
            break
        skip += 1
    rel = {p: p.parts[skip:] for p in images}

    split_layout = any(len(r) == 3 and r[0] in ("train", "test") for r in rel.values())
    groups: dict[str, dict[str, list[str]]] = {}  # split -> class -> names
    for p, r in rel.items():
        if split_layout:
            if len(r) != 3 or r[0] not in ("train", "test"):
                raise DatasetError(
                    f"{where}/{p} is out of place: beside train/ and test/ folders every image "
                    f"must be at train/<class>/<image> or test/<class>/<image>; move or remove it"
                )
            split, label = r[0], r[1]
        else:
            if len(r) == 1 and all(len(q) == 1 for q in rel.values()):
                raise DatasetError(
                    f"{where} has images but no class sub-folders (e.g. {p}); put each class's "
                    f"images in a sub-folder named after the class: <class>/<image>"
                )
            if len(r) == 1:
                raise DatasetError(
                    f"image {where}/{p} lies outside any class sub-folder; move it into the "
                    f"folder of its class, or remove it"
                )
            if len(r) != 2:
                raise DatasetError(
                    f"{where}/{p} is nested too deep; images must be at <class>/<image> or "
                    f"train/<class>/<image> and test/<class>/<image>"
                )
            split, label = "train", r[0]
        groups.setdefault(split, {}).setdefault(label, []).append(str(p))

    if split_layout and set(groups) != {"train", "test"}:
        missing = ({"train", "test"} - set(groups)).pop()
        raise DatasetError(
            f"{where} has {', '.join(sorted(groups))}/ but no images in {missing}/<class>/; add "
            f"the {missing} split, or put the class folders directly in {where} to have the test "
            f"split carved off"
        )
    classes = tuple(sorted(groups["train"]))
    if "test" in groups and set(groups["test"]) != set(classes):
        only_train = sorted(set(classes) - set(groups["test"])) or ["none"]
        only_test = sorted(set(groups["test"]) - set(classes)) or ["none"]
        raise DatasetError(
            f"train and test class folders differ in {where}: only in train: "
            f"{', '.join(only_train)}; only in test: {', '.join(only_test)}; give both splits the "
            f"same class sub-folders"
        )
    if len(classes) < 2:
        raise DatasetError(
            f"{where} has a single class folder ({classes[0]}); a classifier needs at least two "
            f"class sub-folders"
        )

    def listing(split: str) -> list[tuple[str, int]]:
        by_class = groups[split]
        return [(n, k) for k, c in enumerate(classes) for n in sorted(by_class[c])]

    return classes, listing("train"), (listing("test") if "test" in groups else None)


def _tree_source(
    origin: str, paths: Sequence[str], reader: Callable[[list[str]], Reader], where: str
) -> Source:
    """A class-folder tree's source; `reader(names)` reads those images by position."""
    classes, train, test = arrange_tree(paths, where)

    def make(items: list[tuple[str, int]]) -> Listing:
        names = [n for n, _ in items]
        return Listing(names, np.array([k for _, k in items], dtype=np.int64), reader(names), where)

    return Source(origin, classes, make(train), make(test) if test is not None else None)


def folder_source(root: Path) -> Source:
    paths: list[str] = []

    def walk(folder: Path, prefix: str, depth: int) -> None:
        # Bounded depth: the deepest layout is wrapper/train/<class>/<image>.
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            raise DatasetError(f"cannot list folder {folder}: {e}") from None
        for entry in entries:
            if _is_hidden(entry.name):
                continue
            if entry.is_dir():
                if depth < 4:
                    walk(Path(entry.path), f"{prefix}{entry.name}/", depth + 1)
            elif entry.is_file():
                paths.append(prefix + entry.name)

    walk(root, "", 1)
    return _tree_source(str(root), paths, lambda names: FileReader(root, names), str(root))


def tar_index(path: Path) -> dict[str, tuple[int, int]]:
    """(offset of its data, size) of every image member, by normalised name, in one pass over
    the headers (an uncompressed tar is read header by header, skipping the data)."""
    spans: dict[str, tuple[int, int]] = {}
    try:
        with tarfile.open(path, mode="r:*") as archive:
            while (member := archive.next()) is not None:
                # TarFile keeps every member it has read; dropping them keeps the index's
                # memory at two integers and a name per image (ImageNet: 1.28 M members).
                archive.members.clear()  # type: ignore[attr-defined]
                if member.isfile() and PurePosixPath(member.name).suffix.lower() in IMAGE_SUFFIXES:
                    # Member names may carry a leading './'; arrange_tree works on the normal form.
                    parts = [q for q in PurePosixPath(member.name).parts if q != "."]
                    spans[str(PurePosixPath(*parts))] = (member.offset_data, member.size)
    except (tarfile.TarError, EOFError, zlib.error, lzma.LZMAError, OSError) as e:
        raise DatasetError(
            f"cannot read archive {path} ({e}); check it is a whole .tar or .tar.gz file"
        ) from None
    return spans


def tar_source(path: Path, data: Path) -> Source:
    """The archive `path`, read from `data` (itself, or its inflated copy)."""
    spans = tar_index(data)

    def reader(names: list[str]) -> TarReader:
        table = np.array([spans[n] for n in names], dtype=np.int64).reshape(len(names), 2)
        return TarReader(data, names, table)

    return _tree_source(str(path), list(spans), reader, str(path))


def inflated_tar(path: Path) -> Path:
    """A compressed archive inflated once to a plain tar in the cache folder (`$PRP_DATA_CACHE`,
    else ~/.cache/prp-nas), keyed by the archive's path, size and modification time; `path`
    itself when it is not compressed. Streamed through in 1 MB pieces, written atomically."""
    opener = decompressor(path)
    if opener is None:
        return path
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    out = cache_dir() / f"{path.name.split('.')[0]}-{key.hexdigest()[:16]}.tar"
    if not out.is_file():
        try:
            with opener(path) as src, atomic_path(out) as tmp, open(tmp, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except (OSError, EOFError, zlib.error, lzma.LZMAError) as e:
            raise DatasetError(
                f"cannot inflate archive {path} into {out.parent} ({e}); check the archive is "
                f"whole and the folder writable (set {CACHE_ENV} to another folder)"
            ) from None
    return out
