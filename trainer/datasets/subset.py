"""The embedded default subset (`build_default_subset`) and the command line
`python -m prp.trainer.datasets {make-default, show}`."""

from __future__ import annotations

import argparse
import hashlib
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from prp.runtime.files import write_atomic

from ..errors import PRPError
from .base import DEFAULT_NAME, DEFAULT_SUBSET_PATH, IMAGE_SIZE, DatasetError
from .listing import TarReader, blob_image_size, fit_image
from .splits import first_per_class, load_dataset
from .trees import arrange_tree, tar_index


def build_default_subset(
    tar_path: str | Path,
    out_path: str | Path,
    train_per_class: int = 500,
    test_per_class: int = 100,
    train_skip_per_class: int = 0,
) -> Path:
    """Writes the default data set file from a .tar.gz of train/<class>/ and test/<class>/ JPEGs.

    Takes the first `train_per_class` and `test_per_class` images of each class by file name and
    stores their original bytes (no re-encoding) with labels, split (0 train, 1 test), names and
    classes in one compressed .npz. `train_skip_per_class` skips the first that many train
    images of each class first: with 500, a set disjoint from the embedded default subset (for
    training a supernet to ship, whose estimates the default run then reads on its own images).
    Every image is decoded once as a check. The file is written to
    a temporary name and renamed into place, so a failure leaves no partial file.
    """
    tar_path, out_path = Path(tar_path), Path(out_path)
    if not tar_path.is_file():
        raise DatasetError(f"archive {tar_path} does not exist; give the CIFAR-10 JPEG .tar.gz")
    spans = tar_index(tar_path)
    classes, train, test = arrange_tree(list(spans), str(tar_path))
    if test is None:
        raise DatasetError(f"{tar_path} has no test/<class>/ folders; the default set needs both")

    if train_skip_per_class < 0:
        raise DatasetError(f"train_skip_per_class must be >= 0, got {train_skip_per_class}")
    rows: list[tuple[str, int, int]] = []  # (name, label, split)
    for split, items, per_class, skip in (
        (0, train, train_per_class, train_skip_per_class),
        (1, test, test_per_class, 0),
    ):
        labels = np.array([k for _, k in items], dtype=np.int64)
        for k, c in enumerate(classes):
            have = int((labels == k).sum())
            if have < skip + per_class:
                raise DatasetError(
                    f"{tar_path}: class {c} has {have} {('train', 'test')[split]} images, fewer "
                    f"than the {per_class} asked for" + (f" after skipping {skip}" if skip else "")
                )
        taken = first_per_class(labels, skip + per_class)
        skipped = set(first_per_class(labels, skip).tolist()) if skip else set()
        for p in taken:
            if int(p) not in skipped:
                rows.append((items[p][0], int(labels[p]), split))

    names = [n for n, _, _ in rows]
    reader = TarReader(tar_path, names, np.array([spans[n] for n in names], dtype=np.int64))
    blobs: list[bytes] = [b""] * len(names)
    for i in np.argsort(reader.spans[:, 0]):  # archive order: the .tar.gz is inflated once
        blobs[i] = reader(int(i))
        fit_image(blobs[i], names[i], str(tar_path), IMAGE_SIZE)  # decodes it: a check
        if blob_image_size(blobs[i]) != (IMAGE_SIZE, IMAGE_SIZE):
            raise DatasetError(
                f"image {tar_path}/{names[i]} is not {IMAGE_SIZE}x{IMAGE_SIZE} pixels; the "
                f"default set stores CIFAR-10's own {IMAGE_SIZE}x{IMAGE_SIZE} JPEGs"
            )
    lengths = np.array([len(b) for b in blobs], dtype=np.int64)
    digest = hashlib.sha256(tar_path.read_bytes()).hexdigest()
    arrays: dict[str, Any] = {
        "jpeg": np.frombuffer(b"".join(blobs), dtype=np.uint8),
        "offsets": np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
        "labels": np.array([k for _, k, _ in rows], dtype=np.int64),
        "split": np.array([s for _, _, s in rows], dtype=np.uint8),
        "names": np.array(names),
        "classes": np.array(classes),
        "provenance": np.array(
            (
                f"train images {train_skip_per_class + 1}-"
                f"{train_skip_per_class + train_per_class} of each class"
                if train_skip_per_class
                else f"first {train_per_class} train"
            )
            + f" and {test_per_class} test images per class, by file name, of {tar_path.name} "
            f"(sha256 {digest}); original JPEG bytes"
        ),
    }
    write_atomic(out_path, lambda f: np.savez_compressed(f, **arrays), binary=True)
    return out_path


# Command line: python -m prp.trainer.datasets {make-default, show}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m prp.trainer.datasets", description="Build or inspect data sets."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make-default", help="write the embedded CIFAR-10 subset")
    make.add_argument("--tar", required=True, type=Path, help="CIFAR-10 JPEG .tar.gz")
    make.add_argument("--out", type=Path, default=DEFAULT_SUBSET_PATH, help="the .npz to write")
    make.add_argument("--train-per-class", type=int, default=500)
    make.add_argument("--test-per-class", type=int, default=100)
    make.add_argument(
        "--train-skip-per-class",
        type=int,
        default=0,
        help="skip the first N train images of each class (500: disjoint from the default set)",
    )
    show = commands.add_parser("show", help="load a data set and print its splits")
    show.add_argument("spec", nargs="?", default=DEFAULT_NAME)
    show.add_argument("--limit-per-class", type=int, default=None)
    args = parser.parse_args(argv)
    try:
        if args.command == "make-default":
            out = build_default_subset(
                args.tar,
                args.out,
                args.train_per_class,
                args.test_per_class,
                args.train_skip_per_class,
            )
            print(f"wrote {out} ({out.stat().st_size / 1e6:.2f} MB)")
        else:
            start = time.perf_counter()
            splits = load_dataset(args.spec, limit_per_class=args.limit_per_class)
            seconds = time.perf_counter() - start
            print(f"{splits.source}: {len(splits.classes)} classes, loaded in {seconds:.2f} s")
            for s in (splits.train, splits.val, splits.test):
                print(f"  {s.source}: {len(s)} images")
            print(f"  mean {tuple(round(v, 4) for v in splits.mean)}")
            print(f"  std  {tuple(round(v, 4) for v in splits.std)}")
    except PRPError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    return 0
