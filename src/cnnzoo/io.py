"""Files: atomic writes, weights as safetensors, training state through ``torch.load(weights_only=True)``, and
the run directory.

The bottom of the package (only :mod:`cnnzoo.errors` below it), so the trainer, the builder, transfer learning,
export and the analyses all read and write through one module.

Every file is written under a temporary name and renamed into place, and a checkpoint (weights plus state) is a
directory that becomes visible by one atomic rename of the ``LATEST`` pointer, so a kill at any moment leaves either
the previous checkpoint or the new one, never a torn file.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import sys
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Union

import torch
from torch import nn

from .errors import UserError

__all__ = [
    "FORMAT",
    "RunDir",
    "atomic_write",
    "write_text",
    "save_weights",
    "load_weights",
    "read_weights_meta",
    "save_state",
    "load_state",
    "weights_path",
    "is_weights_spec",
    "storage_error",
    "stored_meta",
    "RunLock",
    "DamagedFile",
    "progress_enabled",
    "Progress",
]

FORMAT = "cnnzoo/1"
# How cnnzoo names its checkpoints; pruning and LATEST accept nothing else.
CHECKPOINT_TAG = re.compile(r"epoch-\d{4,}|step-\d{8,}")
# Fault testing: seconds to pause inside every checkpoint write, so a test can kill the process there.
_WRITE_DELAY = float(os.environ.get("CNNZOO_CHECKPOINT_DELAY", "0") or 0)

PathLike = Union[str, Path]


# ----------------------------------------------------------------------------------------- atomic files


def atomic_write(path: PathLike, write: Callable[[str], None]) -> Path:
    """Call ``write(tmp_path)``, flush it to disk, then rename it to ``path``.

    The temporary name keeps the suffix (``.model.tmp-123.onnx``) for writers that look at it.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp-{os.getpid()}{path.suffix}")
    try:
        write(str(tmp))
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def write_text(path: PathLike, text: str) -> Path:
    """``path`` holds ``text``, written atomically."""
    return atomic_write(path, lambda tmp: Path(tmp).write_text(text))


def write_or_check(path: PathLike, text: str, check: bool, regenerate: str) -> Tuple[bool, str]:
    """A generated file (a catalogue): write it, or with ``check`` only say whether it is current.

    Returns ``(ok, message)``; ``regenerate`` is the command that writes the file anew.
    """
    path = Path(path)
    if check:
        current = path.is_file() and path.read_text() == text
        return current, (f"{path} is current" if current else f"{path} is stale: run {regenerate}")
    write_text(path, text)
    return True, f"wrote {path}"


# ----------------------------------------------------------------------------------------- weights and state


def _meta_str(meta: Dict[str, Any]) -> Dict[str, str]:
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}


def _decode(meta: Dict[str, str]) -> Dict[str, Any]:
    out: Dict[str, Any] = {}
    for k, v in (meta or {}).items():
        try:
            out[k] = json.loads(v)
        except (json.JSONDecodeError, TypeError):
            out[k] = v
    return out


def save_weights(path: PathLike, model: nn.Module, meta: Optional[Dict[str, Any]] = None) -> Path:
    """Write ``model``'s state dict as safetensors with the model's name and arguments in the metadata."""
    from safetensors.torch import save_file

    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    m = {"format": FORMAT}
    if getattr(model, "model_name", ""):
        m["model"] = model.model_name
        m["model_args"] = getattr(model, "model_args", {})
    m.update(meta or {})
    return atomic_write(path, lambda tmp: save_file(state, tmp, metadata=_meta_str(m)))


def _unreadable(path: Path, e: Exception) -> UserError:
    return UserError(f"{path} is not a readable safetensors file ({e}); was it written by cnnzoo?")


def load_weights(path: PathLike) -> Tuple[Dict[str, torch.Tensor], Dict[str, Any]]:
    """Read a safetensors file: (state dict, decoded metadata)."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            state = {k: f.get_tensor(k) for k in f.keys()}
    except (SafetensorError, OSError, ValueError) as e:
        raise DamagedFile(path, str(e).splitlines()[0][:80] if str(e) else type(e).__name__,
                          str(_unreadable(path, e))) from None
    return state, _decode(meta)


def read_weights_meta(path: PathLike) -> Dict[str, Any]:
    """The decoded metadata of a safetensors file, without reading its tensors."""
    from safetensors import SafetensorError, safe_open

    path = Path(path)
    if not path.is_file():
        raise UserError(f"weights file {str(path)!r} not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            return _decode(f.metadata() or {})
    except (SafetensorError, OSError, ValueError) as e:
        raise _unreadable(path, e) from None


class DamagedFile(UserError):
    """A file that is there but cannot be read whole: truncated or corrupt (not a refused pickle)."""

    def __init__(self, path: Path, why: str, message: Optional[str] = None) -> None:
        self.path, self.why = path, why
        super().__init__(message or f"{path} is damaged ({why}): it was cut short or corrupted")


def save_state(path: PathLike, state: Dict[str, Any]) -> Path:
    return atomic_write(path, lambda tmp: torch.save(state, tmp))


def load_state(path: PathLike) -> Dict[str, Any]:
    """Load training state with ``weights_only=True``: tensors and plain containers only, no code."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch's notes on pickle protocols are not for the user
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"training state {str(path)!r} not found") from None
    except Exception as e:  # an UnpicklingError for anything but plain data, or a corrupt file
        found = re.search(r"Unsupported global: GLOBAL ([\w.]+)", str(e))
        if found or "weights_only" in str(e).lower() and "unsupported" in str(e).lower():
            why = f"it asks to run {found.group(1)}" if found else type(e).__name__
            raise UserError(f"refusing to load {path}: not a plain-data training state ({why}); nothing in it was "
                            "run") from None
        raise DamagedFile(Path(path), f"{type(e).__name__}: {str(e).splitlines()[0][:80] if str(e) else ''}".rstrip(": ")) \
            from None


# ----------------------------------------------------------------------------------------- the run directory


def _strict(obj: Any) -> Any:
    if isinstance(obj, float) and (obj != obj or obj in (float("inf"), float("-inf"))):
        return None
    if isinstance(obj, dict):
        return {k: _strict(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_strict(v) for v in obj]
    return obj


class _File:
    """A path inside the run directory, by name: ``run.config`` is ``run.root / "config.yaml"``."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __get__(self, run: Optional["RunDir"], owner: type = None):
        return self if run is None else run.root / self.name


class RunDir:
    """The files of one run, by name: what ``cnnzoo train`` writes and every other command reads.

    ::

        config.yaml          the resolved config          metrics.csv     one row per epoch
        model.safetensors    final weights + metadata     results.json    the run's numbers
        curves.png           loss/accuracy curves         tensorboard/    event files
        checkpoints/<tag>/   model.safetensors, state.pt  checkpoints/LATEST  the newest tag
        checkpoints/best/    model.safetensors of the best validation epoch (epoch, val_acc in its metadata)
        eval/                confusion matrix of eval     stage1/, stage2/    a fine-tune's stages
    """

    config = _File("config.yaml")
    metrics = _File("metrics.csv")
    results = _File("results.json")
    weights = _File("model.safetensors")
    curves = _File("curves.png")
    tensorboard = _File("tensorboard")
    checkpoints = _File("checkpoints")
    eval_dir = _File("eval")
    best = _File("checkpoints/best")  # the best validation epoch's weights: save_best, best_weights
    legacy_best = _File("best.safetensors")  # where runs before checkpoints/best/ kept them (train.keep_best)
    # Inside checkpoints/: the pointer, and each checkpoint's two files.
    LATEST, WEIGHTS, STATE = "LATEST", "model.safetensors", "state.pt"
    # The key of a checkpoint's state that names the checkpoints pruning must keep (train.keep_top).
    PROTECTED = "protected_checkpoints"

    def __init__(self, root: PathLike) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"RunDir({str(self.root)!r})"

    def __str__(self) -> str:
        return str(self.root)

    def __fspath__(self) -> str:
        return str(self.root)

    def stage(self, n: int) -> "RunDir":
        """The run directory of stage ``n`` of a fine-tune."""
        return RunDir(self.root / f"stage{n}")

    def export(self, suffix: str) -> Path:
        """Where ``cnnzoo export`` puts this run's model by default (``model.onnx``, ``model.pt2``)."""
        return self.root / f"model{suffix}"

    # ------------------------------------------------------------------ state

    def exists(self) -> bool:
        return self.root.exists()

    def is_empty(self) -> bool:
        """No file of a run in it (the lock file alone does not count)."""
        return not self.root.exists() or not any(p.name != self.LOCK for p in self.root.iterdir())

    # ------------------------------------------------------------------ one owner at a time

    LOCK = ".cnnzoo.lock"

    def lock(self) -> "RunLock":
        """An exclusive lock on the run directory for this process (a context manager); see :class:`RunLock`."""
        return RunLock(self.root / self.LOCK)

    # ------------------------------------------------------------------ --overwrite without losing the old run

    def set_aside(self) -> Optional[Path]:
        """Move every file of the old run into ``.replaced-<pid>/`` inside the directory (None if there were none).

        The new run writes beside it; :meth:`drop_aside` deletes the old one once the new run has a checkpoint,
        :meth:`restore_aside` puts it back if the new run fails before that.
        """
        entries = [p for p in self.root.iterdir() if p.name != self.LOCK and not p.name.startswith(".replaced-")] \
            if self.root.is_dir() else []
        if not entries:
            return None
        aside = self.root / f".replaced-{os.getpid()}"
        aside.mkdir()
        for p in entries:
            os.replace(p, aside / p.name)
        return aside

    def restore_aside(self, aside: Path) -> None:
        for p in self.root.iterdir():
            if p.name != self.LOCK and p != aside:
                shutil.rmtree(p) if p.is_dir() and not p.is_symlink() else p.unlink()
        for p in aside.iterdir():
            os.replace(p, self.root / p.name)
        aside.rmdir()

    @staticmethod
    def drop_aside(aside: Path) -> None:
        shutil.rmtree(aside, ignore_errors=True)

    def write_text(self, path: Path, text: str) -> Path:
        return write_text(path, text)

    def write_json(self, path: Path, obj: Any) -> Path:
        """Strict JSON (``NaN`` and infinities, which strict parsers reject, become ``null``), written atomically."""
        return write_text(path, json.dumps(_strict(obj), indent=2, allow_nan=False) + "\n")

    def read_json(self, path: Path) -> Dict[str, Any]:
        """A JSON file of the run (``{}`` when there is none)."""
        if not path.is_file():
            return {}
        try:
            return json.loads(path.read_text())
        except (json.JSONDecodeError, OSError) as e:
            raise UserError(f"{path} is not valid JSON ({e})") from None

    # ------------------------------------------------------------------ checkpoints

    def _checkpoint_root(self) -> Path:
        """``checkpoints/``, refusing one that is a symlink (pruning must never reach outside the run)."""
        root = self.checkpoints
        if root.is_symlink():
            raise UserError(f"{root} is a symbolic link; cnnzoo writes and prunes checkpoints only inside the run "
                            "directory: make it a plain directory")
        root.mkdir(parents=True, exist_ok=True)
        return root

    def own_checkpoints(self) -> List[Path]:
        """The checkpoint directories cnnzoo wrote (``epoch-NNNN``, ``step-NNNNNNNN``), oldest first."""
        root = self.checkpoints
        if not root.is_dir() or root.is_symlink():
            return []
        return sorted((d for d in root.iterdir() if CHECKPOINT_TAG.fullmatch(d.name) and d.is_dir()
                       and not d.is_symlink()), key=lambda d: d.stat().st_mtime)

    KEEP = 2  # checkpoints kept: the newest and the one before it (the fallback when the newest is damaged)

    def _prune(self, current: Path, keep: int, protect: Iterable[str] = ()) -> None:
        """Remove cnnzoo's own checkpoints older than the newest ``keep``, never ``current`` or a ``protect`` tag."""
        spare = {current.name, *protect}
        for d in self.own_checkpoints()[:-keep]:
            if d.name not in spare:
                shutil.rmtree(d, ignore_errors=True)

    def save_checkpoint(self, tag: str, model: nn.Module, state: Dict[str, Any], meta: Dict[str, Any],
                        keep: int = KEEP) -> Path:
        """Write ``checkpoints/<tag>/{model.safetensors,state.pt}`` then point ``checkpoints/LATEST`` at it.

        Pruning keeps the newest ``keep`` and the tags listed under ``state[RunDir.PROTECTED]`` (the best
        validation epochs of ``train.keep_top``), and removes only directories named as cnnzoo names its checkpoints
        (a user's ``checkpoints/my-best-copy`` and ``checkpoints/best/`` stay), never through a symbolic link.
        """
        if not CHECKPOINT_TAG.fullmatch(tag):
            raise ValueError(f"checkpoint tag {tag!r} is not epoch-NNNN or step-NNNNNNNN")
        root = self._checkpoint_root()
        for stale in root.glob(".*.tmp-*"):  # left by a process killed while writing
            if stale.is_dir():
                shutil.rmtree(stale, ignore_errors=True)
            else:
                stale.unlink(missing_ok=True)
        tmp = root / f".{tag}.tmp-{os.getpid()}"
        tmp.mkdir()
        try:
            save_weights(tmp / self.WEIGHTS, model, meta)
            if _WRITE_DELAY:
                time.sleep(_WRITE_DELAY)
            save_state(tmp / self.STATE, state)
        except BaseException:  # a full disk, a signal: no half-written checkpoint stays behind
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        final = root / tag
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
        write_text(root / self.LATEST, tag + "\n")
        self._prune(final, keep, state.get(self.PROTECTED, ()))  # older checkpoints go once the new one is in place
        return final

    # ------------------------------------------------------------------ the best validation epoch

    def save_best(self, model: nn.Module, meta: Dict[str, Any]) -> Path:
        """Write ``checkpoints/best/model.safetensors`` (weights and ``meta``: epoch, validation accuracy).

        Weights only: a run resumes from ``LATEST``, never from its best epoch, so the optimiser state would only
        double the disk it takes. The new directory is written under a temporary name, the old one renamed aside,
        the new one renamed into place, the old one deleted: a kill leaves the old best/ or the new one whole (or,
        between the two renames, the old one aside, which :meth:`best_weights` puts back). Never pruned.
        """
        root = self._checkpoint_root()
        final = self.best
        tmp, old = root / f".best.tmp-{os.getpid()}", root / f".best.old-{os.getpid()}"
        for stale in (tmp, old):
            shutil.rmtree(stale, ignore_errors=True)
        tmp.mkdir()
        try:
            save_weights(tmp / self.WEIGHTS, model, meta)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        self._recover_best()
        if final.exists():
            os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
        return final

    def _recover_best(self) -> None:
        """A kill between save_best's two renames left best/ aside: put it back."""
        root = self.checkpoints
        if self.best.exists() or not root.is_dir():
            return
        aside = sorted(root.glob(".best.old-*"), key=lambda d: d.stat().st_mtime)
        if aside and (aside[-1] / self.WEIGHTS).is_file():
            os.replace(aside[-1], self.best)

    def best_weights(self) -> Optional[Path]:
        """The best validation epoch's weights: ``checkpoints/best/model.safetensors``, else an older run's
        ``best.safetensors``; None when there are none."""
        self._recover_best()
        for p in (self.best / self.WEIGHTS, self.legacy_best):
            if p.is_file():
                return p
        return None

    def latest_checkpoint(self) -> Optional[Path]:
        """The directory ``checkpoints/LATEST`` names, when it holds both files."""
        pointer = self.checkpoints / self.LATEST
        if not pointer.is_file():
            return None
        tag = pointer.read_text().strip()
        if not CHECKPOINT_TAG.fullmatch(tag):
            raise UserError(f"{pointer} names {tag[:60]!r}, which is not a checkpoint of this run (epoch-NNNN or "
                            "step-NNNNNNNN inside checkpoints/); nothing outside the run directory is read")
        d = self.checkpoints / tag
        return d if (d / self.WEIGHTS).is_file() and (d / self.STATE).is_file() else None

    def checkpoint_epoch(self) -> Optional[int]:
        """Epochs completed at the latest checkpoint (None without one)."""
        ck = self.latest_checkpoint()
        if ck is None:
            return None
        try:
            return int(read_weights_meta(ck / self.WEIGHTS).get("epoch", 0))
        except (UserError, TypeError, ValueError):
            return None

    def load_checkpoint(self) -> Tuple[Path, Dict[str, torch.Tensor], Dict[str, Any], str]:
        """``(checkpoint directory, weights, training state, note)`` of the latest intact checkpoint.

        A damaged latest checkpoint (a truncated file: a disk that filled, a copy cut short) gives way to the
        previous one, and ``note`` says so; a refused one (code in the pickle) stops with that error.
        """
        ck = self.latest_checkpoint()
        if ck is None:
            raise UserError(f"{self.root} has no checkpoint to resume from; start a new run without --resume")
        older = [d for d in reversed(self.own_checkpoints())
                 if d != ck and (d / self.WEIGHTS).is_file() and (d / self.STATE).is_file()]
        damaged = []
        for candidate in [ck, *older]:
            try:
                weights, _ = load_weights(candidate / self.WEIGHTS)
                state = load_state(candidate / self.STATE)
            except DamagedFile as e:
                damaged.append(f"{candidate.name} ({e.why})")
                continue
            note = f"checkpoint {', '.join(damaged)} is damaged: resuming from {candidate.name}" if damaged else ""
            if not damaged:  # a kill between LATEST and the pruning left one too many: finish that pruning
                self._prune(candidate, self.KEEP, state.get(self.PROTECTED, ()))
            return candidate, weights, state, note
        raise UserError(f"every checkpoint of {self.root} is damaged ({'; '.join(damaged)}); start the run again "
                        "with --overwrite")

    def weights_file(self) -> Path:
        """The final ``model.safetensors``, else the latest checkpoint's."""
        if self.weights.is_file():
            return self.weights
        ck = self.latest_checkpoint()
        if ck is not None:
            return ck / self.WEIGHTS
        raise UserError(f"{self.root} holds no model.safetensors or checkpoint; is it a cnnzoo run directory?")


class RunLock:
    """An advisory, exclusive lock on a run directory, held while one process trains into it.

    ``fcntl.flock`` on ``RUN/.cnnzoo.lock``: the kernel releases it when the owner exits, however it dies, so a
    lock left by a killed process is never stale; a live owner is named (pid, host, start) in the refusal. On
    systems without ``fcntl`` the lock is a no-op.
    """

    def __init__(self, path: Path) -> None:
        self.path, self.fd = Path(path), None

    def __enter__(self) -> "RunLock":
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return self
        import socket

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise UserError(f"run directory {self.path.parent} is in use by another cnnzoo process ({owner}); "
                            "wait for it to finish, or choose another --output") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%Y-%m-%d %H:%M:%S')}"
                  .encode(), 0)
        self.fd = fd
        return self

    def __exit__(self, *exc) -> None:
        if self.fd is not None:
            os.close(self.fd)  # closing releases the flock
            self.fd = None


# ----------------------------------------------------------------------------------------- progress on stderr


def progress_enabled(mode: str, stream: Any = None) -> bool:
    """The one progress policy (``run.progress``, the commands' ``--progress``; :data:`cnnzoo.choices.PROGRESS`):
    ``bar`` always, ``none`` never, ``auto`` only when ``stream`` (stderr) is a terminal, so that captured or
    redirected output (logs, the documentation's examples) never changes."""
    if mode == "bar":
        return True
    if mode == "auto":
        stream = sys.stderr if stream is None else stream
        return bool(getattr(stream, "isatty", lambda: False)())
    return False


class Progress:
    """A tqdm bar on stderr by :func:`progress_enabled`, gone when done (``leave=False``); nothing otherwise.

    ``start(total, desc)``, ``update(**postfix)`` per unit, ``close()``; or ``iterate(iterable, total, desc)``,
    which yields the items and closes the bar however the loop ends. ``enabled=False`` silences every rank but one.
    """

    def __init__(self, mode: str = "auto", enabled: bool = True, unit: str = "batch") -> None:
        self.on = enabled and progress_enabled(mode)
        self.unit = unit
        self.bar = None

    def start(self, total: Optional[int], desc: str, initial: int = 0) -> None:
        if self.on:
            from tqdm import tqdm

            self.bar = tqdm(total=total, desc=desc, initial=initial, unit=self.unit, leave=False, dynamic_ncols=True,
                            file=sys.stderr)

    def update(self, n: int = 1, **postfix: Any) -> None:
        if self.bar is not None:
            self.bar.update(n)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def iterate(self, iterable: Iterable, total: Optional[int] = None, desc: str = "") -> Iterable:
        if total is None:
            total = len(iterable) if hasattr(iterable, "__len__") else None
        self.start(total, desc)
        try:
            for item in iterable:
                yield item
                self.update()
        finally:
            self.close()


# Errors of the file system that are the user's to fix, not bugs: said in one line by storage_error.
_STORAGE_ERRNOS = {errno.ENOSPC: "no space left on the device", errno.EDQUOT: "the disk quota is used up",
                   errno.EROFS: "the file system is read-only", errno.EACCES: "permission denied"}


def storage_error(e: OSError, hint: str = "") -> Optional[UserError]:
    """One line for a full disk, a used-up quota, a read-only file system or a refused permission; else None."""
    what = _STORAGE_ERRNOS.get(getattr(e, "errno", None))
    if what is None:
        return None
    verb = "on" if e.errno == errno.EACCES else "writing"
    where = f" {verb} {e.filename}" if getattr(e, "filename", None) else ""
    return UserError(f"{what}{where}{'; ' + hint if hint else ''}")


def is_weights_spec(spec: Any) -> bool:
    """Whether ``spec`` names weights on disk (a run directory or a ``.safetensors`` file)."""
    if not isinstance(spec, (str, Path)):
        return False
    p = Path(spec)
    return p.is_dir() or p.suffix == ".safetensors"


def stored_meta(spec: Any) -> Optional[Dict[str, Any]]:
    """The metadata of cnnzoo weights (an existing run directory or our ``.safetensors``); None for anything else
    (a catalogue tag, a torchvision ``.pth``, a file that cannot be read)."""
    if not isinstance(spec, (str, Path)) or not is_weights_spec(spec) or not Path(spec).exists():
        return None
    try:
        meta = read_weights_meta(weights_path(spec))
    except UserError:
        return None
    return meta if meta.get("model") else None


def weights_path(spec: PathLike) -> Path:
    """The weights file of a run directory (its final ``model.safetensors``, else the latest checkpoint)."""
    p = Path(spec)
    if p.is_dir():
        return RunDir(p).weights_file()
    if p.suffix == ".safetensors":
        if not p.is_file():
            raise UserError(f"weights file {str(p)!r} not found")
        return p
    raise UserError(f"{str(p)!r} is neither a run directory nor a .safetensors file")
