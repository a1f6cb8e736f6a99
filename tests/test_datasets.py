"""Data sets against real data: the embedded CIFAR-10 subset, the shared JPEG archive, and
CIFAR-10 batches, folder trees and archives written here; batching and augmentation in torch."""

from __future__ import annotations

import io
import pickle
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import shared_file
from PIL import Image
from prp.trainer.datasets import (
    DEFAULT_SUBSET_PATH,
    DatasetError,
    DataSplits,
    augment_batch,
    batches,
    build_default_subset,
    load_dataset,
    main,
    to_tensor,
)
from prp.trainer.errors import PRPError

CIFAR10_CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)


@pytest.fixture(scope="module")
def default() -> DataSplits:
    return load_dataset("default")


def random_images(n: int, seed: int, size: int = 32) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, size, size, 3), dtype=np.uint8)


def write_png(path: Path, pixels: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)  # PNG: lossless, so pixels read back exactly


def write_tree(root: Path, layout: dict[str, int], seed: int = 0) -> dict[str, np.ndarray]:
    """Writes `count` PNGs into each folder of `layout` ({"train/cat": 3, ...})."""
    written = {}
    for i, (folder, count) in enumerate(layout.items()):
        for j, pixels in enumerate(random_images(count, seed + i)):
            name = f"{folder}/{j:03d}.png"
            write_png(root / name, pixels)
            written[name] = pixels
    return written


# --- the embedded default -------------------------------------------------------------------


def test_default_file_is_small_and_shipped() -> None:
    assert DEFAULT_SUBSET_PATH.is_file()
    assert DEFAULT_SUBSET_PATH.stat().st_size <= 5_000_000
    pyproject = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert '"data/*.npz"' in pyproject


def test_default_splits_are_cifar10_and_balanced(default: DataSplits) -> None:
    assert default.classes == CIFAR10_CLASSES
    assert default.num_classes == 10
    assert (len(default.train), len(default.val), len(default.test)) == (4500, 500, 1000)
    assert default.train.class_counts().tolist() == [450] * 10
    assert default.val.class_counts().tolist() == [50] * 10
    assert default.test.class_counts().tolist() == [100] * 10
    for split in (default.train, default.val, default.test):
        assert split.images.dtype == np.uint8 and split.images.shape[1:] == (32, 32, 3)
        assert split.labels.dtype == np.int64
        assert split.classes == CIFAR10_CLASSES
    assert default.train.names[0] == "train/airplane/0000.jpg"
    assert default.test.names[-1] == "test/truck/0099.jpg"
    # None means the default too.
    again = load_dataset(None, limit_per_class=5)
    assert again.train.names == load_dataset("default", limit_per_class=5).train.names


def test_mean_and_std_are_per_channel_and_cifar_like(default: DataSplits) -> None:
    assert default.mean == pytest.approx((0.4914, 0.4822, 0.4465), abs=0.01)
    assert default.std == pytest.approx((0.2470, 0.2435, 0.2616), abs=0.01)
    pixels = default.train.images.reshape(-1, 3) / 255.0
    assert default.mean == pytest.approx(tuple(pixels.mean(axis=0)), abs=1e-9)
    assert default.std == pytest.approx(tuple(pixels.std(axis=0)), abs=1e-9)


def test_val_is_held_out_of_train_and_seeded(default: DataSplits) -> None:
    train, val = set(default.train.index.tolist()), set(default.val.index.tolist())
    assert not train & val
    assert train | val == set(range(5000))
    assert not set(default.train.names) & set(default.val.names)
    assert not set(default.train.names) & set(default.test.names)
    same = load_dataset("default", seed=0, limit_per_class=40)
    assert same.val.names == load_dataset("default", seed=0, limit_per_class=40).val.names
    other = load_dataset("default", seed=1, limit_per_class=40)
    assert other.val.names != same.val.names
    assert np.array_equal(other.val.class_counts(), same.val.class_counts())


def test_every_prefix_of_the_validation_split_is_class_balanced(default: DataSplits) -> None:
    # Accuracy estimates read the first eval_images validation images; in class order the first
    # half of CIFAR-10's held-out images would be classes 0-4 only.
    labels = default.val.labels
    for n in (10, 50, 250, len(labels)):
        assert np.bincount(labels[:n], minlength=10).tolist() == [n // 10] * 10
    # Within a class, images keep their listing order.
    for k in range(10):
        rows = default.val.index[labels == k]
        assert np.array_equal(rows, np.sort(rows))


def test_limit_per_class_caps_every_split() -> None:
    small = load_dataset("default", limit_per_class=30, val_fraction=0.2)
    assert small.train.class_counts().tolist() == [24] * 10
    assert small.val.class_counts().tolist() == [6] * 10
    assert small.test.class_counts().tolist() == [30] * 10
    assert load_dataset("default", val_fraction=0.0, limit_per_class=3).val.images.shape[0] == 0


def test_splits_are_read_only(default: DataSplits) -> None:
    with pytest.raises(ValueError):
        default.train.images[0, 0, 0, 0] = 1


# --- the shared archive ---------------------------------------------------------------------


def test_shared_archive_gives_the_default_subsets_pixels() -> None:
    tar = shared_file("cifar10/cifar10_jpg.tar.gz")
    from_tar = load_dataset(tar, limit_per_class=12)
    from_default = load_dataset("default", limit_per_class=12)
    assert from_tar.classes == CIFAR10_CLASSES
    for a, b in [
        (from_tar.train, from_default.train),
        (from_tar.val, from_default.val),
        (from_tar.test, from_default.test),
    ]:
        assert a.names == b.names  # the same files ...
        assert np.array_equal(a.images, b.images)  # ... the same JPEG bytes, the same pixels
        assert np.array_equal(a.labels, b.labels)
    assert from_tar.mean == from_default.mean


def test_default_subset_stores_the_archives_own_bytes() -> None:
    tar = shared_file("cifar10/cifar10_jpg.tar.gz")
    wanted = {"test/airplane/0000.jpg", "test/airplane/0099.jpg", "train/airplane/0000.jpg"}
    found = {}
    with tarfile.open(tar, "r|gz") as archive:
        for member in archive:  # the wanted files come early in the archive: stop there
            if member.name in wanted:
                f = archive.extractfile(member)
                assert f is not None
                found[member.name] = f.read()
                if len(found) == len(wanted):
                    break
    with np.load(DEFAULT_SUBSET_PATH) as npz:
        names, offsets, jpeg = list(npz["names"]), npz["offsets"], npz["jpeg"]
    for name, data in found.items():
        i = names.index(name)
        assert jpeg[offsets[i] : offsets[i + 1]].tobytes() == data


def test_build_default_subset_writes_atomically_and_reads_back(tmp_path: Path) -> None:
    tree = write_tree(
        tmp_path / "src", {f"{s}/{c}": 4 for s in ("train", "test") for c in ("cat", "dog")}
    )
    archive = tmp_path / "small.tar.gz"
    with tarfile.open(archive, "w:gz") as t:
        t.add(tmp_path / "src" / "train", arcname="train")
        t.add(tmp_path / "src" / "test", arcname="test")
    out = tmp_path / "out" / "subset.npz"
    assert build_default_subset(archive, out, train_per_class=3, test_per_class=2) == out
    assert [p.name for p in out.parent.iterdir()] == ["subset.npz"]  # no temporary file left
    cli = tmp_path / "cli.npz"
    args = ["--train-per-class", "3", "--test-per-class", "2"]
    assert main(["make-default", "--tar", str(archive), "--out", str(cli), *args]) == 0
    assert (
        cli.read_bytes() != b"" and load_dataset(cli).train.names == load_dataset(out).train.names
    )
    splits = load_dataset(out, val_fraction=0.0)
    assert splits.classes == ("cat", "dog")
    # Skipping the first image of each class gives a set disjoint from the one above.
    later = tmp_path / "later.npz"
    build_default_subset(
        archive, later, train_per_class=3, test_per_class=2, train_skip_per_class=1
    )
    later_names = load_dataset(later, val_fraction=0.0).train.names
    assert later_names == (
        "train/cat/001.png",
        "train/cat/002.png",
        "train/cat/003.png",
        "train/dog/001.png",
        "train/dog/002.png",
        "train/dog/003.png",
    )
    with pytest.raises(DatasetError, match="fewer than the 3 asked for after skipping 2"):
        build_default_subset(archive, later, train_per_class=3, train_skip_per_class=2)
    assert splits.train.names == (
        "train/cat/000.png",
        "train/cat/001.png",
        "train/cat/002.png",
        "train/dog/000.png",
        "train/dog/001.png",
        "train/dog/002.png",
    )
    for name, pixels in zip(splits.test.names, splits.test.images, strict=True):
        assert np.array_equal(pixels, tree[name])
    with pytest.raises(DatasetError, match="fewer than the 5 asked for"):
        build_default_subset(archive, out, train_per_class=5)
    assert [p.name for p in out.parent.iterdir()] == ["subset.npz"]


# --- CIFAR-10 python batches ----------------------------------------------------------------


def write_cifar_batches(folder: Path, per_batch: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A cifar-10-batches-py folder as the official one is laid out, with bytes keys as Python 2
    pickles load; returns the train+test images (HWC) and labels in file order."""
    folder.mkdir(parents=True)
    names = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]
    all_images, all_labels = [], []
    for k, name in enumerate(names):
        images = random_images(per_batch, 100 + k)
        labels = [(k + j) % 3 for j in range(per_batch)]
        batch = {
            b"batch_label": name.encode(),
            b"labels": labels,
            b"data": images.transpose(0, 3, 1, 2).reshape(per_batch, -1),
            b"filenames": [f"{name}_{j}.png".encode() for j in range(per_batch)],
        }
        (folder / name).write_bytes(pickle.dumps(batch, protocol=2))
        all_images.append(images)
        all_labels += labels
    meta = {b"label_names": [b"airplane", b"automobile", b"bird"], b"num_vis": 3072}
    (folder / "batches.meta").write_bytes(pickle.dumps(meta, protocol=2))
    return np.concatenate(all_images), np.array(all_labels)


def test_cifar_batches_read_back_exactly(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    images, labels = write_cifar_batches(folder)
    for spec in (folder, tmp_path, str(tmp_path)):  # the folder, or the folder that holds it
        splits = load_dataset(spec, val_fraction=0.0)
        assert splits.classes == ("airplane", "automobile", "bird")
        assert np.array_equal(splits.train.images, images[:20])
        assert np.array_equal(splits.train.labels, labels[:20])
        assert np.array_equal(splits.test.images, images[20:])
        assert splits.test.names[0] == "test_batch_0.png"
    held = load_dataset(folder, val_fraction=0.25)
    assert len(held.train) + len(held.val) == 20 and len(held.val) >= 3


def test_cifar_batches_refuse_code_and_name_missing_files(tmp_path: Path) -> None:
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar_batches(folder)
    (folder / "data_batch_3").unlink()
    with pytest.raises(DatasetError, match="lacks data_batch_3; extract the whole"):
        load_dataset(folder)

    class Payload:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (print, ("this must not run",))

    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": Payload()}))
    with pytest.raises(DatasetError, match="refusing to load builtins.print"):
        load_dataset(folder)


# --- folder trees and their archives --------------------------------------------------------


def test_folder_tree_with_train_and_test_reads_back(tmp_path: Path) -> None:
    layout = {"train/cat": 5, "train/dog": 4, "test/cat": 2, "test/dog": 3}
    written = write_tree(tmp_path, layout)
    (tmp_path / "train" / "cat" / "notes.txt").write_text("not an image")  # ignored
    (tmp_path / ".cache").mkdir()  # hidden: ignored
    splits = load_dataset(tmp_path, val_fraction=0.0)
    assert splits.classes == ("cat", "dog")
    assert splits.train.class_counts().tolist() == [5, 4]
    assert splits.test.class_counts().tolist() == [2, 3]
    for split in (splits.train, splits.test):
        for name, label, pixels in zip(split.names, split.labels, split.images, strict=True):
            assert np.array_equal(pixels, written[name])
            assert splits.classes[label] == name.split("/")[1]


def test_class_folders_alone_get_a_test_split_carved_off(tmp_path: Path) -> None:
    written = write_tree(tmp_path, {"cat": 12, "dog": 12, "eel": 7})
    splits = load_dataset(tmp_path, val_fraction=0.1, seed=3)
    assert splits.classes == ("cat", "dog", "eel")
    # The last sixth of each class by file name (at least one) is the test split.
    assert splits.test.names == (
        "cat/010.png",
        "cat/011.png",
        "dog/010.png",
        "dog/011.png",
        "eel/006.png",
    )
    everything = splits.train.names + splits.val.names + splits.test.names
    assert sorted(everything) == sorted(written)
    assert splits.val.class_counts().tolist() == [1, 1, 1]
    for name, pixels in zip(splits.val.names, splits.val.images, strict=True):
        assert np.array_equal(pixels, written[name])


def test_archive_of_a_folder_tree_matches_the_folder(tmp_path: Path) -> None:
    root = tmp_path / "pets"
    write_tree(root, {"train/cat": 3, "train/dog": 3, "test/cat": 2, "test/dog": 2})
    for suffix, mode in ((".tar.gz", "w:gz"), (".tar", "w")):
        archive = tmp_path / f"pets{suffix}"
        with tarfile.open(archive, mode) as t:
            t.add(root, arcname="pets")  # wrapped in a top folder, as archives often are
        from_tar, from_folder = load_dataset(archive), load_dataset(root)
        assert from_tar.classes == from_folder.classes
        assert [n.removeprefix("pets/") for n in from_tar.train.names] == list(
            from_folder.train.names
        )
        assert np.array_equal(from_tar.train.images, from_folder.train.images)
        assert np.array_equal(from_tar.test.images, from_folder.test.images)


# --- errors a user can act on ---------------------------------------------------------------


def test_missing_path_and_unknown_name(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"does not exist; give 'default'"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(DatasetError, match=r"unknown data set 'cifar100'.*give 'default'"):
        load_dataset("cifar100")
    text = tmp_path / "notes.txt"
    text.write_text("hello")
    with pytest.raises(DatasetError, match="neither a tar archive nor an .npz"):
        load_dataset(text)
    assert issubclass(DatasetError, PRPError)


def test_folders_without_classes_or_images(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no images in .*empty \(looked for .jpg"):
        load_dataset(tmp_path / "empty")
    write_tree(tmp_path / "flat", {".": 3})
    with pytest.raises(DatasetError, match="has images but no class sub-folders"):
        load_dataset(tmp_path / "flat")
    write_tree(tmp_path / "one", {"cat": 3})
    with pytest.raises(DatasetError, match="single class folder"):
        load_dataset(tmp_path / "one")
    write_tree(tmp_path / "half", {"train/cat": 2, "train/dog": 2})
    with pytest.raises(DatasetError, match="no images in test/<class>/"):
        load_dataset(tmp_path / "half")


def test_every_corrupt_image_is_named_in_one_line_or_left_out(tmp_path: Path) -> None:
    write_tree(tmp_path, {"cat": 3, "dog": 3})
    (tmp_path / "dog" / "001.png").write_bytes(b"this is not a png")
    jpeg = io.BytesIO()
    Image.fromarray(random_images(1, 0)[0]).save(jpeg, format="JPEG")
    (tmp_path / "dog" / "002.jpg").write_bytes(jpeg.getvalue()[:200])  # truncated
    with pytest.raises(DatasetError) as caught:
        load_dataset(tmp_path)
    text = str(caught.value)
    assert text.startswith(f"2 images of {tmp_path} cannot be decoded: ") and "\n" not in text
    assert "dog/001.png (cannot identify image file)" in text and "dog/002.jpg (" in text
    assert "replace or remove them, or add --skip-bad-images" in text
    kept = load_dataset(tmp_path, skip_bad_images=True)
    assert sorted(b.name for b in kept.left_out) == ["dog/001.png", "dog/002.jpg"]
    names = kept.train.names + kept.val.names + kept.test.names
    assert len(names) == 5 and not {"dog/001.png", "dog/002.jpg"} & set(names)  # 7 - 2
    # A JPEG cut past its header passes the check: left out and listed, as training skips it.
    for name in ("dog/001.png", "dog/002.jpg"):
        (tmp_path / name).unlink()
    (tmp_path / "dog" / "003.jpg").write_bytes(jpeg.getvalue()[: len(jpeg.getvalue()) * 2 // 3])
    cut = load_dataset(tmp_path)
    assert [(b.name, "truncated" in b.reason) for b in cut.left_out] == [("dog/003.jpg", True)]
    assert len(cut.train) + len(cut.val) + len(cut.test) == 5  # 6 files, one cut


def test_images_of_any_size_are_resized_and_center_cropped(tmp_path: Path) -> None:
    written = write_tree(tmp_path, {"cat": 3, "dog": 3})
    # 48 x 64: blue, with red bands at the sides that the center crop must drop. Resized to
    # shorter side round(32 / 0.875) = 37, the crop keeps columns 10.4 to 52 of the original.
    wide = np.zeros((48, 64, 3), dtype=np.uint8)
    wide[:, :, 2] = 255
    wide[:, :8] = wide[:, 56:] = (255, 0, 0)
    write_png(tmp_path / "dog" / "009.png", wide)
    splits = load_dataset(tmp_path, val_fraction=0.0)
    assert splits.test.names[-1] == "dog/009.png"  # the last of its class: test split
    assert splits.test.images.shape[1:] == (32, 32, 3)
    assert (splits.test.images[-1] == (0, 0, 255)).all()
    for name, pixels in zip(splits.train.names, splits.train.images, strict=True):
        assert np.array_equal(pixels, written[name])  # already 32 x 32: kept exactly
    larger = load_dataset(tmp_path, val_fraction=0.0, image_size=64)
    assert larger.train.images.shape[1:] == (64, 64, 3)
    with pytest.raises(DatasetError, match="image_size must be a whole number of pixels >= 8"):
        load_dataset(tmp_path, image_size=4)


def test_train_and_test_classes_must_match(tmp_path: Path) -> None:
    write_tree(tmp_path, {"train/cat": 2, "train/dog": 2, "test/cat": 1, "test/eel": 1})
    with pytest.raises(DatasetError, match="only in train: dog; only in test: eel"):
        load_dataset(tmp_path)


def test_bad_arguments() -> None:
    with pytest.raises(DatasetError, match=r"val_fraction must be in \[0, 1\), got 1.0"):
        load_dataset("default", val_fraction=1.0)
    with pytest.raises(DatasetError, match="limit_per_class must be at least 1"):
        load_dataset("default", limit_per_class=0)


# --- tensors and batches --------------------------------------------------------------------


def test_to_tensor_normalises_per_channel(default: DataSplits) -> None:
    x = to_tensor(default.train.images, default.mean, default.std)
    assert x.shape == (4500, 3, 32, 32) and x.dtype == torch.float32
    assert x.mean(dim=(0, 2, 3)).abs().max() < 1e-4
    assert (x.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-3
    pixel = default.train.images[7, 3, 5]  # HWC -> CHW
    expected = (pixel / 255.0 - np.array(default.mean)) / np.array(default.std)
    assert np.allclose(x[7, :, 3, 5].numpy(), expected, atol=1e-5)


def test_batches_without_augmentation_are_exact() -> None:
    x, y = torch.randn(23, 3, 32, 32), torch.arange(23)
    plain = list(batches(x, y, 5, shuffle=False, augment=False))
    assert [len(b) for b, _ in plain] == [5, 5, 5, 5, 3]
    assert torch.equal(torch.cat([b for b, _ in plain]), x)
    assert torch.equal(torch.cat([t for _, t in plain]), y)
    shuffled = list(batches(x, y, 5, shuffle=True, augment=False, generator=torch.Generator()))
    order = torch.cat([t for _, t in shuffled])
    assert sorted(order.tolist()) == list(range(23)) and not torch.equal(order, y)
    assert torch.equal(torch.cat([b for b, _ in shuffled]), x[order])  # y indexes x here
    dropped = list(batches(x, y, 5, shuffle=False, augment=False, drop_last=True))
    assert [len(b) for b, _ in dropped] == [5, 5, 5, 5]


def test_augmentation_crops_and_flips_whole_batches() -> None:
    x = torch.randn(64, 3, 32, 32)
    gen = torch.Generator().manual_seed(0)
    out = augment_batch(x, gen)
    assert out.shape == x.shape and out.dtype == x.dtype
    changed = [not torch.equal(a, b) for a, b in zip(out, x, strict=True)]
    assert sum(changed) > 48  # 1 in 162 keeps the image as it was
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    flips = 0
    for i in range(64):  # each output is one of the 81 crops of the padded image, maybe flipped
        crops = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)  # [3, 9, 9, 32, 32]
        crops = crops.permute(1, 2, 0, 3, 4).reshape(81, 3, 32, 32)
        plain = (crops == out[i]).flatten(1).all(1).any()
        flipped = (crops.flip(3) == out[i]).flatten(1).all(1).any()
        assert plain or flipped
        flips += int(bool(flipped))
    assert 16 < flips < 48
    # The same generator state gives the same augmentation; batches() applies it.
    again = augment_batch(x, torch.Generator().manual_seed(0))
    assert torch.equal(out, again)
    xb, yb = next(batches(x, torch.arange(64), 64, shuffle=False, augment=True, generator=gen))
    assert xb.shape == x.shape and torch.equal(yb, torch.arange(64))
