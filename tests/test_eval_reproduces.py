"""`cnnzoo eval RUN` with no flags repeats the run's own test pass: same data, preprocessing, precision, number."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from cnnzoo.cli import main


def _eval_json(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["eval", *args, "--format", "json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_of_an_in_memory_run_equals_its_test_result(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--model", "lenet5", "--data", "digits", "--epochs", "2", "--no-progress",
                 "--precision", "bf16", "--set", "train.tta=flip", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    rep = _eval_json(capsys, str(out))
    assert rep["precision"] == "bf16" and rep["tta"] == "flip"
    assert rep["top1"] == res["test_top1"] and rep["n"] == 359
    fp32 = _eval_json(capsys, str(out), "--precision", "fp32")
    assert fp32["precision"] == "fp32"


def _folder(root: Path) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 4)):
        for c, shade in (("dark", 40), ("light", 200)):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(shade, 30, (24, 20, 3)), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(root / split / c / f"{i}.png")


def test_eval_of_a_folder_run_needs_no_data_dir(tmp_path, capsys):
    _folder(tmp_path / "photos")
    out = tmp_path / "run"
    assert main(["train", "--model", "simple_convnet", "--data", "folder", "--data-dir", str(tmp_path / "photos"),
                 "--epochs", "2", "--batch-size", "8", "--no-progress", "--output", str(out)]) == 0
    res = json.loads((out / "results.json").read_text())
    rep = _eval_json(capsys, str(out))  # the directory comes from the run's config.yaml
    assert rep["top1"] == res["test_top1"] and rep["n"] == 8
    assert rep["precision"] == res["precision"]
    capsys.readouterr()
    assert main(["eval", str(out)]) == 0
    assert f"(8 images, {res['precision']})" in capsys.readouterr().out
