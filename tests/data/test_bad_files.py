"""Unreadable image files (issue #18): a truncated JPEG and a text file named .jpg stop
``predify train`` and ``predify evaluate`` with one line naming the file (exit 2) before anything
is written; with ``--skip-bad-images`` they are left out and run.json / results.json count and
name them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from predify.cli import main
from predify.data.files import check_image_file, find_bad_files
from testkit import error_line

pytestmark = pytest.mark.slow

TRAIN = ["--image-size", "32", "--epochs", "1", "--batch-size", "8", "--no-progress",
         "--device", "cpu"]  # fmt: skip
EVALUATE = ["--corruptions", "gaussian_noise", "--severities", "2", "--attacks", "none",
            "--no-analysis", "--bootstrap", "0", "--no-plots", "--max-images", "all",
            "--device", "cpu", "--no-progress"]  # fmt: skip


def _folder(root: Path) -> tuple[Path, Path, Path]:
    """Two classes of 8 readable 40 x 40 JPEGs, one truncated JPEG, one text file named .jpg."""
    rng = np.random.default_rng(0)
    for label in ("cat", "dog"):
        (root / label).mkdir(parents=True)
        for index in range(8):
            pixels = rng.integers(0, 256, size=(40, 40, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(root / label / f"{index}.jpg", quality=90)
    whole = (root / "cat" / "0.jpg").read_bytes()
    truncated = root / "cat" / "truncated.jpg"
    truncated.write_bytes(whole[: len(whole) // 2])  # an interrupted download
    text = root / "dog" / "notes.jpg"
    text.write_text("not an image\n")
    return root, truncated, text


def test_the_check_names_what_is_wrong(tmp_path) -> None:
    root, truncated, text = _folder(tmp_path / "images")
    assert check_image_file(str(root / "cat" / "1.jpg")) is None
    assert "truncated" in (check_image_file(str(truncated)) or "")
    assert "UnidentifiedImageError" in (check_image_file(str(text)) or "")
    paths = sorted(str(path) for path in root.rglob("*.jpg"))
    bad = find_bad_files(paths, workers=2)
    assert [item.path for item in bad] == sorted([str(truncated), str(text)])


def test_train_and_evaluate_refuse_or_skip_bad_files(tmp_path, capsys) -> None:
    root, truncated, text = _folder(tmp_path / "images")
    run = tmp_path / "run"
    data = ["--data", f"folder:{root}"]
    assert main(["train", *data, "--out", str(run), *TRAIN]) == 2
    line = error_line(capsys, "train")
    first = sorted([str(truncated), str(text)])[0]
    assert first in line and "unreadable image" in line and "1 more" in line
    assert "--skip-bad-images" in line
    assert not (run / "run.json").exists()

    assert main(["train", *data, "--out", str(run), *TRAIN, "--skip-bad-images"]) == 0
    skipped = json.loads((run / "run.json").read_text())["data"]["skipped_files"]
    assert skipped["count"] == 2 and sorted(skipped["paths"]) == sorted([str(truncated), str(text)])
    capsys.readouterr()

    out = tmp_path / "eval"
    assert main(["evaluate", str(run), "--out", str(out), *data, *EVALUATE]) == 2
    line = error_line(capsys, "evaluate")
    assert first in line and "unreadable image" in line
    assert not (out / "results.json").exists()
    assert not list((out / "progress").glob("*.json")) if (out / "progress").exists() else True

    assert main(["evaluate", str(run), "--out", str(out), *data, *EVALUATE,
                 "--skip-bad-images"]) == 0  # fmt: skip
    results = json.loads((out / "results.json").read_text())
    assert results["data"]["num_images"] == 16 and results["data"]["selection"] == "all"
    skipped = results["data"]["skipped_files"]
    assert skipped["count"] == 2 and sorted(skipped["paths"]) == sorted([str(truncated), str(text)])
    assert results["corruption"]["num_images"] == 16
