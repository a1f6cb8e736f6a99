"""The sources a spec names (`resolve_source`): the embedded subset and other .npz files, CIFAR-10's
python batches (read with a restricted unpickler), class-folder trees and their archives."""

from __future__ import annotations

import os
import pickle
import tarfile
import zipfile
import zlib
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from .base import (
    CIFAR10_BATCHES,
    DEFAULT_NAME,
    DEFAULT_RESOURCE,
    IMAGE_SIZE,
    SPEC_HELP,
    DatasetError,
)
from .listing import ArrayReader, BlobReader, Listing, Source
from .trees import folder_source, inflated_tar, tar_source

_NPZ_KEYS = ("jpeg", "offsets", "labels", "split", "names", "classes")


def _npz_source(path: Path | None) -> Source:
    """The embedded subset (path None) or another file written by `build_default_subset`."""
    ref: Traversable
    if path is None:
        origin = f"prp.trainer/{DEFAULT_RESOURCE}"
        ref = resources.files("prp.trainer").joinpath(DEFAULT_RESOURCE)
        if not ref.is_file():
            raise DatasetError(
                f"the embedded data set {origin} is missing from this installation; reinstall "
                f"prp-nas, or rebuild it with `python -m prp.trainer.datasets make-default --tar "
                f"cifar10_jpg.tar.gz`"
            )
    else:
        origin, ref = str(path), path
    try:
        with ref.open("rb") as f:
            npz = np.load(f, allow_pickle=False)
            if not isinstance(npz, np.lib.npyio.NpzFile):
                raise DatasetError(f"{origin} is a single .npy array, not a data set file")
            with npz:
                missing = [k for k in _NPZ_KEYS if k not in npz.files]
                if missing:
                    raise DatasetError(
                        f"{origin} is not a data set file made by `make-default` (it lacks "
                        f"{', '.join(missing)}); {SPEC_HELP}"
                    )
                arrays = {k: npz[k] for k in _NPZ_KEYS}
    except (OSError, ValueError, zlib.error, zipfile.BadZipFile) as e:
        if isinstance(e, DatasetError):
            raise
        raise DatasetError(f"cannot read data set file {origin} ({e}); rebuild it") from None

    jpeg, offsets = arrays["jpeg"], arrays["offsets"].astype(np.int64)
    names = [str(n) for n in arrays["names"]]
    labels = arrays["labels"].astype(np.int64)

    def make(in_split: np.ndarray) -> Listing:
        rows = np.flatnonzero(in_split)
        split_names = [names[r] for r in rows]
        return Listing(split_names, labels[rows], BlobReader(jpeg, offsets, rows), origin)

    classes = tuple(str(c) for c in arrays["classes"])
    return Source(origin, classes, make(arrays["split"] == 0), make(arrays["split"] == 1))


class _ArrayUnpickler(pickle.Unpickler):
    """Admits numpy arrays and plain containers only: a CIFAR batch needs no more, and a pickle
    from elsewhere could otherwise run arbitrary code while loading."""

    ALLOWED = {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy.core.multiarray", "scalar"),
        ("numpy._core.multiarray", "scalar"),
        ("numpy.core.numeric", "_frombuffer"),
        ("numpy._core.numeric", "_frombuffer"),
        ("_codecs", "encode"),
    }

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self.ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name} from a data file")
        return super().find_class(module, name)


def _unpickle(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            # encoding="bytes": the official batches were pickled by Python 2.
            loaded = _ArrayUnpickler(f, encoding="bytes").load()
    except FileNotFoundError:
        raise DatasetError(
            f"{path.parent} looks like CIFAR-10's python format but lacks {path.name}; "
            f"extract the whole cifar-10-python.tar.gz again"
        ) from None
    except Exception as e:  # a damaged pickle can fail in many ways; all mean the same here
        raise DatasetError(
            f"cannot read CIFAR-10 batch {path} ({type(e).__name__}: {e}); extract the whole "
            f"cifar-10-python.tar.gz again"
        ) from None
    if not isinstance(loaded, dict):
        raise DatasetError(f"{path} holds a {type(loaded).__name__}, not a CIFAR-10 batch dict")
    return {k.decode() if isinstance(k, bytes) else str(k): v for k, v in loaded.items()}


def _text(value: object) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _cifar_batch(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    batch = _unpickle(path)
    if "data" not in batch or "labels" not in batch:
        hint = " (CIFAR-100 is not supported)" if "fine_labels" in batch else ""
        raise DatasetError(
            f"{path} is not a CIFAR-10 batch{hint}: it lacks 'data' or 'labels'; keys are "
            f"{', '.join(sorted(batch))}"
        )
    data = np.asarray(batch["data"])
    labels = np.asarray(batch["labels"], dtype=np.int64)
    n = len(labels)
    if data.dtype != np.uint8 or data.shape != (n, 3 * IMAGE_SIZE * IMAGE_SIZE):
        raise DatasetError(
            f"{path}: 'data' is {data.dtype} {list(data.shape)} but CIFAR-10 batches hold uint8 "
            f"[{n}, {3 * IMAGE_SIZE * IMAGE_SIZE}] (one 32x32 RGB image per row, channels first)"
        )
    if n and not 0 <= labels.min() <= labels.max() < num_classes:
        raise DatasetError(f"{path}: labels outside [0, {num_classes}) of batches.meta")
    images = data.reshape(n, 3, IMAGE_SIZE, IMAGE_SIZE).transpose(0, 2, 3, 1)
    names = [_text(x) for x in batch.get("filenames", [])]
    if len(names) != n:
        names = [f"{path.name}[{i}]" for i in range(n)]
    return np.ascontiguousarray(images), labels, names


def _cifar_source(folder: Path) -> Source:
    meta = _unpickle(folder / "batches.meta")
    classes = tuple(_text(c) for c in meta.get("label_names", []))
    if len(classes) < 2:
        raise DatasetError(f"{folder}/batches.meta lists no 'label_names'; extract it again")

    def make(files: list[str]) -> Listing:
        # The batches are raw pixels in a pickle, with no per-image offsets to seek to: they
        # are read whole (150 MB for the 50,000 train images), then served image by image.
        parts = [_cifar_batch(folder / f, len(classes)) for f in files]
        return Listing(
            [n for p in parts for n in p[2]],
            np.concatenate([p[1] for p in parts]),
            ArrayReader(np.concatenate([p[0] for p in parts])),
            str(folder),
        )

    train = make([f"data_batch_{i}" for i in range(1, 6)])
    return Source(str(folder), classes, train, make(["test_batch"]))


def resolve_source(spec: str | Path | None, inflate: bool = False) -> Source:
    """The source `spec` names; `inflate`: read a compressed archive through `inflated_tar`."""
    if spec is None or (isinstance(spec, str) and spec == DEFAULT_NAME):
        return _npz_source(None)
    path = Path(spec).expanduser()
    if not path.exists():
        text = str(spec)
        if isinstance(spec, str) and "/" not in text and os.sep not in text and not path.suffix:
            raise DatasetError(
                f"unknown data set {text!r} (no file or folder of that name exists either); "
                f"{SPEC_HELP}"
            )
        raise DatasetError(f"data set path {path} does not exist; {SPEC_HELP}")
    if path.is_dir():
        if (path / "batches.meta").is_file():
            return _cifar_source(path)
        if (path / CIFAR10_BATCHES / "batches.meta").is_file():
            return _cifar_source(path / CIFAR10_BATCHES)
        return folder_source(path)
    if path.suffix.lower() == ".npz":
        return _npz_source(path)
    if tarfile.is_tarfile(path):
        return tar_source(path, inflated_tar(path) if inflate else path)
    raise DatasetError(f"{path} is a file but neither a tar archive nor an .npz; {SPEC_HELP}")
