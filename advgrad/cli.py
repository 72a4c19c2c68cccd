"""The ``advgrad`` command: benchmarks from YAML configs, reports, attacks, the model zoo.

Usage::

    advgrad init [PATH] [--force]       # write a commented config (default: advgrad.yaml)
    advgrad bench CONFIG.yaml [--out DIR] [--resume] [--force] [--limit N]  # run a config
    advgrad report RUN.json [--out DIR] [--csv FILE]               # print a run, plots, CSV
    advgrad compare RUN_A.json RUN_B.json [...] [--out DIR] [--force]  # runs side by side
    advgrad attacks                                                # registered attacks
    advgrad zoo list                                               # reference models
    advgrad gradients [--model digits-cnn] [--samples 32] [--seed 0]  # engine demo + FD check
    advgrad --version

Every command takes ``--debug`` (show the full traceback of an error, and TensorFlow's own
start-up and runtime log lines, which are otherwise kept off the terminal).

Exit codes: ``0`` done (for ``gradients``: the finite-difference check passed), ``1`` the
work failed (an attack raised, the gradient check failed, the run was interrupted), ``2`` bad
arguments, a bad config or a bad report file, or an output folder that ``bench`` may not
write to (see below). An error is one line on stderr, ``advgrad: error: ...``, with no
traceback unless ``--debug`` is given. A config is validated, and its model loaded, before
the output folder is created, so a bad config never leaves a half-written run behind; a run
that fails before writing anything removes the folder again if it created it.

``advgrad bench`` writes ``report.json``, ``report.md`` and PNG plots into the output folder
(``--out``, else the config's ``output``, else ``runs/<config name>``) and keeps the
evaluation state in ``state.json`` there, written after every batch.

Every command that writes a folder (bench, generate, train, saliency, report --out, compare
--out) follows one policy (`advgrad.run_folder`): it writes into a new folder, an empty one,
or its own run of the same config (``.advgrad-run.json`` in the folder says which). The same
command on its own finished run says so, shows where its result is and exits 0;
``--resume`` continues an unfinished one (bench, generate, train) and changes nothing in a
finished one; ``--force`` runs it again, replacing advgrad's own files there and leaving all
others alone. Anything else is refused before any work, exit 2, naming the files in the
way; a user's file of a name advgrad would write is never replaced, not even with
``--force``. A single output file (``report --csv FILE``, ``init PATH``) is written only if
it is new, holds that very output already, or with ``--force``. Files take the umask.

One run per folder at a time: a run holds an exclusive lock (``flock``) on
``.advgrad.lock`` in the output folder for as long as it runs, and the file names the
holder's process id and start time. A second run into that folder exits at once with code 2,
``another advgrad run (pid 1234, started ...) is writing to DIR``. The lock file stays behind
harmlessly (the lock itself ends with the process, even a killed one) and never counts as a
file in the way.

The parser is :mod:`argparse`, from the standard library: the command needs subcommands,
typed options and ``--help``, which argparse covers, and a robustness library should not pull
Click or Typer into every environment that installs it. Its one unwanted habit, printing the
usage and exiting from inside the parser on a bad argument, is replaced so that bad arguments
get the same one-line error and exit code 2 as bad configs.

>>> main(["--version"])  # doctest: +ELLIPSIS
advgrad ...
0
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import sys
import textwrap
import warnings
from collections.abc import Iterator, Sequence

from advgrad import commands
from advgrad._version import __version__
from advgrad.commands import PROG, UsageError
from advgrad.run_folder import RunFolderError

__all__ = ["main"]

RESUMABLE = ("bench", "generate", "train")  # the commands that take --resume


class _Parser(argparse.ArgumentParser):
    """An ArgumentParser that raises `UsageError` instead of printing usage and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def _int_at_least(low: int):
    """An argparse ``type`` for ints >= `low`, with the error wording of the configs."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < low:
            raise argparse.ArgumentTypeError(f"expected an int >= {low}, received {text!r}")
        return value

    return parse


_positive_int = _int_at_least(1)


FOLDER_POLICY = (
    "The output folder must be new, empty, or this command's own run of the same config: "
    "on its finished run the command says so and exits 0; anything else is refused, naming "
    "the files in the way."
)


def _folder_arguments(parser: argparse.ArgumentParser, resume: bool) -> None:
    """--force (and --resume): the output-folder policy's flags, in the same words."""
    if resume:
        parser.add_argument(
            "--resume",
            action="store_true",
            help="continue this config's unfinished run in the output folder (a finished "
            "one is left as it is)",
        )
    parser.add_argument(
        "--force",
        action="store_true",
        help="run again, or write into a folder that holds other files: advgrad's own files "
        "there are replaced, all others left alone"
        + ("; without --resume the run starts afresh" if resume else ""),
    )


def _config_arguments(parser: argparse.ArgumentParser, kind: str) -> None:
    """CONFIG.yaml, --out, --limit and --import: what every config-driven command takes."""
    parser.add_argument("config", metavar="CONFIG.yaml", help=f"the {kind} config")
    parser.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: the config's `output`, else runs/<config name>)",
    )
    parser.add_argument("--limit", type=_positive_int, metavar="N", help="only the first N samples")
    parser.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help="import MODULE before the model loads (custom layers and losses); repeatable",
    )


_non_negative_int = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    """The ``advgrad`` argument parser (init, bench, report, compare, attacks, zoo, gradients)."""
    from advgrad.config import SCHEMA  # TensorFlow-free
    from advgrad.generation.config import SCHEMA as GENERATION_SCHEMA
    from advgrad.saliency.config import SCHEMA as SALIENCY_SCHEMA
    from advgrad.training.config import SCHEMA as TRAINING_SCHEMA

    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser = _Parser(
        prog=PROG,
        description="Adversarial robustness of TensorFlow/Keras models.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    subcommands = parser.add_subparsers(dest="command", metavar="COMMAND")

    init = subcommands.add_parser(
        "init",
        parents=[common],
        help="write a commented example config for your own model and data",
        description=(
            "Write a commented benchmark config (a .keras model, an .npz data set, FGSM and "
            "PGD) to edit for your own model and data; `advgrad bench --help` shows every key."
        ),
    )
    init.add_argument(
        "path",
        nargs="?",
        default="advgrad.yaml",
        metavar="PATH",
        help="the file to write (default: %(default)s in the current folder)",
    )
    init.add_argument("--force", action="store_true", help="overwrite PATH if it exists")
    init.set_defaults(handler=commands.init)

    bench = subcommands.add_parser(
        "bench",
        parents=[common],
        help="run a benchmark config (YAML)",
        description="Evaluate a model against a suite of attacks, as a YAML config says. "
        + FOLDER_POLICY,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "config schema (every key but model, data, suite and eps is optional):\n\n"
            + textwrap.indent(SCHEMA, "  ")
            + "\nadvgrad init writes a commented example: `advgrad init my-model.yaml`"
        ),
    )
    bench.add_argument("config", metavar="CONFIG.yaml", help="the benchmark config")
    bench.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: the config's `output`, else runs/<config name>)",
    )
    _folder_arguments(bench, resume=True)
    bench.add_argument(
        "--limit",
        type=_positive_int,
        metavar="N",
        help="evaluate only the first N samples (overrides data.limit)",
    )
    bench.add_argument(
        "--import",
        dest="imports",
        action="append",
        default=[],
        metavar="MODULE",
        help=(
            "import MODULE before the model loads, so that its custom layers and losses "
            "(registered with @keras.saving.register_keras_serializable()) load in safe mode; "
            "searched first in the config's folder; repeatable, after the config's `imports`"
        ),
    )
    bench.set_defaults(handler=commands.bench)

    generate = subcommands.add_parser(
        "generate",
        parents=[common],
        help="generate adversarial data as a generation config (YAML) says",
        description=(
            "Attack a data set and write the adversarial examples as checksummed shards "
            "(tfrecord or npz) with a manifest; resumable (--resume writes missing or "
            "corrupt shards again); `advgrad verify` re-checks them. " + FOLDER_POLICY
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config schema:\n\n" + textwrap.indent(GENERATION_SCHEMA, "  "),
    )
    _config_arguments(generate, "generation")
    _folder_arguments(generate, resume=True)
    generate.add_argument(
        "--worker",
        metavar="I/N",
        help="run as worker I of N independent runs sharing the output folder "
        "(0 <= I < N <= 1024): this one writes the shards s with s %% N == I; the last "
        "to finish writes manifest.json",
    )
    generate.set_defaults(handler=commands.generate)

    train = subcommands.add_parser(
        "train",
        parents=[common],
        help="train a model adversarially as a training config (YAML) says",
        description=(
            "Adversarial training inside Keras fit (PGD-AT or TRADES): writes the plain "
            "model (model.keras) and its card (card.json); a killed run continues from its "
            "backup with --resume. " + FOLDER_POLICY
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config schema:\n\n" + textwrap.indent(TRAINING_SCHEMA, "  "),
    )
    _config_arguments(train, "training")
    _folder_arguments(train, resume=True)
    train.set_defaults(handler=commands.train)

    saliency = subcommands.add_parser(
        "saliency",
        parents=[common],
        help="write saliency maps (figures and an index) as a saliency config (YAML) says",
        description=(
            "Explain a model's predictions with the vanilla gradient, gradient x input, "
            "SmoothGrad, integrated gradients and Grad-CAM: one figure per method, the maps "
            "(attributions.npz) and index.md in the output folder. " + FOLDER_POLICY
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="config schema:\n\n" + textwrap.indent(SALIENCY_SCHEMA, "  "),
    )
    _config_arguments(saliency, "saliency")
    _folder_arguments(saliency, resume=False)
    saliency.set_defaults(handler=commands.saliency)

    verify = subcommands.add_parser(
        "verify",
        parents=[common],
        help="re-check the shards of a generated data folder",
        description="Re-check every shard's count and SHA-256 against the manifest; exit 1 "
        "if any is missing or corrupt (`advgrad generate --resume` writes them again).",
    )
    verify.add_argument("out_dir", metavar="OUT_DIR", help="a folder written by generate")
    verify.set_defaults(handler=commands.verify)

    report = subcommands.add_parser(
        "report",
        parents=[common],
        help="print a run's report, optionally write its plots",
        description="Print the Markdown table of a report.json; with --out, write report.md "
        "and the plots (a new or empty folder, or this report's own); with --csv, the "
        "per-sample outcomes (a new file, or one that holds them already).",
    )
    report.add_argument("run", metavar="RUN.json", help="a report.json written by bench")
    report.add_argument("--out", metavar="DIR", help="write report.md and the plots here")
    report.add_argument(
        "--csv",
        metavar="FILE",
        help="write the per-sample outcomes (label, outcome per eps and attack) as CSV",
    )
    report.add_argument(
        "--force",
        action="store_true",
        help="replace the --csv file, or write into an --out folder that holds other files "
        "(advgrad's own replaced, all others left alone)",
    )
    report.set_defaults(handler=commands.report)

    compare = subcommands.add_parser(
        "compare",
        parents=[common],
        help="compare the robust accuracy of several runs",
        description=(
            "Print one Markdown table of several report.json files' worst-case robust "
            "accuracy against eps (one row per run); with --out, write compare.md and "
            "compare.png. Runs must share the threat model (norm, bounds, budget, targeting, "
            "data) unless --force is given; models and attack lists may differ."
        ),
    )
    compare.add_argument(
        "runs", nargs="+", metavar="RUN.json", help="two or more report.json files written by bench"
    )
    compare.add_argument("--out", metavar="DIR", help="write compare.md and compare.png here")
    compare.add_argument(
        "--force",
        action="store_true",
        help="compare runs whose threat models differ; write into an --out folder that holds "
        "other files (advgrad's own replaced, all others left alone)",
    )
    compare.set_defaults(handler=commands.compare)

    attacks = subcommands.add_parser(
        "attacks",
        parents=[common],
        help="list the registered attacks and their defaults",
        description="List the registered attacks with their default settings.",
    )
    attacks.set_defaults(handler=commands.attacks)

    zoo = subcommands.add_parser(
        "zoo",
        parents=[common],
        help="reference models",
        description="The reference models trained on the embedded data sets.",
    )
    zoo_commands = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zoo_list = zoo_commands.add_parser(
        "list", parents=[common], help="the model cards (name, data, clean accuracy)"
    )
    zoo_list.set_defaults(handler=commands.zoo_list)
    zoo.set_defaults(handler=commands.zoo_missing)

    gradients = subcommands.add_parser(
        "gradients",
        parents=[common],
        help="input gradients of a zoo model, checked against finite differences",
        description=(
            "Compute advgrad.input_gradients for test samples of a zoo model, summarize them "
            "and compare them to central finite differences (exit 1 if the check fails)."
        ),
    )
    gradients.add_argument(
        "--model", default="digits-cnn", help="zoo model name (default: %(default)s)"
    )
    gradients.add_argument(
        "--samples",
        type=_positive_int,
        default=32,
        metavar="N",
        help="test samples to use (default: %(default)s)",
    )
    gradients.add_argument(
        "--seed",
        type=_non_negative_int,
        default=0,
        help="which samples and coordinates are drawn (default: %(default)s)",
    )
    gradients.add_argument(
        "--coordinates",
        type=_positive_int,
        default=32,
        metavar="N",
        help="coordinates checked by finite differences (default: %(default)s)",
    )
    gradients.set_defaults(handler=commands.gradients)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``advgrad`` command.

    Args:
        argv: The arguments, without the program name. Defaults to ``sys.argv[1:]``.

    Returns:
        The exit code: 0 done, 1 failure, 2 bad arguments or bad config.
    """
    from advgrad.config import ConfigError

    args_list = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args_list
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except UsageError as err:
        return _fail(err, 2, debug)
    except SystemExit as exit_:  # --help and --version print, then exit
        return exit_.code if isinstance(exit_.code, int) else 0
    args.debug = debug or args.debug  # a subcommand's default must not undo `advgrad --debug`
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 2
    if not args.debug:
        # The command owns its process: TensorFlow (imported later, by the handler) keeps
        # its INFO lines to itself. Importing advgrad as a library changes no setting.
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
        _quiet_tensorflow()
    try:
        with _clean_output(args.debug):
            return int(handler(args) or 0)
    except (UsageError, ConfigError, RunFolderError) as err:
        return _fail(err, 2, args.debug)
    except KeyboardInterrupt:
        if args.debug:
            raise
        hint = "; continue with --resume" if args.command in RESUMABLE else ""
        print(f"{PROG}: error: interrupted{hint}", file=sys.stderr)
        return 1
    except OSError as err:
        if err.errno == errno.ENOSPC and not args.debug:
            where = f" writing {err.filename}" if err.filename else ""
            hint = " continue with --resume" if args.command in RESUMABLE else " run it again"
            print(
                f"{PROG}: error: no space left on the device{where}: free some space, then{hint}",
                file=sys.stderr,
            )
            return 1
        return _fail(err, 1, args.debug, with_type=True)
    except Exception as err:
        return _fail(err, 1, args.debug, with_type=True)


def _fail(err: BaseException, code: int, debug: bool, with_type: bool = False) -> int:
    if debug:
        raise err
    text = " ".join(str(err).split()) or type(err).__name__
    if with_type and not isinstance(err, (ValueError, OSError)):
        text = f"{type(err).__name__}: {text}"
    print(f"{PROG}: error: {text}", file=sys.stderr)
    return code


def _quiet_tensorflow() -> None:
    """TensorFlow's Python-side logging down to errors, so the command's output stays clean."""
    import logging

    logging.getLogger("tensorflow").setLevel(logging.ERROR)
    try:
        import absl.logging

        absl.logging.set_verbosity(absl.logging.ERROR)
    except ImportError:  # pragma: no cover - absl ships with TensorFlow
        pass


@contextlib.contextmanager
def _clean_output(debug: bool) -> Iterator[None]:
    """One-line warnings, and TensorFlow's native log lines kept off the terminal.

    TensorFlow's C++ runtime writes straight to file descriptor 2 (``I0000 ... cuInit``,
    ``Not handling type DT_DOUBLE``...), whatever ``TF_CPP_MIN_LOG_LEVEL`` says, because absl
    logging is never initialized. Unless ``--debug`` is given, descriptor 2 goes to
    ``/dev/null`` while the command runs and Python's ``sys.stderr`` (errors, warnings,
    progress bars) is rebound to the real stderr. When ``sys.stderr`` is not descriptor 2
    (pytest's capture, an embedding application) nothing is redirected.
    """

    def one_line(message, category, filename, lineno, file=None, line=None):
        from tqdm import tqdm  # its write() clears the progress bars, prints, redraws them

        text = " ".join(str(message).split())
        tqdm.write(f"{PROG}: warning: {text}", file=file or sys.stderr)

    with warnings.catch_warnings():
        warnings.showwarning = one_line
        try:
            fd = sys.stderr.fileno()
        except (AttributeError, OSError, ValueError):
            fd = None
        if debug or fd != 2:
            yield
            return
        sys.stderr.flush()
        saved = os.dup(2)
        stream = os.fdopen(saved, "w", buffering=1, errors="backslashreplace")
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 2)
        os.close(devnull)
        original, sys.stderr = sys.stderr, stream
        try:
            yield
        finally:
            stream.flush()
            sys.stderr = original
            os.dup2(saved, 2)
            stream.close()


if __name__ == "__main__":
    raise SystemExit(main())
