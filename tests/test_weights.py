"""The pretrained-weights catalogue and its download (cnnzoo.hub), without the network.

Downloads come from a local HTTP server on 127.0.0.1 that the tests start and stop; it serves a randomly
initialised torchvision ResNet-18 saved as ``resnet18-<sha256 prefix>.pth`` and counts the requests. Every test
has its own TORCH_HOME, so the torch hub cache starts empty and the user's is never touched.
"""

from __future__ import annotations

import hashlib
import http.server
import json
import re
import socket
import subprocess
import sys
import threading
import types
from dataclasses import replace
from pathlib import Path
from typing import Dict, List

import pytest
import torch
import torchvision

import cnnzoo
from cnnzoo import hub
from cnnzoo.cli import main
from cnnzoo.errors import UserError
from cnnzoo.hub import WeightsEntry


@pytest.fixture(autouse=True)
def _own_torch_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))
    monkeypatch.delenv(hub.MIRROR_ENV, raising=False)


class _Server:
    """Serves ``files`` (path -> bytes) on 127.0.0.1; ``truncate`` paths send half the body; counts requests."""

    def __init__(self) -> None:
        self.files: Dict[str, bytes] = {}
        self.truncate: set = set()
        self.requests: List[str] = []
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's name
                server.requests.append(self.path)
                body = server.files.get(self.path)
                if body is None:
                    self.send_error(404, "Not Found")
                    return
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body[: len(body) // 2] if self.path in server.truncate else body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs=dict(poll_interval=0.05), daemon=True)

    def count(self, path: str) -> int:
        return sum(p == path for p in self.requests)


@pytest.fixture
def server():
    s = _Server()
    s.thread.start()
    yield s
    s.httpd.shutdown()
    s.httpd.server_close()
    s.thread.join(5)


@pytest.fixture(scope="module")
def weights_file(tmp_path_factory) -> Path:
    """A random torchvision ResNet-18 saved as torchvision names its files: ``resnet18-<sha256[:8]>.pth``."""
    folder = tmp_path_factory.mktemp("weights")
    tmp = folder / "resnet18.pth"
    torch.manual_seed(0)
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), tmp)
    digest = hashlib.sha256(tmp.read_bytes()).hexdigest()
    return tmp.rename(folder / f"resnet18-{digest[:8]}.pth")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _entry(url: str, name: str, **kw) -> WeightsEntry:
    prefix = re.search(r"-([a-f0-9]+)\.", name).group(1)
    d = dict(model="resnet18", tag="tv1", source="torchvision", url=f"{url}/models/{name}", sha256=prefix,
             top1=69.758, top5=89.078, params=11_689_512, default=True, crop_size=224, resize_size=256)
    d.update(kw)
    return WeightsEntry(**d)


def _checkpoints(tmp_path: Path) -> Path:
    return tmp_path / "torch_home" / "hub" / "checkpoints"


def _files(folder: Path) -> List[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


# ----------------------------------------------------------------------------------------- download and cache


def test_fetch_downloads_into_the_torch_hub_cache_and_reuses_it(server, weights_file, tmp_path):
    server.files[f"/models/{weights_file.name}"] = weights_file.read_bytes()
    entry = _entry(server.url, weights_file.name)
    path = hub.fetch(entry, progress=False)
    assert path == _checkpoints(tmp_path) / weights_file.name == hub.cached_path(entry)
    assert path.read_bytes() == weights_file.read_bytes()
    assert server.count(f"/models/{weights_file.name}") == 1
    assert hub.fetch(entry, progress=False) == path
    assert server.count(f"/models/{weights_file.name}") == 1  # the cached file, checked, no second request
    assert _files(path.parent) == [weights_file.name]  # no temporary left behind
    # What a real download gives: torchvision's state dict, which loads into our model.
    model = cnnzoo.create_model("resnet18")
    cnnzoo.load_torchvision_weights(model, torch.load(path, map_location="cpu", weights_only=True))
    assert torch.equal(model.conv1.weight, torch.load(weights_file, weights_only=True)["conv1.weight"])


def test_a_corrupted_download_is_refused_and_the_cache_left_clean(server, weights_file, tmp_path):
    body = bytearray(weights_file.read_bytes())
    body[len(body) // 2] ^= 0xFF
    server.files[f"/models/{weights_file.name}"] = bytes(body)
    entry = _entry(server.url, weights_file.name)
    with pytest.raises(UserError, match=r"sha256 does not start with [0-9a-f]{8}.*nothing was kept") as e:
        hub.fetch(entry, progress=False)
    assert "\n" not in str(e.value) and entry.url in str(e.value)
    assert _files(_checkpoints(tmp_path)) == []  # neither the file nor a .partial/.download temporary


@pytest.mark.parametrize("checksum", [True, False], ids=["with-checksum", "without-checksum"])
def test_a_truncated_download_never_gets_the_final_name(server, weights_file, tmp_path, checksum):
    path = f"/models/{weights_file.name}"
    server.files[path] = weights_file.read_bytes()
    server.truncate.add(path)
    entry = _entry(server.url, weights_file.name)
    if not checksum:
        entry = replace(entry, sha256=None)
    with pytest.raises(UserError, match="sha256 does not start" if checksum else "incomplete file"):
        hub.fetch(entry, progress=False)
    assert _files(_checkpoints(tmp_path)) == []


def test_a_cached_file_that_fails_its_check_is_fetched_again(server, weights_file, tmp_path):
    server.files[f"/models/{weights_file.name}"] = weights_file.read_bytes()
    entry = _entry(server.url, weights_file.name)
    stale = _checkpoints(tmp_path) / weights_file.name
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"not the weights")
    assert hub.fetch(entry, progress=False).read_bytes() == weights_file.read_bytes()
    assert server.count(f"/models/{weights_file.name}") == 1


def test_the_mirror_variable_with_a_local_directory(weights_file, tmp_path, monkeypatch):
    entry = _entry(f"http://127.0.0.1:{_closed_port()}", weights_file.name)  # the source is unreachable
    monkeypatch.setenv(hub.MIRROR_ENV, str(weights_file.parent))
    path = hub.fetch(entry, progress=False)
    assert path == _checkpoints(tmp_path) / weights_file.name and path.read_bytes() == weights_file.read_bytes()
    # A mirror directory without the file: the one-line error names where it looked.
    monkeypatch.setenv(hub.MIRROR_ENV, str(tmp_path / "empty_mirror"))
    (tmp_path / "empty_mirror").mkdir()
    path.unlink()
    with pytest.raises(UserError, match="cannot download file://.*empty_mirror"):
        hub.fetch(entry, progress=False)


def test_the_mirror_variable_with_a_url_prefix(server, weights_file, tmp_path, monkeypatch):
    server.files[f"/mirror/{weights_file.name}"] = weights_file.read_bytes()
    entry = _entry(f"http://127.0.0.1:{_closed_port()}", weights_file.name)
    monkeypatch.setenv(hub.MIRROR_ENV, f"{server.url}/mirror/")
    assert hub.fetch(entry, progress=False).read_bytes() == weights_file.read_bytes()
    assert server.requests == [f"/mirror/{weights_file.name}"]
    monkeypatch.setenv(hub.MIRROR_ENV, str(tmp_path / "no_such_dir"))
    with pytest.raises(UserError, match="CNNZOO_WEIGHTS_MIRROR=.* is neither a URL .* nor an existing directory"):
        hub.fetch(replace(entry, url=entry.url.replace(weights_file.name, "other-12345678.pth")), progress=False)


def test_offline_is_one_line_naming_the_url_the_cache_path_and_the_mirror(weights_file, tmp_path):
    entry = _entry(f"http://127.0.0.1:{_closed_port()}", weights_file.name)
    with pytest.raises(UserError) as e:
        hub.fetch(entry, progress=False)
    msg = str(e.value)
    assert "\n" not in msg and msg.startswith(f"cannot download {entry.url}")
    assert str(_checkpoints(tmp_path)) in msg and weights_file.name in msg and "CNNZOO_WEIGHTS_MIRROR" in msg
    assert _files(_checkpoints(tmp_path)) == []


def test_an_http_error_names_the_url_and_the_way_around_it(server, weights_file):
    entry = _entry(server.url, weights_file.name)  # the server has no such file: 404
    with pytest.raises(UserError, match=r"cannot download http://127\.0\.0\.1:\d+/models/resnet18-.*404.*"
                                        r"CNNZOO_WEIGHTS_MIRROR"):
        hub.fetch(entry, progress=False)


def test_download_url_to_file_moves_its_temporary_only_after_the_hash_check(server, weights_file, tmp_path):
    """The torch.hub behaviour fetch relies on: a wrong hash raises and removes the temporary file."""
    server.files["/f.pth"] = weights_file.read_bytes()
    dst = tmp_path / "dl" / "f.pth"
    dst.parent.mkdir()
    with pytest.raises(RuntimeError, match="invalid hash value"):
        torch.hub.download_url_to_file(f"{server.url}/f.pth", str(dst), hash_prefix="00000000", progress=False)
    assert _files(dst.parent) == []


# ----------------------------------------------------------------------------------------- the Hugging Face Hub


def _hub_entry() -> WeightsEntry:
    return WeightsEntry(model="seresnet50", tag="ra2_in1k", source="timm", hf_hub_id="timm/seresnet50.ra2_in1k",
                        hf_filename="model.safetensors", default=True)


def test_hub_weights_without_huggingface_hub_say_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import fails as if not installed
    with pytest.raises(UserError, match=r"pip install 'cnnzoo\[hub\]'") as e:
        hub.fetch(_hub_entry(), progress=False)
    assert "\n" not in str(e.value)


def test_hub_weights_go_through_hf_hub_download(monkeypatch, tmp_path):
    calls = []

    def ok(repo_id: str, filename: str) -> str:
        calls.append((repo_id, filename))
        return str(tmp_path / "model.safetensors")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=ok))
    assert hub.fetch(_hub_entry(), progress=False) == tmp_path / "model.safetensors"
    assert calls == [("timm/seresnet50.ra2_in1k", "model.safetensors")]

    def offline(repo_id: str, filename: str) -> str:
        raise ConnectionError("Failed to resolve 'huggingface.co'\nmore lines")

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(hf_hub_download=offline))
    with pytest.raises(UserError) as e:
        hub.fetch(_hub_entry(), progress=False)
    msg = str(e.value)
    assert "\n" not in msg and "https://huggingface.co/timm/seresnet50.ra2_in1k/resolve/main/model.safetensors" in msg
    assert "seresnet50.ra2_in1k.safetensors" in msg and hub.MIRROR_ENV in msg


# ----------------------------------------------------------------------------------------- resolve_pretrained


def test_resolve_pretrained_true_tag_path_and_unknown(server, weights_file, tmp_path):
    server.files[f"/models/{weights_file.name}"] = weights_file.read_bytes()
    tv1 = _entry(server.url, weights_file.name, default=False)
    tv2 = replace(tv1, tag="tv2", default=True)
    catalog = [tv1, tv2]
    cached = str(_checkpoints(tmp_path) / weights_file.name)
    assert hub.resolve_pretrained("resnet18", True, progress=False, catalog=catalog) == cached
    assert hub.resolve_pretrained("resnet18", "tv1", progress=False, catalog=catalog) == cached
    assert hub.resolve_pretrained("resnet18", "imagenet", progress=False, catalog=catalog) == cached
    assert server.count(f"/models/{weights_file.name}") == 1
    assert hub.resolve_pretrained("resnet18", str(weights_file), catalog=catalog) == str(weights_file)
    with pytest.raises(UserError, match=r"pretrained='tv9' for resnet18 is neither a path that exists \(not found\) "
                                        r"nor a weights tag \(its weights tags: imagenet, tv2, tv1"):
        hub.resolve_pretrained("resnet18", "tv9", catalog=catalog)
    with pytest.raises(UserError, match="not True, a weights tag"):
        hub.resolve_pretrained("resnet18", 3, catalog=catalog)
    with pytest.raises(UserError, match="'resnet34' has no pretrained weights in the catalogue"):
        hub.resolve_pretrained("resnet34", True, catalog=catalog)
    # timm-named weights are refused before anything is downloaded.
    timm_named = replace(tv1, source="timm", convert="timm", origin="resnet18.a1_in1k", default=True)
    with pytest.raises(UserError, match="use timm's parameter names, which cnnzoo cannot convert"):
        hub.resolve_pretrained("resnet18", True, catalog=[timm_named])
    assert server.count(f"/models/{weights_file.name}") == 1


def test_resolve_pretrained_on_the_real_catalogue_refuses_without_the_network():
    with pytest.raises(UserError, match="its weights tags: imagenet, tv2, tv1"):
        hub.resolve_pretrained("resnet50", "tv9")
    with pytest.raises(UserError, match="it has no catalogued weights"):
        hub.resolve_pretrained("lenet5", "tv1")
    with pytest.raises(UserError, match=r"mobilenet_v1 ra4_e3600_r224_in1k weights .* timm's parameter names"):
        hub.resolve_pretrained("mobilenet_v1", True)
    with pytest.raises(UserError, match="resnet50 has no weights tagged 'v3'; its tags: imagenet, tv2, tv1"):
        hub.get_weights("resnet50", "v3")


# ----------------------------------------------------------------------------------------- the catalogue


TV_ENTRIES = [e for e in hub.load_catalog() if e.source == "torchvision"]


def test_every_torchvision_twin_has_imagenet_weights():
    twins = [n for n in cnnzoo.list_models() if cnnzoo.model_info(n).torchvision]
    assert len(twins) >= 30
    for name in twins:
        e = hub.get_weights(name)
        assert e.default and e.source == "torchvision" and "imagenet" in e.tags


def test_each_model_has_one_default_and_distinct_tags():
    catalog = hub.load_catalog()
    for name in {e.model for e in catalog}:
        mine = hub.weights_for(name)
        assert sum(e.default for e in mine) == 1, name
        assert len({e.tag for e in mine}) == len(mine) and "imagenet" not in {e.tag for e in mine}, name
        assert cnnzoo.is_model(name)


def test_torchvision_entries_carry_the_checksum_of_their_file_name():
    for e in TV_ENTRIES:
        assert re.fullmatch(r"[0-9a-f]{8,}", e.sha256 or ""), e
        assert re.search(r"-([0-9a-f]+)\.pth$", e.file_name).group(1) == e.sha256, e
        assert e.url.startswith("https://download.pytorch.org/models/"), e
        assert 0 < e.top5 and 0 < e.top1 < e.top5 < 100 and e.file_size_mb > 0 and e.crop_size <= e.resize_size + 1


def test_torchvision_entries_are_the_installed_torchvision_weights():
    from torchvision.models import get_model_weights

    for e in TV_ENTRIES:
        enum_name, member = e.origin.split(".")
        w = get_model_weights(cnnzoo.model_info(e.model).torchvision)[member]
        assert type(w).__name__ == enum_name and w.url == e.url and e.tag == "tv" + member.rsplit("V", 1)[1]


def test_catalogue_parameter_counts_are_ours():
    for e in hub.load_catalog():
        counts = {cnnzoo.count_params(e.model)}
        if cnnzoo.model_info(e.model).aux_logits:  # torchvision counts GoogLeNet without its auxiliary heads
            counts.add(cnnzoo.count_params(e.model, aux_logits=False))
        assert e.params in counts, (e.model, e.tag, e.params, counts)


@pytest.mark.filterwarnings("ignore:The default weight initialization")  # torchvision, on meta: no init
@pytest.mark.parametrize("name", sorted({e.model for e in TV_ENTRIES}, key=cnnzoo.list_models().index))
def test_torchvision_state_dicts_fit_our_models(name):
    """Keys and shapes of torchvision's architecture, converted, are exactly ours: a real download loads."""
    from cnnzoo.pretrained import convert_torchvision_state_dict

    with torch.device("meta"):
        theirs = torchvision.models.get_model(cnnzoo.model_info(name).torchvision, weights=None)
        ours = cnnzoo.create_model(name)
    sd = convert_torchvision_state_dict(ours, theirs.state_dict())
    assert {k: tuple(v.shape) for k, v in sd.items()} == {k: tuple(v.shape) for k, v in ours.state_dict().items()}


def test_timm_entries_say_where_their_facts_come_from():
    timm = [e for e in hub.load_catalog() if e.source == "timm"]
    assert {e.model for e in timm} <= {"xception", "seresnet50", "mixer_b16_224", "mobilenet_v1"}
    for e in timm:
        assert e.facts and "top1/top5/params" in e.facts and "licence" in e.facts, e
        assert e.hf_hub_id or e.sha256, e  # the Hub checks its files; a plain URL needs a hash prefix
        assert e.convert in (None, "timm")


# ----------------------------------------------------------------------------------------- the command line


def test_cnnzoo_weights_lists_the_catalogue(capsys):
    assert main(["weights", "resnet"]) == 0
    out = capsys.readouterr().out
    assert re.search(r"resnet50\s+tv2 \(imagenet\)\s+torchvision\s+80\.86\s+95\.43\s+25,557,032\s+97\.8", out), out
    assert "resnet18" in out and "seresnet50" in out and "vgg16" not in out
    assert main(["weights", "resnet", "--format", "json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert all("resnet" in r["model"] for r in rows)
    r50 = {r["tag"]: r for r in rows if r["model"] == "resnet50"}
    assert set(r50) == {"tv1", "tv2"} and r50["tv2"]["default"] and r50["tv2"]["tags"] == ["imagenet", "tv2"]
    assert r50["tv1"]["top1"] == 76.13 and r50["tv1"]["licence"] == "BSD-3-Clause" and r50["tv1"]["crop"] == 224
    assert main(["weights", "vgg1?_bn", "--format", "markdown"]) == 0
    md = capsys.readouterr().out.splitlines()
    assert md[0].startswith("| model | tag | source | top-1") and len(md) == 2 + 4
    assert main(["weights", "no_such_model"]) == 2
    assert "no catalogued weights" in capsys.readouterr().err


def test_cnnzoo_info_shows_the_weights(capsys):
    assert main(["info", "resnet50"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.strip().startswith("weights"))
    assert "tv2 = imagenet (top-1 80.86, torchvision)" in line and "tv1 (top-1 76.13" in line
    assert main(["info", "resnet50", "--format", "json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert [w["tag"] for w in info["weights"]] == ["tv2", "tv1"] and info["weights"][0]["top1"] == 80.858
    assert main(["info", "lenet5"]) == 0
    assert "weights       - (none catalogued)" in capsys.readouterr().out


def test_the_listing_needs_no_torch():
    code = ("import sys\nfrom cnnzoo.cli import main\nmain(['weights', 'vgg'])\nmain(['info', 'xception'])\n"
            "from cnnzoo import hub\nassert hub.get_weights('resnet50').tag == 'tv2'\nprint('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "vgg19_bn" in out and "tf_in1k = imagenet" in out and out.strip().endswith("False")
