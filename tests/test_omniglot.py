"""Real Omniglot loading: the shared subset, the processed cache, the one-shot runs, and clear errors.

Real-data tests read ``../shared/data/omniglot`` (fixture ``omniglot_dir``) and never write there;
error cases use tiny fake sets built with PIL (fixture ``fake_omniglot``).
"""

from __future__ import annotations

import os
import shutil
import time
import zipfile
from pathlib import Path

import pytest
import torch

import mamlkit as mk
from mamlkit.data.omniglot import SMALL_SPLIT, load_omniglot, load_one_shot_runs
from mamlkit.data.omniglot_files import find_omniglot_sets
from mamlkit.errors import DataError

SMALL1 = "images_background_small1"
SMALL2 = "images_background_small2"


def extract(archive: Path, target: Path) -> None:
    """An extracted copy of a zip (as a user who unzipped the archives has): the loader reads both."""
    with zipfile.ZipFile(archive) as zf:
        zf.extractall(target)


def _same(a, b) -> None:
    """Two datasets hold the same splits, names and (bit-identical) images."""
    assert a.splits.keys() == b.splits.keys()
    for name in a.splits:
        assert a[name].class_names == b[name].class_names
        assert a[name].alphabets == b[name].alphabets
        assert torch.equal(a[name].images, b[name].images)


# --------------------------------------------------------------------------------------------------
# the real subset


@pytest.fixture(scope="module")
def small_union(omniglot_dir: Path):
    before = sorted(os.listdir(omniglot_dir))
    t0 = time.perf_counter()
    ds = load_omniglot(omniglot_dir)  # cache=True: must silently not write into the read-only folder
    seconds = time.perf_counter() - t0
    assert sorted(os.listdir(omniglot_dir)) == before, "load_omniglot wrote into the shared data folder"
    return ds, seconds


def test_small_subsets_union(small_union) -> None:
    ds, seconds = small_union
    assert ds.info["sets"] == [SMALL1, SMALL2]
    assert not ds.info["from_cache"] and not ds.info["cache_written"]
    train, test = ds["train"], ds["test"]
    names = train.class_names + test.class_names
    alphabets = set(train.alphabets + test.alphabets)
    assert len(names) == len(set(names)) == 242  # 136 + 156 - 50 shared Greek and Latin characters
    assert len(alphabets) == 8
    assert train.n_examples == test.n_examples == 20
    assert (train.n_classes + test.n_classes) * 20 == 4840
    assert sum(a in ("Greek", "Latin") for a in train.alphabets) == 50
    assert train.image_shape == test.image_shape == (1, 28, 28)
    assert seconds < 15, f"loading the two small zips took {seconds:.1f} s"


def test_pixels_are_bright_strokes_on_dark(small_union) -> None:
    ds, _ = small_union
    for split in ds.splits.values():
        x = split.images
        assert x.dtype == torch.float32
        assert x.min() >= 0.0 and x.max() <= 1.0
        assert x.max() == 1.0  # strokes reach full brightness
        assert x.mean() < 0.2  # mostly dark background (strokes cover ~8% of the picture)
        assert (x[..., 0, :, 0] == 0).float().mean() > 0.9  # the left border column is background
        assert (x.flatten(2).amax(2) > 0.5).all()  # no blank drawings


def test_default_small_split_holds_out_three_alphabets(small_union) -> None:
    ds, _ = small_union
    assert set(ds.splits) == {"train", "test"}
    assert (
        set(ds["test"].alphabet_names) == {"Korean", "Tagalog", "Early_Aramaic"} == set(SMALL_SPLIT["test"])
    )
    assert set(ds["train"].alphabet_names) == {
        "Balinese",
        "Greek",
        "Latin",
        "Japanese_(katakana)",
        "Sanskrit",
    }
    assert not set(ds["train"].class_names) & set(ds["test"].class_names)
    assert ds["train"].n_classes == 163 and ds["test"].n_classes == 79
    assert all(n.split("/")[0] == a for n, a in zip(ds["test"].class_names, ds["test"].alphabets))


def test_extracted_folder_gives_identical_tensors(omniglot_dir: Path, small_union, tmp_path: Path) -> None:
    root = tmp_path / "extracted"
    extract(omniglot_dir / f"{SMALL1}.zip", root)
    assert find_omniglot_sets(root) == {SMALL1: root / SMALL1}
    from_folder = load_omniglot(root, cache=False)
    from_zip = load_omniglot(omniglot_dir, sets=[SMALL1], cache=False)
    assert from_folder.info["sources"] == {SMALL1: str(root / SMALL1)}
    _same(from_folder, from_zip)
    assert from_zip["train"].n_classes + from_zip["test"].n_classes == 136
    assert set(from_zip["test"].alphabet_names) == {"Korean", "Early_Aramaic"}  # Tagalog is in small2
    # The union kept one copy of Greek: the same drawings as small1 alone.
    union, _ = small_union
    pick = [i for i, a in enumerate(union["train"].alphabets) if a == "Greek"]
    mine = [i for i, a in enumerate(from_zip["train"].alphabets) if a == "Greek"]
    assert len(pick) == len(mine) == 24
    assert torch.equal(union["train"].images[pick], from_zip["train"].images[mine])


def test_processed_cache_written_reused_and_rebuilt(omniglot_dir: Path, tmp_path: Path) -> None:
    root = tmp_path / "omniglot"
    root.mkdir()
    shutil.copy2(omniglot_dir / f"{SMALL1}.zip", root)

    first = load_omniglot(root)
    cache_file = root / "processed" / f"omniglot-{SMALL1}-28.pt"
    assert first.info["cache_file"] == str(cache_file) and first.info["cache_written"]
    assert sorted(os.listdir(cache_file.parent)) == [cache_file.name]  # no temporary file left

    t0 = time.perf_counter()
    cached = load_omniglot(root)
    cached_seconds = time.perf_counter() - t0
    assert cached.info["from_cache"]
    _same(first, cached)
    assert cached_seconds < 1.0

    for damage in (b"not a torch file", cache_file.read_bytes()[:1000]):  # garbage, then truncated
        cache_file.write_bytes(damage)
        rebuilt = load_omniglot(root)
        assert not rebuilt.info["from_cache"] and rebuilt.info["cache_written"]
        _same(first, rebuilt)
    assert load_omniglot(root).info["from_cache"]

    # A changed source invalidates the cache.
    st = (root / f"{SMALL1}.zip").stat()
    os.utime(root / f"{SMALL1}.zip", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    assert not load_omniglot(root).info["from_cache"]


def test_one_shot_runs(omniglot_dir: Path, tmp_path: Path) -> None:
    runs = load_one_shot_runs(omniglot_dir / "all_runs.zip")
    assert [r.name for r in runs] == [f"run{i:02d}" for i in range(1, 21)]
    for r in runs:
        assert r.support.shape == r.query.shape == (20, 1, 28, 28)
        assert r.support.dtype == r.query.dtype == torch.float32
        assert r.support.max() <= 1 and r.support.min() >= 0 and r.support.mean() < 0.2
        assert torch.equal(r.support_labels, torch.arange(20))
        assert r.query_labels.dtype == torch.int64
        assert sorted(r.query_labels.tolist()) == list(range(20))  # each class tested exactly once
    # run01/class_labels.txt begins "run01/test/item01.png run01/training/class08.png"
    assert runs[0].query_labels[:3].tolist() == [7, 8, 1]
    # The labels mean something: pixel nearest neighbour is far above chance (5%); about 21% here.
    hits = [
        (torch.cdist(r.query.flatten(1), r.support.flatten(1)).argmin(1) == r.query_labels).float()
        for r in runs
    ]
    assert torch.cat(hits).mean() > 0.12

    # The data folder itself, and an extracted copy, give the same runs.
    extract(omniglot_dir / "all_runs.zip", tmp_path / "all_runs")
    for other in (load_one_shot_runs(omniglot_dir), load_one_shot_runs(tmp_path / "all_runs")):
        assert [r.name for r in other] == [r.name for r in runs]
        for a, b in zip(runs, other):
            assert torch.equal(a.support, b.support) and torch.equal(a.query, b.query)
            assert torch.equal(a.query_labels, b.query_labels)


def test_one_shot_runs_as_meta_test_tasks(omniglot_dir: Path) -> None:
    runs = load_one_shot_runs(omniglot_dir)
    task = runs[0].as_task()
    assert torch.equal(task.support_x, runs[0].support) and task.index == 1
    assert task.query_y.tolist() == list(range(20))  # sorted by class
    # the same drawings with the same labels, only reordered
    order = torch.argsort(runs[0].query_labels)
    assert torch.equal(task.query_x, runs[0].query[order])
    official = mk.FixedTasks([r.as_task() for r in runs], "official runs")
    assert len(official) == 20 and official.task(19).index == 20
    with pytest.raises(mk.DataError, match="20 tasks"):
        official.task(20)
    with pytest.raises(mk.DataError, match="no tasks"):
        mk.FixedTasks([])


def test_locate_omniglot(omniglot_dir: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("MAMLKIT_OMNIGLOT", raising=False)
    assert mk.data.omniglot.locate_omniglot([tmp_path / "nothing", omniglot_dir]) == omniglot_dir.resolve()
    monkeypatch.setenv("MAMLKIT_OMNIGLOT", str(omniglot_dir))
    assert mk.data.omniglot.locate_omniglot([tmp_path]) == omniglot_dir.resolve()  # an empty folder is skipped


# --------------------------------------------------------------------------------------------------
# fake sets: layouts, splits, errors


def test_fake_folders_zips_and_torchvision_layout(tmp_path: Path, fake_omniglot) -> None:
    root = tmp_path / "fake"
    fake_omniglot("images_background", {"Alpha": 2, "Beta": 1})
    fake_omniglot("images_evaluation", {"Gamma": 2}, zipped=True)
    fake_omniglot(SMALL1, {"Alpha": 1})  # present, but the full sets are preferred
    ds = load_omniglot(root, image_size=16, cache=False)
    assert ds.info["sets"] == ["images_background", "images_evaluation"]
    assert ds["train"].class_names == ["Alpha/character01", "Alpha/character02", "Beta/character01"]
    assert ds["test"].class_names == ["Gamma/character01", "Gamma/character02"]
    assert ds["train"].images.shape == (3, 20, 1, 16, 16)

    tv = tmp_path / "tv"
    fake_omniglot("images_background", {"Alpha": 2, "Beta": 1}, root=tv / "omniglot-py")
    from_tv = load_omniglot(tv, image_size=16, cache=False)
    assert set(from_tv.splits) == {"train"}  # no evaluation set: no test split
    assert torch.equal(from_tv["train"].images, ds["train"].images)

    custom = load_omniglot(root, image_size=16, cache=False, split={"a": ["Alpha"], "b": ["Beta", "Gamma"]})
    assert custom["a"].n_classes == 2 and custom["b"].n_classes == 3
    with pytest.raises(DataError, match="not in the data"):
        load_omniglot(root, image_size=16, cache=False, split={"train": ["Klingon"]})


def test_os_litter_is_ignored(fake_omniglot) -> None:
    folder = fake_omniglot("images_background", {"Alpha": 2})
    (folder / ".DS_Store").write_bytes(b"\0")
    (folder / "Alpha" / "character01" / ".DS_Store").write_bytes(b"\0")
    (folder / "__MACOSX").mkdir()
    (folder / "__MACOSX" / "._junk").write_bytes(b"\0")
    assert load_omniglot(folder.parent, cache=False)["train"].n_classes == 2


def test_read_only_root_is_not_written_and_does_not_fail(tmp_path: Path, fake_omniglot) -> None:
    folder = fake_omniglot("images_background", {"Alpha": 2})
    root = folder.parent
    root.chmod(0o555)
    try:
        ds = load_omniglot(root)
        assert not ds.info["cache_written"]
        assert not (root / "processed").exists()  # even when the tests run as root
        elsewhere = load_omniglot(root, cache_dir=tmp_path / "cache")
        assert elsewhere.info["cache_written"] and (tmp_path / "cache").is_dir()
    finally:
        root.chmod(0o755)


def test_missing_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist") as e:
        load_omniglot(tmp_path / "nope")
    assert "--data-dir" in str(e.value) and "download=True" in str(e.value)


def test_empty_or_unrelated_root(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no Omniglot set found") as e:
        load_omniglot(tmp_path)
    assert "contains: nothing" in str(e.value) and "images_background.zip" in str(e.value)
    (tmp_path / "notes.txt").write_text("hi")
    (tmp_path / "mnist").mkdir()
    with pytest.raises(DataError, match="no Omniglot set found") as e:
        load_omniglot(tmp_path)
    assert "mnist, notes.txt" in str(e.value) and "<Alphabet>/characterNN" in str(e.value)


def test_unknown_or_missing_set(tmp_path: Path, fake_omniglot) -> None:
    root = fake_omniglot("images_background", {"Alpha": 1}).parent
    with pytest.raises(DataError, match="unknown Omniglot set"):
        load_omniglot(root, sets=["images_training"])
    with pytest.raises(DataError, match="not found") as e:
        load_omniglot(root, sets=["images_evaluation"])
    assert "download=True" in str(e.value)
    with pytest.raises(DataError, match="image_size"):
        load_omniglot(root, image_size=0)


def test_png_directly_under_alphabet(fake_omniglot) -> None:
    folder = fake_omniglot("images_background", {"Alpha": 2})
    png = next((folder / "Alpha" / "character01").iterdir())
    shutil.move(png, folder / "Alpha" / png.name)
    with pytest.raises(DataError, match="unexpected layout") as e:
        load_omniglot(folder.parent, cache=False)
    assert "alphabet folder" in str(e.value) and png.name in str(e.value)


def test_alphabet_without_characters(fake_omniglot) -> None:
    folder = fake_omniglot("images_background", {"Alpha": 1})
    (folder / "Empty").mkdir()
    with pytest.raises(DataError, match="hold no character folders"):
        load_omniglot(folder.parent, cache=False)


def test_different_drawing_counts(fake_omniglot) -> None:
    folder = fake_omniglot("images_background", {"Alpha": 3})
    next((folder / "Alpha" / "character02").iterdir()).unlink()
    with pytest.raises(DataError, match="different numbers of drawings") as e:
        load_omniglot(folder.parent, cache=False)
    assert "Alpha/character02 (19)" in str(e.value) and "most have 20" in str(e.value)


def test_non_image_files(fake_omniglot) -> None:
    folder = fake_omniglot("images_background", {"Alpha": 2})
    readme = folder / "Alpha" / "character01" / "readme.txt"
    readme.write_text("drawn by hand")
    with pytest.raises(DataError, match="is not a PNG image") as e:
        load_omniglot(folder.parent, cache=False)
    assert "readme.txt" in str(e.value)
    readme.unlink()
    fake_png = folder / "Alpha" / "character02" / "9999_99.png"
    next(fake_png.parent.iterdir()).unlink()  # keep 20 files in the folder
    fake_png.write_text("<html>not really a png</html>")
    with pytest.raises(DataError, match="not a readable PNG image") as e:
        load_omniglot(folder.parent, cache=False)
    assert "9999_99.png" in str(e.value)


def test_corrupt_zips(tmp_path: Path, fake_omniglot) -> None:
    root = tmp_path / "junk"
    root.mkdir()
    (root / "images_background.zip").write_bytes(b"PK\x03\x04 this is not really a zip")
    with pytest.raises(DataError, match="corrupt") as e:
        load_omniglot(root)
    assert "delete it and download it again" in str(e.value) and "68d2efa1b9178cc56df9314c21c6e718" in str(
        e.value
    )

    # Damage the compressed bytes of one drawing: found when that member is read.
    archive = fake_omniglot("images_background", {"Alpha": 2}, zipped=True)
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo("images_background/Alpha/character02/1002_10.png")
    raw = bytearray(archive.read_bytes())
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    for k in range(start + 5, start + info.compress_size - 5):
        raw[k] ^= 0x5A
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="corrupt"):
        load_omniglot(archive.parent)
    assert sorted(os.listdir(archive.parent)) == ["images_background.zip"]  # no cache written


def test_zip_with_wrong_top_folder(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    with zipfile.ZipFile(root / "images_evaluation.zip", "w") as zf:
        zf.writestr("Gamma/character01/0001_01.png", b"x")
    with pytest.raises(DataError, match="unexpected layout") as e:
        load_omniglot(root)
    assert "top-level folder images_evaluation/" in str(e.value)


def test_one_shot_runs_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        load_one_shot_runs(tmp_path / "all_runs.zip")
    with pytest.raises(DataError, match="no one-shot runs"):
        load_one_shot_runs(tmp_path)
    run = tmp_path / "run01"
    for sub in ("training", "test"):
        (run / sub).mkdir(parents=True)
        shutil.copy(Path(__file__), run / sub / ("class01.png" if sub == "training" else "item01.png"))
    (run / "class_labels.txt").write_text("run01/test/item01.png run01/training/class02.png\n")
    with pytest.raises(DataError, match="line 1"):
        load_one_shot_runs(tmp_path)
