"""The ``cnnzoo`` command. Thin: every subcommand is a module in ``cnnzoo.commands`` with
``add_parser(subparsers)``, whose parser's ``func(args)`` calls the library.

Bad input (``UserError``, ``ValueError``, a missing file) is one line on stderr and exit 2;
``CNNZOO_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import importlib
import os
import pkgutil
import sys
from typing import List, Optional

from . import __version__, commands
from .errors import ParamError, UserError

# The order of `cnnzoo --help`; modules not named here follow alphabetically.
ORDER = ["train", "eval", "predict", "finetune", "list", "info", "summary", "conv_arith", "cost", "viz",
         "compare", "benchmark", "export"]


# Library parameters that no flag of their own sets: the config key that does (--set KEY=VALUE, recipes).
PARAM_SOURCES = {"freeze_until": "model.freeze_until", "freeze": "model.freeze", "freeze_after": "train.freeze_after"}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="cnnzoo",
        description="Build, train, fine-tune, analyse and compare the classic CNNs.",
    )
    parser.add_argument("--version", action="version", version=f"cnnzoo {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    names = [m.name for m in pkgutil.iter_modules(commands.__path__) if not m.name.startswith("_")]
    names.sort(key=lambda n: (ORDER.index(n) if n in ORDER else len(ORDER), n))
    for name in names:
        importlib.import_module(f"{commands.__name__}.{name}").add_parser(sub)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:  # `cnnzoo list | head`: the reader has gone; end quietly, as Unix tools do
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except OSError:
            pass
        return 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader has gone
    except KeyboardInterrupt:
        print("cnnzoo: interrupted", file=sys.stderr)
        return 130
    except (UserError, ValueError, OSError) as e:
        if os.environ.get("CNNZOO_DEBUG"):
            raise
        return _error_line(e)


def _error_line(e: Exception) -> int:
    """Bad input or a file system that says no: one line on stderr, exit status 2."""
    if isinstance(e, ParamError):  # a library parameter, shown as the flag or config key that sets it
        e = UserError(e.for_flag(PARAM_SOURCES.get(e.param, "--" + e.param.replace("_", "-"))))
    elif isinstance(e, OSError) and not isinstance(e, (FileNotFoundError, IsADirectoryError, NotADirectoryError)):
        from .io import storage_error

        err = storage_error(e)
        if err is None:  # an OSError that is not the user's to fix: a bug, with its traceback
            raise e
        e = err
    msg = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    if isinstance(e, OSError) and getattr(e, "filename", None) and str(e.filename) not in msg:
        msg = f"{msg}: {e.filename}"
    print(f"cnnzoo: error: {msg}", file=sys.stderr)
    return 2


def entry() -> None:
    """The console script and ``python -m cnnzoo``: :func:`main`, then exit.

    Where PyTorch is loaded, the interpreter's teardown (freeing its thousands of modules) takes 0.7-1.5 s
    after the command has finished (benchmarks/RESULTS.md, "Command exit"); every file a command writes is closed
    by then, so once the standard streams are flushed the process leaves at once. An exception leaves as usual.
    """
    code = main()
    if "torch" not in sys.modules:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # a closed or gone reader: nothing left to write to
            pass
    os._exit(code)


if __name__ == "__main__":  # pragma: no cover
    entry()
