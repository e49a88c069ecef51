"""The command outputs shown in README.md and docs/*.md are what the commands print now.

``docs/examples.py`` holds the examples and writes them into the pages (``--write``); here its ``--check`` runs
them all and fails, naming each block and showing a diff, where a page no longer shows what its command prints.
The other tests check the comparison itself: what it must flag, what it must ignore, the markers.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "docs" / "examples.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("cnnzoo_docs_examples", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


ex = _load_script()


def block(example_id: str) -> str:
    """The text of a block as the page has it now."""
    e = ex.BY_ID[example_id]
    return ex.read_blocks((ROOT / e.page).read_text(encoding="utf-8"), e.page)[example_id]


def changed(text: str, pattern: str, repl: str, count: int = 0) -> str:
    """``text`` with ``pattern`` replaced; the pattern must be there (or the test would prove nothing)."""
    new, n = re.subn(pattern, repl, text, count=count, flags=re.M)
    assert n, f"{pattern!r} not found in the block: update this test"
    assert new != text
    return new


# ------------------------------------------------------------------------------------------- the markers


def test_every_marker_has_an_example_and_every_example_a_marker():
    on_pages = ex.markers_on_pages()  # also fails on unclosed, nested or repeated markers
    in_script = {e.id: e.page for e in ex.EXAMPLES}
    assert sorted(set(on_pages) - set(in_script)) == [], "markers in the pages without an entry in docs/examples.py"
    assert sorted(set(in_script) - set(on_pages)) == [], "examples in docs/examples.py without a marker in their page"
    wrong = {i: (in_script[i], on_pages[i]) for i in in_script if in_script[i] != on_pages[i]}
    assert wrong == {}, "examples whose marker is in another page than the script says (script, page)"
    for e in ex.EXAMPLES:
        assert set(e.setup) <= set(ex.SETUPS), e.id
        assert len(e.statuses()) == len(e.commands), e.id
        ex.missing_needs(e)  # an unknown need raises


def test_read_blocks_refuses_broken_markers():
    with pytest.raises(ValueError, match="never closed"):
        ex.read_blocks("<!-- example: a -->\n```\nx\n```\n")
    with pytest.raises(ValueError, match="without an opening"):
        ex.read_blocks("text\n<!-- /example -->\n")
    with pytest.raises(ValueError, match="inside the block"):
        ex.read_blocks("<!-- example: a -->\n<!-- example: b -->\n<!-- /example -->\n")
    with pytest.raises(ValueError, match="twice"):
        ex.read_blocks("<!-- example: a -->\nx\n<!-- /example -->\n<!-- example: a -->\ny\n<!-- /example -->\n")


def test_replace_blocks_touches_only_the_blocks():
    page = "intro\n\n<!-- example: a -->\n```\nold\n```\n<!-- /example -->\n\nmiddle\n<!-- example: b -->\nkeep\n<!-- /example -->\nend\n"
    new = ex.replace_blocks(page, {"a": "```\nnew\n```"})
    assert new == page.replace("old", "new")
    assert ex.read_blocks(new) == {"a": "```\nnew\n```\n", "b": "keep\n"}


# --------------------------------------------------------------------------------------- the comparison


def test_a_changed_number_is_flagged():
    e, page = ex.BY_ID["summary-lenet5"], block("summary-lenet5")
    assert ex.compare(e, page, page) is None
    now = changed(page, r"^parameters +61,706", "parameters          61,716")
    diff = ex.compare(e, page, now)
    assert diff is not None and "61,716" in diff and "summary-lenet5" in diff
    # in a training output the trained numbers depend on the CPU, the rest does not: a changed parameter count or
    # image count is flagged, another top-1 or precision is not
    e, page = ex.BY_ID["readme-train"], block("readme-train")
    diff = ex.compare(e, page, changed(page, r"61,706 parameters", "61,716 parameters"))
    assert diff is not None and "61,716" in diff
    assert ex.compare(e, page, changed(page, r"\(359 images\)", "(360 images)")) is not None
    assert ex.compare(e, page, changed(page, r"top1 \d\.\d{4}", "top1 0.1234")) is None
    assert ex.compare(e, page, changed(page, r", (bf16|fp32),", ", fp32,")) is None


def test_what_cannot_repeat_is_ignored():
    e, page = ex.BY_ID["readme-train"], block("readme-train")
    now = changed(page, r"\d[\d,]* img/s", "99,999 img/s")
    now = changed(now, r"\d+\.\d s$", "12.3 s")
    now = changed(now, r"-\d{8}-\d{6}$", "-20000101-000000")
    assert ex.compare(e, page, now) is None
    # the temporary working directory of another session
    e, page = ex.BY_ID["export-resnet18"], block("export-resnet18")
    now = changed(page, r"/\S*cnnzoo-docs-[^/\s]+", "/var/tmp/cnnzoo-docs-xyz123")
    now = changed(now, r"^export_seconds: .*", "export_seconds: 9.99")
    assert ex.compare(e, page, now) is None
    assert ex.compare(e, page, changed(page, r"^folded_bn: \d+", "folded_bn: 19")) is not None


def test_benchmark_timings_are_ignored_but_not_the_rest():
    e, page = ex.BY_ID["benchmark-vs-torchvision"], block("benchmark-vs-torchvision")
    now = changed(page, r"^(  cnnzoo .*?as matmul) +\d[\d,]*", r"\1    123456")  # an images/s figure, wider column
    now = changed(now, r"\d+\.\d+x", "9.99x")
    now = changed(now, r"^cpu \([^;]*;", "cpu (Some Other CPU;")
    assert ex.compare(e, page, now) is None
    assert ex.compare(e, page, changed(page, r"11,689,512 params", "11,689,513 params")) is not None
    assert ex.compare(e, page, changed(page, r"fp32, NCHW", "fp32, NHWC")) is not None


def test_a_changed_exit_status_or_crash_is_an_error():
    e = ex.BY_ID["conv-arith-too-large"]
    crash = ex.Run(list(e.commands[0]), "Traceback (most recent call last):\n  ...\nTypeError: boom\n", "crashed")
    assert ex.compare(e, block(e.id), ex.render(e, [crash])) is not None


# ---------------------------------------------------------------------------------- excerpts, rendering


def test_excerpt_items():
    lines = ["title", "a", "b", "c", "act x", "d", "total", "end"]
    assert ex.excerpt(lines, None) == lines
    assert ex.excerpt(lines, [slice(0, 2), "...", -1]) == ["title", "a", "...", "end"]
    assert ex.excerpt(lines, [ex.Find(r"^c"), ], drop=r"^act") == ["c", "d", "total", "end"]
    assert ex.excerpt(lines, [ex.Find(r"^b", 2), "...", ex.Find(r"^total", 1)]) == ["b", "c", "...", "total"]
    assert ex.excerpt(lines, [ex.Find(r"^nothing", 2), 99]) == []  # what is not there is left out, not an error


def test_render_styles():
    run = ex.Run(["summary", "x"], "| a |\n|---|\n| 1 |   \n\n", 0)
    plain = ex.Example("p", "docs/x.md", [run.argv])
    assert ex.render(plain, [run]) == "```\n$ cnnzoo summary x\n| a |\n|---|\n| 1 |\n```"
    raw = ex.Example("r", "docs/x.md", [run.argv], raw=True)
    assert ex.render(raw, [run]) == "```\n$ cnnzoo summary x\n```\n\n| a |\n|---|\n| 1 |\n"
    bare = ex.Example("b", "docs/x.md", [run.argv], raw=True, prompt=False)
    assert ex.render(bare, [run]) == "| a |\n|---|\n| 1 |\n"


def test_examples_that_need_fashion_mnist_are_skipped_without_it(monkeypatch, tmp_path):
    e = ex.Example("f", "docs/x.md", [["list"]], needs=["fashion-mnist"])
    monkeypatch.setattr(ex, "FASHION_DIR", tmp_path / "absent")
    assert "Fashion-MNIST" in ex.missing_needs(e)
    outcome, = ex.run_examples([e])
    assert outcome.skipped and outcome.block is None  # and nothing ran
    monkeypatch.setattr(ex, "FASHION_DIR", tmp_path)
    assert ex.missing_needs(e) is None


def test_check_flags_a_page_that_drifted(monkeypatch, tmp_path):
    """End to end on a copy of the pages: one cheap example, its block edited by hand."""
    (tmp_path / "docs").mkdir()
    shutil.copy(ROOT / "README.md", tmp_path / "README.md")
    for p in (ROOT / "docs").glob("*.md"):
        shutil.copy(p, tmp_path / "docs" / p.name)
    page = tmp_path / "docs" / "conv-arith.md"
    text = page.read_text(encoding="utf-8")
    page.write_text(changed(text, r"= 34,944$", "= 34,945", count=1), encoding="utf-8")
    monkeypatch.setattr(ex, "ROOT", tmp_path)
    wanted = [ex.BY_ID["conv-arith-alexnet"], ex.BY_ID["conv-arith-224"]]
    results = {r["id"]: r for r in ex.check(wanted)}
    assert results["conv-arith-224"]["status"] == "ok"
    assert results["conv-arith-alexnet"]["status"] == "differs"
    assert "-parameters with weight sharing:    (11*11*3 + 1) * 96 = 34,945" in results["conv-arith-alexnet"]["detail"]
    assert "+parameters with weight sharing:    (11*11*3 + 1) * 96 = 34,944" in results["conv-arith-alexnet"]["detail"]
    # --write puts it right, and touches nothing else
    ex.write([wanted[0]])
    assert page.read_text(encoding="utf-8") == text


# ------------------------------------------------------------------------------------------ the pages


@pytest.mark.slow
def test_the_pages_show_what_the_commands_print(tmp_path):
    """Every example, in a subprocess (a fresh process, CPU only, pinned threads): about 35 s on 2 cores."""
    out = tmp_path / "results.json"
    env = {k: v for k, v in os.environ.items() if k != "CNNZOO_DEBUG"}
    proc = subprocess.run([sys.executable, str(SCRIPT), "--check", "--json", str(out)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    if not out.is_file():
        pytest.fail(f"docs/examples.py --check did not finish (exit {proc.returncode}):\n{proc.stdout}\n{proc.stderr}",
                    pytrace=False)
    results = json.loads(out.read_text(encoding="utf-8"))
    bad = [r for r in results if r["status"] not in ("ok", "skipped")]
    if bad:
        report = "\n\n".join(f"{r['status']}: {r['page']} [{r['id']}]\n{r['detail']}" for r in bad)
        pytest.fail(f"{len(bad)} documented output(s) no longer match what the commands print:\n\n{report}\n\n"
                    "If the new output is right, regenerate the blocks: python docs/examples.py --write --changed",
                    pytrace=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    skipped = [f"{r['page']} [{r['id']}]: {r['detail']}" for r in results if r["status"] == "skipped"]
    if skipped and len(skipped) < len(results):
        warnings.warn("documented examples not checked here: " + "; ".join(skipped))
    if all(r["status"] == "skipped" for r in results):
        pytest.skip("every example needs what this machine lacks: " + "; ".join(sorted({r["detail"] for r in results})))


def test_readme_python_lines_run_as_written(tmp_path, monkeypatch):
    """The README's "In Python" block, executed as it stands (the one download served by a local file)."""
    import re

    import torch
    import torchvision

    import cnnzoo.hub

    block = re.search(r"### In Python\n\n```python\n(.*?)```", (ROOT / "README.md").read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), "resnet18-f37072fd.pth")
    r50 = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50(weights=None).state_dict(), r50)
    fetched = []
    monkeypatch.setattr(cnnzoo.hub, "fetch", lambda entry, progress=True: fetched.append(entry) or r50)
    scope: dict = {}
    exec(compile(block, "README.md", "exec"), scope)
    assert [e.model for e in fetched] == ["resnet50"] and fetched[0].tag in fetched[0].tags
    assert scope["features"].shape == (8, 512, 4, 4)
    assert scope["backbone"].feature_info.channels() == [64, 256, 512, 1024, 2048]
    assert scope["model"].pretrained_report.resized and scope["tuned"].fc.out_features == 10


def test_the_augmentation_pictures_are_what_the_script_draws(tmp_path):
    """docs/img/augment_*.png come from docs/augment_pictures.py (seeded): a rerun draws the same pictures."""
    import numpy as np
    from PIL import Image

    spec = importlib.util.spec_from_file_location("cnnzoo_docs_augment", ROOT / "docs" / "augment_pictures.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    written = mod.write(tmp_path, 96)
    assert written and all(p.stat().st_size > 10_000 for p in written)
    for p in written:
        new = np.asarray(Image.open(p).convert("RGB"), dtype=np.float64)
        old = np.asarray(Image.open(ROOT / "docs" / "img" / p.name).convert("RGB"), dtype=np.float64)
        assert new.shape == old.shape, p.name
        # Same draws, same pixels; a little room for another matplotlib's text antialiasing.
        assert np.abs(new - old).mean() < 1.0, f"{p.name} differs: rerun python docs/augment_pictures.py"
