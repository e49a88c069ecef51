"""Pretrained weights: the catalogue of published ImageNet weights for our models, and their download.

As torchvision's weight enums (``ResNet50_Weights.IMAGENET1K_V2``) and timm's ``pretrained=True``: every weights
set is a :class:`WeightsEntry` with where it lives, its checksum, its accuracy and its preprocessing, and
``resolve_pretrained(name, True)`` turns ``create_model(name, pretrained=True)`` into a local file.

* The catalogue is ``weights.json`` next to this module, written by ``benchmarks/make_weights_catalog.py`` from
  the installed torchvision's weight enums (and a few timm weights torchvision lacks). Reading it needs no PyTorch,
  so ``cnnzoo weights`` and ``cnnzoo info`` answer in a tenth of a second; PyTorch is imported only to download.
* Tags: each weights set has its own tag (``tv1``, ``tv2`` for torchvision's ``IMAGENET1K_V1``/``V2``, timm's
  tag such as ``ra2_in1k``); ``imagenet`` is an alias of the model's best (torchvision's ``DEFAULT``).
* Downloads go into the torch hub cache, ``torch.hub.get_dir()/checkpoints`` (``$TORCH_HOME/hub/checkpoints``),
  under the source's file name, through ``torch.hub.download_url_to_file``: it writes a temporary file and checks
  the sha256 prefix before moving it, and :func:`fetch` moves it to its final name only after that check (or,
  without a checksum, after checking that the file is complete), so a corrupted or truncated download never lies
  under the final name. A cached file is verified before it is reused; one that fails is removed and fetched anew.
* ``CNNZOO_WEIGHTS_MIRROR`` (a URL prefix, or a local directory) replaces the source: the file is taken from
  ``<mirror>/<file name>``, the same names as in the cache (:attr:`WeightsEntry.file_name`).
* timm's weights on the Hugging Face Hub are fetched with ``huggingface_hub.hf_hub_download`` (the ``hub`` extra:
  ``pip install 'cnnzoo[hub]'``) into its own cache, which checks their integrity.

Part of the builder layer; imports only :mod:`cnnzoo.errors` and :mod:`cnnzoo.names` (and PyTorch lazily).
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import zipfile
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from .errors import UserError
from .names import closest_names, match_names, natural_key

__all__ = ["CATALOG_FILE", "DEFAULT_TAG", "MIRROR_ENV", "WeightsEntry", "load_catalog", "list_weights",
           "weights_for", "model_tags", "get_weights", "cache_dir", "cached_path", "fetch", "resolve_pretrained"]

CATALOG_FILE = Path(__file__).resolve().parent / "weights.json"
DEFAULT_TAG = "imagenet"
MIRROR_ENV = "CNNZOO_WEIGHTS_MIRROR"
SOURCES = ("torchvision", "timm")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Seconds a stalled connection may stay silent before the download gives up (urllib waits forever otherwise).
DOWNLOAD_TIMEOUT = 60.0

Catalog = Sequence["WeightsEntry"]
PathLike = Union[str, "os.PathLike[str]"]


@dataclass(frozen=True)
class WeightsEntry:
    """One published weights set for one of our models.

    Attributes:
        model: our registry name (``resnet50``).
        tag: this set's tag (``tv2``, ``ra2_in1k``); ``default`` marks the one ``imagenet`` stands for.
        source: ``torchvision`` or ``timm``.
        url: where the file is downloaded from (torchvision's, or a timm release); ``None`` for a Hub file.
        hf_hub_id: a Hugging Face Hub repository (``timm/seresnet50.ra2_in1k``), fetched with ``hf_hub_download``.
        hf_filename: the file in that repository (``model.safetensors``).
        sha256: a prefix of the file's sha256 (torch.hub's ``check_hash`` convention: torchvision's file names
            carry it, ``resnet50-0676ba61.pth``); ``None`` where the Hub checks the file.
        top1: ImageNet-1k validation top-1 accuracy (%) with this preprocessing.
        top5: top-5 accuracy (%).
        params: parameters, as the source counts them (see ``notes`` where that differs from ours).
        file_size_mb: the file's size in MB (MiB for torchvision's).
        licence: the licence the weights are published under (``licence_note`` for the details).
        recipe: a link to the training recipe.
        input_size: C x H x W the network sees.
        resize_size: the shorter side the image is resized to before the centre crop.
        crop_size: the centre crop (the evaluation resolution of ``top1``).
        mean: per-channel mean subtracted from [0, 1] RGB, for cnnzoo's model as built by default.
        std: per-channel standard deviation.
        interpolation: the resize's interpolation (``bilinear``, ``bicubic``).
        default: this set is the model's ``imagenet`` weights.
        convert: ``"timm"`` when the file's parameter names are timm's and need converting to ours (not yet
            implemented: :func:`resolve_pretrained` refuses those); ``None`` when the names are ours.
        origin: the source's own name for the set (``ResNet50_Weights.IMAGENET1K_V2``, ``seresnet50.ra2_in1k``).
        licence_note: what the licence covers.
        notes: anything else to know (how the preprocessing was derived, what ``params`` counts).
        facts: where each fact of a hand-written entry comes from (field -> reference).
    """

    model: str
    tag: str
    source: str
    url: Optional[str] = None
    hf_hub_id: Optional[str] = None
    hf_filename: Optional[str] = None
    sha256: Optional[str] = None
    top1: Optional[float] = None
    top5: Optional[float] = None
    params: Optional[int] = None
    file_size_mb: Optional[float] = None
    licence: str = ""
    recipe: str = ""
    input_size: Tuple[int, int, int] = (3, 224, 224)
    resize_size: Optional[int] = None
    crop_size: Optional[int] = None
    mean: Tuple[float, ...] = IMAGENET_MEAN
    std: Tuple[float, ...] = IMAGENET_STD
    interpolation: str = "bilinear"
    default: bool = False
    convert: Optional[str] = None
    origin: str = ""
    licence_note: str = ""
    notes: str = ""
    facts: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"{self.model} {self.tag}: source {self.source!r} is none of {', '.join(SOURCES)}")
        if not self.url and not self.hf_hub_id:
            raise ValueError(f"{self.model} {self.tag}: needs a url or an hf_hub_id")
        if self.hf_hub_id and not self.hf_filename:
            raise ValueError(f"{self.model} {self.tag}: hf_hub_id {self.hf_hub_id!r} needs an hf_filename")

    @property
    def tags(self) -> Tuple[str, ...]:
        """The names this set answers to: its tag, and ``imagenet`` when it is the default."""
        return (DEFAULT_TAG, self.tag) if self.default and self.tag != DEFAULT_TAG else (self.tag,)

    @property
    def file_name(self) -> str:
        """The file's name in the cache and on a mirror: the URL's last part, or ``<hub repo name><suffix>``."""
        if self.url:
            return self.url.rstrip("/").rsplit("/", 1)[-1]
        return self.hf_hub_id.rsplit("/", 1)[-1] + Path(self.hf_filename).suffix

    @property
    def download_url(self) -> str:
        """The URL the file comes from (the Hub's ``resolve`` URL for a Hub file)."""
        return self.url or f"https://huggingface.co/{self.hf_hub_id}/resolve/main/{self.hf_filename}"

    def as_dict(self) -> Dict[str, Any]:
        d = asdict(self)
        d["input_size"], d["mean"], d["std"] = list(self.input_size), list(self.mean), list(self.std)
        d["facts"] = dict(self.facts)
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "WeightsEntry":
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in d.items() if k in known}
        for key in ("input_size", "mean", "std"):
            if key in kw and kw[key] is not None:
                kw[key] = tuple(kw[key])
        kw["facts"] = dict(kw.get("facts") or {})
        return cls(**kw)


# ----------------------------------------------------------------------------------------- the catalogue

_CACHE: Dict[str, List[WeightsEntry]] = {}


def load_catalog(path: Optional[PathLike] = None) -> List[WeightsEntry]:
    """Every catalogued weights set, from ``weights.json`` (or ``path``), in natural model order."""
    p = Path(path) if path is not None else CATALOG_FILE
    key = str(p)
    if key not in _CACHE:
        try:
            data = json.loads(p.read_text())
        except (OSError, ValueError) as e:
            raise UserError(f"cannot read the weights catalogue {p} ({e}); "
                            "run python benchmarks/make_weights_catalog.py to write it") from None
        entries = [WeightsEntry.from_dict(d) for d in data["weights"]]
        _CACHE[key] = sorted(entries, key=lambda e: natural_key(e.model))  # stable: each model's order is kept
    return list(_CACHE[key])


def _catalog(catalog: Optional[Catalog]) -> List[WeightsEntry]:
    return list(catalog) if catalog is not None else load_catalog()


def list_weights(pattern: Union[str, Sequence[str]] = "*", catalog: Optional[Catalog] = None) -> List[WeightsEntry]:
    """The weights sets of the models matching a shell wildcard (``resnet*``), in natural order."""
    entries = _catalog(catalog)
    names = match_names({e.model for e in entries}, pattern)
    order = {n: i for i, n in enumerate(names)}
    return sorted((e for e in entries if e.model in order), key=lambda e: order[e.model])


def weights_for(model: str, catalog: Optional[Catalog] = None) -> List[WeightsEntry]:
    """The weights sets of one model (empty when it has none), the default first."""
    found = [e for e in _catalog(catalog) if e.model == model]
    return sorted(found, key=lambda e: not e.default)


def model_tags(model: str, catalog: Optional[Catalog] = None) -> List[str]:
    """The tags ``model``'s weights answer to: ``imagenet`` first, then each set's own tag."""
    tags: List[str] = []
    for e in weights_for(model, catalog):
        tags += [t for t in e.tags if t not in tags]
    return tags


def get_weights(model: str, tag: str = DEFAULT_TAG, catalog: Optional[Catalog] = None) -> WeightsEntry:
    """The weights set of ``model`` answering to ``tag`` (``imagenet``: its best).

    Raises:
        UserError: the model has no catalogued weights (closest models that have listed) or none with that tag
            (its tags listed).
    """
    entries = _catalog(catalog)
    mine = weights_for(model, entries)
    if not mine:
        close = closest_names(model, sorted({e.model for e in entries}))
        hint = f" (models with weights near that name: {', '.join(close)})" if close else ""
        raise UserError(f"{model!r} has no pretrained weights in the catalogue{hint}; "
                        "`cnnzoo weights` lists the models that have them")
    for e in mine:
        if tag in e.tags:
            return e
    raise UserError(f"{model} has no weights tagged {tag!r}; its tags: {', '.join(model_tags(model, entries))}")


# ----------------------------------------------------------------------------------------- download


def cache_dir() -> Path:
    """``torch.hub.get_dir()/checkpoints``: where torch.hub (and torchvision) keep downloaded weights."""
    import torch.hub

    return Path(torch.hub.get_dir()) / "checkpoints"


def cached_path(entry: WeightsEntry) -> Path:
    """Where ``entry``'s file lies in the cache (or is to be put by hand)."""
    return cache_dir() / entry.file_name


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _complete(path: Path) -> bool:
    """Whether a file without a checksum is whole: a zip (torch.save) or safetensors whose header fits its size."""
    if path.suffix == ".safetensors":
        try:
            with open(path, "rb") as f:
                n = int.from_bytes(f.read(8), "little")
                header = json.loads(f.read(n))
        except (OSError, ValueError):
            return False
        ends = [v["data_offsets"][1] for k, v in header.items() if k != "__metadata__"]
        return path.stat().st_size == 8 + n + max(ends, default=0)
    return zipfile.is_zipfile(path)


def _intact(path: Path, entry: WeightsEntry) -> bool:
    if entry.sha256:
        return _sha256(path).startswith(entry.sha256)
    return _complete(path)


def _how_to_help(entry: WeightsEntry) -> str:
    return (f"put {entry.file_name} in {cache_dir()} by hand, or set {MIRROR_ENV} to a URL prefix or a "
            "directory that holds it")


def _mirror_url(mirror: str, entry: WeightsEntry) -> str:
    if "://" in mirror:
        return f"{mirror.rstrip('/')}/{entry.file_name}"
    folder = Path(mirror).expanduser()
    if not folder.is_dir():
        raise UserError(f"{MIRROR_ENV}={mirror!r} is neither a URL (https://...) nor an existing directory")
    return (folder.resolve() / entry.file_name).as_uri()


def _download(url: str, dst: Path, entry: WeightsEntry, progress: bool) -> None:
    """``url`` -> ``dst`` through torch.hub, checked (hash prefix, else completeness) before it takes its name."""
    import http.client
    import urllib.error

    import torch.hub

    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.download")
    timeout = socket.getdefaulttimeout()
    if timeout is None:
        socket.setdefaulttimeout(DOWNLOAD_TIMEOUT)
    try:
        try:
            torch.hub.download_url_to_file(url, str(tmp), hash_prefix=entry.sha256 or None, progress=progress)
        except RuntimeError as e:  # torch.hub's "invalid hash value (expected ..., got ...)"
            raise UserError(f"{url} sent a file whose sha256 does not start with {entry.sha256} (corrupted, or "
                            f"changed at the source), so nothing was kept; try again, or {_how_to_help(entry)}") \
                from None
        except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as e:
            reason = e if isinstance(e, urllib.error.HTTPError) else getattr(e, "reason", None) or e  # HTTP Error 404
            raise UserError(f"cannot download {url} ({reason}); {_how_to_help(entry)}") from None
        if not entry.sha256 and not _complete(tmp):
            raise UserError(f"{url} sent an incomplete file, so nothing was kept; try again, or "
                            f"{_how_to_help(entry)}")
        os.replace(tmp, dst)
    finally:
        socket.setdefaulttimeout(timeout)
        if tmp.exists():
            tmp.unlink()


def _fetch_from_hub(entry: WeightsEntry, progress: bool) -> Path:
    try:
        from huggingface_hub import hf_hub_download
    except ImportError:
        raise UserError(f"{entry.model} {entry.tag} weights are on the Hugging Face Hub ({entry.hf_hub_id}): "
                        "pip install 'cnnzoo[hub]' (huggingface_hub), or " + _how_to_help(entry)) from None
    try:
        return Path(hf_hub_download(repo_id=entry.hf_hub_id, filename=entry.hf_filename))
    except Exception as e:  # noqa: BLE001 - offline, HTTP and cache errors all end the same way
        reason = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise UserError(f"cannot download {entry.download_url} ({type(e).__name__}: {reason}); "
                        f"{_how_to_help(entry)}") from None


def fetch(entry: WeightsEntry, progress: bool = True) -> Path:
    """The local file of ``entry``: from the cache when intact, else downloaded (mirror first when set).

    Args:
        entry: a catalogue entry (or one made by hand: any URL works, ``file://`` included).
        progress: show a progress bar on stderr while downloading.

    Raises:
        UserError: offline or an HTTP error (one line naming the URL, the cache path to put the file in by hand
            and ``CNNZOO_WEIGHTS_MIRROR``), a download whose checksum does not match, or a Hub file without
            ``huggingface_hub`` installed.
    """
    dst = cached_path(entry)
    if dst.is_file():
        if _intact(dst, entry):
            return dst
        dst.unlink()  # corrupted or replaced at the source: fetched anew
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if not mirror and not entry.url:
        return _fetch_from_hub(entry, progress)
    dst.parent.mkdir(parents=True, exist_ok=True)
    _download(_mirror_url(mirror, entry) if mirror else entry.url, dst, entry, progress)
    return dst


def resolve_pretrained(model_name: str, pretrained: Union[bool, str, "os.PathLike[str]"], progress: bool = True,
                       catalog: Optional[Catalog] = None) -> str:
    """The weights file ``create_model(model_name, pretrained=...)`` loads.

    Args:
        model_name: our registry name.
        pretrained: ``True`` (the model's ``imagenet`` weights), a tag (``tv1``), or a path to a file or run
            directory (returned as given).
        progress: show a download progress bar.
        catalog: entries to look tags up in instead of ``weights.json``.

    Raises:
        UserError: neither an existing path nor one of the model's tags (its tags listed); weights whose names
            cnnzoo cannot convert yet; or a failed download (see :func:`fetch`).
    """
    if pretrained is True:
        entry = get_weights(model_name, DEFAULT_TAG, catalog)
    elif isinstance(pretrained, (str, os.PathLike)) and str(pretrained):
        if Path(pretrained).expanduser().exists():
            return str(pretrained)
        tags = model_tags(model_name, catalog)
        if str(pretrained) not in tags:
            known = f"its weights tags: {', '.join(tags)}" if tags else "it has no catalogued weights"
            raise UserError(f"pretrained={str(pretrained)!r} for {model_name} is neither a path that exists (not "
                            f"found) nor a weights tag ({known}; `cnnzoo weights {model_name}`)")
        entry = get_weights(model_name, str(pretrained), catalog)
    else:
        tags = ", ".join(model_tags(model_name, catalog)) or "none"
        raise UserError(f"pretrained={pretrained!r} for {model_name} is not True, a weights tag ({tags}) or a "
                        "path that exists (not found)")
    if entry.convert:
        raise UserError(f"{model_name} {entry.tag} weights ({entry.origin}) use {entry.convert}'s parameter "
                        f"names, which cnnzoo cannot convert to its own yet; use another tag "
                        f"({', '.join(t for t in model_tags(model_name, catalog) if t not in entry.tags) or 'none'})"
                        " or a converted file's path")
    return str(fetch(entry, progress=progress))


def weights_preprocessing(model_name: str, pretrained: Union[None, bool, str],
                          catalog: Optional[Catalog] = None) -> Optional[Tuple[Tuple[float, ...], Tuple[float, ...], str]]:
    """``(mean, std, where from)`` that ``pretrained`` weights were trained with, where that is known.

    A catalogue tag (or ``True``), a file named as a catalogue entry's download (``resnet18-f37072fd.pth``), or
    cnnzoo weights (a run directory or our ``.safetensors``, whose metadata records them); ``None`` otherwise.
    """
    if not pretrained:
        return None
    if pretrained is True or (isinstance(pretrained, str) and not Path(pretrained).expanduser().exists()):
        tag = DEFAULT_TAG if pretrained is True else str(pretrained)
        if tag not in model_tags(model_name, catalog):
            return None
        e = get_weights(model_name, tag, catalog)
        return tuple(e.mean), tuple(e.std), f"the {e.origin or tag} weights"
    path = Path(str(pretrained)).expanduser()
    from .io import is_weights_spec, stored_meta

    if is_weights_spec(path):
        meta = stored_meta(path) or {}
        if meta.get("mean") and meta.get("std"):
            return tuple(meta["mean"]), tuple(meta["std"]), f"the run {path}"
        return None
    for e in weights_for(model_name, catalog):
        if e.url and path.name == e.file_name:
            return tuple(e.mean), tuple(e.std), f"the {e.origin or e.tag} weights"
    return None
