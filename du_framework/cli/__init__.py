"""The ``unfold`` command line: ``unfold list``, ``compare``, ``train``, ``examples``, ``completion``.

Also available as ``python -m du_framework``. See docs/cli.md. ``unfold docs``
(left out of ``--help``; for maintainers) regenerates the option tables of
docs/cli.md from the declarations (:func:`render_option_tables`).

Imports go one way: this module imports :mod:`.parser` (every command's options) and
the command modules (``cmd_*``: :mod:`.listing`, :mod:`.examples`, :mod:`.experiments`,
:mod:`.tuning`, :mod:`.views`, :mod:`.completion`); :mod:`.parser` imports some of
them; of the command line they import only :mod:`._common`, which imports none of it.
"""

from __future__ import annotations

from . import interrupts

interrupts.defer_while_importing()  # in the unfold process, a Ctrl-C before main's handler waits for it

import contextlib
import errno
import gc
import os
import signal
import sys
import traceback

from ..errors import ConfigError, DUError, TrainingDivergedError
from .completion import COMPLETE_COMMAND, cmd_complete, cmd_completion, completion_script
from .examples import cmd_examples
from .generalise import cmd_generalise
from .experiments import cmd_compare, cmd_train
from .listing import DOCS_COMMAND, cmd_docs, cmd_list, render_option_tables
from .parser import build_parser
from .tuning import cmd_tune
from .views import cmd_plot, cmd_report

__all__ = ["main", "entry", "build_parser", "render_option_tables", "completion_script", "DOCS_COMMAND"]


EXIT_OK = 0
EXIT_DIVERGED = 1  # training diverged; the last good parameters are saved
EXIT_INVALID = 2  # invalid input, refused with a message (argparse uses 2 too)
EXIT_FILESYSTEM = 3  # a file could not be read or written: full disk, permissions, read-only, ...
EXIT_MEMORY = 4  # out of memory (host or accelerator), or refused up front as too large
EXIT_BUG = 70  # an unexpected exception: a bug in du-framework or a plugin (EX_SOFTWARE)
EXIT_INTERRUPTED = 130  # Ctrl-C (128 + SIGINT)

_MEMORY_HINT = ("lower train.batch_size or train.depth, set train.remat = true (or more levels), "
                "or lower evaluation.batch_size")


def _error(message: str) -> None:
    print(f"unfold: error: {' '.join(str(message).split())}", file=sys.stderr)


def _os_error_message(error: OSError) -> str:
    what = error.strerror or str(error) or type(error).__name__
    paths = [str(p) for p in (error.filename, error.filename2) if p is not None]
    where = f" ({' -> '.join(repr(p) for p in paths)})" if paths else ""
    hint = {errno.ENOSPC: "free disk space or write elsewhere (--out)",
            errno.EDQUOT: "free space within the disk quota or write elsewhere (--out)",
            errno.EACCES: "check the permissions or write elsewhere (--out)",
            errno.EPERM: "check the permissions or write elsewhere (--out)",
            errno.EROFS: "the file system is read-only; write elsewhere (--out)"}.get(error.errno)
    code = f" [errno {error.errno}]" if error.errno else ""
    return f"file system: {what}{where}{code}" + (f"; {hint}" if hint else "")


def _is_resource_exhausted(error: BaseException) -> bool:
    """XLA ran out of accelerator (or host) memory: ``XlaRuntimeError``/``JaxRuntimeError`` RESOURCE_EXHAUSTED."""
    return (type(error).__name__ in ("XlaRuntimeError", "JaxRuntimeError")
            and ("RESOURCE_EXHAUSTED" in str(error) or "Out of memory" in str(error)))


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else ""


def main(argv: list[str] | None = None) -> int:
    """Run the command line; returns the exit status (see docs/cli.md, "Exit status").

    Every failure ends as one line ``unfold: error: ...`` on stderr, without a traceback,
    except an unexpected exception (a bug), whose traceback is printed before that line.
    """
    with interrupts.handling(terminate=False):  # Ctrl-C: KeyboardInterrupt, never lost in a gc callback
        return _main(argv)


def _main(argv: list[str] | None) -> int:
    args = None
    handlers = {"list": cmd_list, "compare": cmd_compare, "train": cmd_train, "docs": cmd_docs,
                "examples": cmd_examples, "completion": cmd_completion,
                "tune": cmd_tune, "plot": cmd_plot, "report": cmd_report, "generalise": cmd_generalise,
                COMPLETE_COMMAND: cmd_complete}
    terminating = contextlib.ExitStack()
    try:
        interrupts.raise_pending()  # a Ctrl-C while the package was imported: stop before any work
        args = build_parser().parse_args(argv)
        if args.command in ("compare", "train", "tune"):
            from ..engine import enable_compile_cache
            from ..engine.distributed import initialize_from_environment

            if args.command == "tune" and os.environ.get("DU_NUM_PROCESSES", "1").strip() not in ("", "1"):
                raise ConfigError("unfold tune spreads trials over processes through one study (--storage URL "
                                  "--study NAME, docs/tuning.md), not jax.distributed: unset DU_NUM_PROCESSES")
            if args.command != "tune":
                initialize_from_environment()  # DU_NUM_PROCESSES etc.: several processes train one run
            enable_compile_cache()  # a later run skips XLA compilation (DU_COMPILE_CACHE=off to disable)
            terminating.enter_context(interrupts.handling())  # SIGTERM ends a run as Ctrl-C does
        elif args.command == "generalise":
            from ..engine import enable_compile_cache

            enable_compile_cache()  # one evaluation program per solver, depth and problem shape: kept on disk
        return handlers[args.command](args)
    except TrainingDivergedError as error:
        _error(error)
        return EXIT_DIVERGED
    except KeyboardInterrupt:
        print("\n" + _interrupted_message(args), file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:  # output piped into a reader that closed early (unfold list | head)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except DUError as error:
        from ..workbench.preflight import InsufficientMemoryError

        _error(error)
        return EXIT_MEMORY if isinstance(error, InsufficientMemoryError) else EXIT_INVALID
    except OSError as error:
        resume = getattr(args, "resume_command", None)
        _error(_os_error_message(error) + (f"; then continue the run with: {resume}" if resume else ""))
        return EXIT_FILESYSTEM
    except MemoryError:
        _error(f"out of memory (MemoryError): {_MEMORY_HINT}, or use smaller problem sizes")
        return EXIT_MEMORY
    except RecursionError as error:
        _error(f"recursion too deep ({error}); a setting is far too large (train.remat, train.depth?)")
        return EXIT_INVALID
    except Exception as error:  # noqa: BLE001 - XLA's errors and the unexpected
        if _is_resource_exhausted(error):
            _error(f"out of memory on the device (XLA RESOURCE_EXHAUSTED: {_first_line(error)[:300]}): "
                   f"{_MEMORY_HINT}")
            return EXIT_MEMORY
        traceback.print_exc()
        _error(f"unexpected {type(error).__name__}: {_first_line(error)[:500]}. This is a bug in du-framework or "
               f"a plugin; please report it with the traceback above")
        return EXIT_BUG
    finally:
        terminating.close()


def _interrupted_message(args) -> str:
    """The one line of an interrupted command: what is kept, and what to do next."""
    what = "SIGTERM" if interrupts.received() == signal.SIGTERM else "Ctrl-C"
    resume, published = getattr(args, "resume_command", None), getattr(args, "published_to", None)
    if published:
        return f"unfold: error: interrupted ({what}) after the run was complete and published to {published}/"
    if resume:
        from ..workbench.training import last_saved

        saved = last_saved()
        kept = f"the state after the last completed stage is saved ({saved})" if saved else "the run so far is saved"
        return f"unfold: error: interrupted ({what}); {kept}; continue with: {resume}"
    return (f"unfold: error: interrupted ({what}); nothing was published (every file written so far is whole, "
            f"each is written atomically); run the command again to start over")


def entry() -> int:
    """The ``unfold`` console script: :func:`main`, then a quick exit.

    Every object lives until the process ends, so the final garbage collection
    over JAX's large module graph (about 0.3 s) is skipped with ``gc.freeze``;
    atexit handlers and stream flushing still run as usual.
    """
    try:
        code = main()
    except KeyboardInterrupt:  # between two of main's steps (restoring a handler, ...)
        print("\n" + _interrupted_message(None), file=sys.stderr)
        code = EXIT_INTERRUPTED
    gc.freeze()
    return code


if __name__ == "__main__":
    sys.exit(entry())
