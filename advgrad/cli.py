"""The ``advgrad`` command: benchmarks from YAML configs, reports, attacks, the model zoo.

Usage::

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
evaluation state in ``state.json`` there, written after every batch: a run that was stopped
continues with ``--resume``. It writes only into a new folder, an empty one, or, with
``--resume``, one that holds a run's ``state.json`` (the state's fingerprint then refuses
another config's run); a folder that already holds a run is refused without ``--resume``,
and a folder holding other files is refused before any work, its files named. ``--force``
writes into the folder anyway: advgrad's own files there (``report.json``, ``report.md``, the
PNG plots, ``state.json``) are replaced, all others left alone, and without ``--resume`` the
run starts afresh. Every output file gets mode 0644, whatever the umask.

One run per folder at a time: ``bench`` holds an exclusive lock (``flock``) on
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
import os
import pathlib
import shutil
import sys
import tempfile
import time
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

from advgrad._io import atomic_write
from advgrad._version import __version__
from advgrad.run_folder import REPORT_JSON, STATE_FILE, RunFolder, RunFolderError

__all__ = ["main"]

PROG = "advgrad"
REPORT_MD = "report.md"
COMPARE_MD = "compare.md"
COMPARE_PNG = "compare.png"


class UsageError(Exception):
    """Bad command-line arguments or files: exit code 2, one line on stderr."""


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
_non_negative_int = _int_at_least(0)


def build_parser() -> argparse.ArgumentParser:
    """The ``advgrad`` argument parser (bench, report, compare, attacks, zoo, gradients)."""
    common = _Parser(add_help=False)
    common.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    parser = _Parser(
        prog=PROG,
        description="Adversarial robustness of TensorFlow/Keras models.",
        parents=[common],
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    bench = commands.add_parser(
        "bench",
        parents=[common],
        help="run a benchmark config (YAML)",
        description="Evaluate a model against a suite of attacks, as a YAML config says.",
    )
    bench.add_argument("config", metavar="CONFIG.yaml", help="the benchmark config")
    bench.add_argument(
        "--out",
        metavar="DIR",
        help="output folder (default: the config's `output`, else runs/<config name>)",
    )
    bench.add_argument(
        "--resume",
        action="store_true",
        help="continue the run whose state.json is in the output folder",
    )
    bench.add_argument(
        "--force",
        action="store_true",
        help=(
            "write into the output folder even if it holds other files or another run: "
            "advgrad's own files there (report.json, report.md, the PNG plots, state.json) "
            "are replaced, all others left alone; without --resume the run starts afresh"
        ),
    )
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
    bench.set_defaults(handler=_bench)

    report = commands.add_parser(
        "report",
        parents=[common],
        help="print a run's report, optionally write its plots",
        description="Print the Markdown table of a report.json; with --out, write the plots.",
    )
    report.add_argument("run", metavar="RUN.json", help="a report.json written by bench")
    report.add_argument("--out", metavar="DIR", help="write report.md and the plots here")
    report.add_argument(
        "--csv",
        metavar="FILE",
        help="write the per-sample outcomes (label, outcome per eps and attack) as CSV",
    )
    report.set_defaults(handler=_report)

    compare = commands.add_parser(
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
        "--force", action="store_true", help="compare runs whose threat models differ"
    )
    compare.set_defaults(handler=_compare)

    attacks = commands.add_parser(
        "attacks",
        parents=[common],
        help="list the registered attacks and their defaults",
        description="List the registered attacks with their default settings.",
    )
    attacks.set_defaults(handler=_attacks)

    zoo = commands.add_parser(
        "zoo",
        parents=[common],
        help="reference models",
        description="The reference models trained on the embedded data sets.",
    )
    zoo_commands = zoo.add_subparsers(dest="zoo_command", metavar="ZOO_COMMAND")
    zoo_list = zoo_commands.add_parser(
        "list", parents=[common], help="the model cards (name, data, clean accuracy)"
    )
    zoo_list.set_defaults(handler=_zoo_list)
    zoo.set_defaults(handler=_zoo_missing)

    gradients = commands.add_parser(
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
    gradients.set_defaults(handler=_gradients)
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
        hint = "; continue with --resume" if args.command == "bench" else ""
        print(f"{PROG}: error: interrupted{hint}", file=sys.stderr)
        return 1
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
        text = " ".join(str(message).split())
        print(f"{PROG}: warning: {text}", file=file or sys.stderr)

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


# ------------------------------------------------------------------------------- bench
def _bench(args: argparse.Namespace) -> int:
    from advgrad._validation import ArgumentError
    from advgrad.config import build_run, load_config

    _check_out_argument(args.out)
    config = load_config(args.config)
    try:
        config = config.with_overrides(limit=args.limit, output=args.out, imports=args.imports)
    except ArgumentError as err:
        raise UsageError(f"argument --{err.argument}: {err.reason}") from None
    out = config.output
    if out is None:
        out = pathlib.Path("runs", pathlib.Path(args.config).stem).absolute()
    with RunFolder(out, resume=args.resume, force=args.force) as folder:
        folder.check()  # before any work: a folder that is not ours is refused at once
        run = build_run(config)  # loads the model and data: every config error surfaces here

        from advgrad.evaluate import evaluate

        folder.open()  # created, locked, and checked again under the lock
        state = out / STATE_FILE
        if args.force and not args.resume:
            state.unlink(missing_ok=True)  # a fresh run, not a resumed one
        start = time.perf_counter()
        report = evaluate(
            run.model,
            run.data,
            suite=run.suite,
            eps=run.eps,
            batch_size=config.batch_size,
            state=str(state),
            seed=config.seed,
            return_adversarial=config.plot_examples,
            progress=True,
            targets=config.targets,
        )
        seconds = time.perf_counter() - start
        report.to_json(str(out / REPORT_JSON))
        markdown = report.to_markdown()
        _write_markdown(markdown, out)
        plots = _save_plots(report, out)
    print(markdown.rstrip("\n"))
    print()
    written = [REPORT_JSON, REPORT_MD, *(pathlib.Path(p).name for p in plots)]
    print(f"wrote {', '.join(written)} to {out} ({seconds:.1f} s)")
    return 0


def _check_out_argument(out: str | None) -> None:
    if out is not None and not out.strip():
        raise UsageError(f"--out: expected a folder path, received {out!r}")


def _write_markdown(markdown: str, out: pathlib.Path) -> None:
    atomic_write(out / REPORT_MD, markdown + ("" if markdown.endswith("\n") else "\n"))


def _save_plots(report: Any, out: pathlib.Path) -> list[str]:
    """The plots, drawn in a scratch folder, then put in `out` by `atomic_write` (mode 0644)."""
    with tempfile.TemporaryDirectory(prefix=".advgrad-plots-", dir=out) as scratch:
        try:
            drawn = report.save_plots(scratch)
        except ImportError as err:  # matplotlib is optional
            print(f"{PROG}: no plots written ({err}); pip install matplotlib", file=sys.stderr)
            return []
        written = []
        for path in drawn:
            target = out / pathlib.Path(path).name
            atomic_write(target, lambda tmp, path=path: shutil.copyfile(path, tmp))
            written.append(str(target))
    return written


# ------------------------------------------------------------------------------ report
def _report(args: argparse.Namespace) -> int:
    _check_out_argument(args.out)
    path = pathlib.Path(args.run)
    if not path.exists():
        raise UsageError(f"RUN.json: file not found: {path}")
    if not path.is_file():  # a folder, a FIFO, a device: never read
        raise UsageError(f"RUN.json: not a regular file: {path}")
    from advgrad.report import Report

    try:
        report = Report.from_json(str(path))
    except ValueError as err:  # malformed or out-of-range content: a bad file, exit 2
        raise UsageError(str(err)) from err
    markdown = report.to_markdown()
    print(markdown.rstrip("\n"))
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        _write_markdown(markdown, out)
        plots = _save_plots(report, out)
        written = [REPORT_MD, *(pathlib.Path(p).name for p in plots)]
        print()
        print(f"wrote {', '.join(written)} to {out.absolute()}")
    if args.csv is not None:
        if not args.csv.strip():
            raise UsageError(f"--csv: expected a file path, received {args.csv!r}")
        target = pathlib.Path(args.csv)
        if target.is_dir():
            raise UsageError(f"--csv: {target} is a folder, expected a file path")
        report.to_csv(target)
        print(f"wrote {target.absolute()} ({report.n_samples} samples)")
    return 0


# ----------------------------------------------------------------------------- compare
def _compare(args: argparse.Namespace) -> int:
    _check_out_argument(args.out)
    if len(args.runs) < 2:
        raise UsageError(f"compare: expected two or more RUN.json files, received {len(args.runs)}")
    from advgrad.compare import ThreatModelError, compare
    from advgrad.report import Report

    reports, names = [], []
    for run in args.runs:
        path = pathlib.Path(run)
        if not path.exists():
            raise UsageError(f"RUN.json: file not found: {path}")
        if not path.is_file():  # a folder, a FIFO, a device: never read
            raise UsageError(f"RUN.json: not a regular file: {path}")
        try:
            reports.append(Report.from_json(str(path)))
        except ValueError as err:  # malformed or out-of-range content: a bad file, exit 2
            raise UsageError(str(err)) from err
        names.append(_run_name(path, names))
    try:
        comparison = compare(reports, names, force=args.force)
    except ThreatModelError as err:
        raise UsageError(f"{err} (pass --force to compare them anyway)") from None
    markdown = comparison.to_markdown()
    print(markdown.rstrip("\n"))
    if args.out:
        out = pathlib.Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        atomic_write(out / COMPARE_MD, markdown)
        written = [COMPARE_MD]
        try:
            comparison.save_plot(out / COMPARE_PNG)
            written.append(COMPARE_PNG)
        except ImportError as err:  # matplotlib is optional
            print(f"{PROG}: no plot written ({err}); pip install matplotlib", file=sys.stderr)
        print()
        print(f"wrote {', '.join(written)} to {out.absolute()}")
    return 0


def _run_name(path: pathlib.Path, taken: list[str]) -> str:
    """A run's name: its folder's name for a report.json, else the file's stem; made unique."""
    resolved = path.absolute()
    name = resolved.parent.name if path.name == REPORT_JSON and resolved.parent.name else path.stem
    unique, count = name, 1
    while unique in taken:
        count += 1
        unique = f"{name}#{count}"
    return unique


# ----------------------------------------------------------------------------- attacks
def _attacks(args: argparse.Namespace) -> int:
    from advgrad.attacks import get_attack, list_attacks

    for name in list_attacks():
        attack = get_attack(name)
        config = attack.get_config()
        summary = _first_line(type(attack).__doc__)
        print(f"{name} ({type(attack).__name__}): {summary}" if summary else name)
        settings = [f"{k}={_short(v)}" for k, v in config.items() if k != "name"]
        print("  " + ", ".join(settings))
    return 0


def _first_line(doc: str | None) -> str:
    if not doc:
        return ""
    paragraph = doc.strip().split("\n\n")[0]
    return " ".join(paragraph.split())


def _short(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


# --------------------------------------------------------------------------------- zoo
def _zoo_missing(args: argparse.Namespace) -> int:
    raise UsageError("zoo: expected a command: list (see `advgrad zoo --help`)")


def _zoo_list(args: argparse.Namespace) -> int:
    from advgrad import zoo

    cards = zoo.list_models()
    rows = [("name", "data", "clean accuracy", "description")]
    for card in cards:
        if card.clean_accuracy is None:
            accuracy = f"not built (>= {card.min_accuracy:g} expected)"
        else:
            accuracy = f"{card.clean_accuracy:.4f}"
        rows.append((card.name, f"advgrad.data.{card.data}", accuracy, card.description))
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:3], widths, strict=True)]
        print("  ".join([*cells, row[3]]))
    print()
    print(f"models are cached in {zoo.cache_dir()} (trained on first use)")
    return 0


# --------------------------------------------------------------------------- gradients
def _gradients(args: argparse.Namespace) -> int:
    import numpy as np

    from advgrad import zoo

    names = [card.name for card in zoo.list_models()]
    if args.model not in names:
        raise UsageError(f"--model: expected one of {', '.join(names)}, received {args.model!r}")
    from advgrad import input_gradients
    from advgrad.checks import check_gradients

    model = zoo.load(args.model)
    dataset = zoo.dataset(args.model)
    x_test, y_test = dataset.test
    count = min(args.samples, len(y_test))
    rng = np.random.default_rng(args.seed)
    rows = np.sort(rng.choice(len(y_test), size=count, replace=False))
    x = {k: v[rows] for k, v in x_test.items()} if isinstance(x_test, dict) else x_test[rows]
    y = y_test[rows]

    start = time.perf_counter()
    loss, grads = input_gradients(model, x, y, return_loss=True)
    seconds = time.perf_counter() - start
    leaves = list(grads.values()) if isinstance(grads, dict) else [grads]
    flat = np.concatenate([np.asarray(g, np.float64).reshape(count, -1) for g in leaves], axis=1)
    norms = {
        "L1": np.abs(flat).sum(axis=1),
        "L2": np.sqrt((flat**2).sum(axis=1)),
        "Linf": np.abs(flat).max(axis=1),
    }
    zero = int(np.sum(~np.any(flat != 0, axis=1)))
    loss = np.asarray(loss, np.float64)
    logits = model.predict(x, verbose=0, batch_size=256)
    correct = int(np.sum(np.argmax(logits, axis=-1) == y))
    shapes = {k: v.shape for k, v in grads.items()} if isinstance(grads, dict) else grads.shape
    loss_name = _loss_name(getattr(model, "loss", None))

    print(
        f"input gradients of {args.model} on {count} {dataset.name} test samples "
        f"(seed {args.seed}); loss from model.compile: {loss_name}"
    )
    print(f"  gradient shape {shapes}, dtype {leaves[0].dtype}, computed in {seconds:.2f} s")
    print(f"  clean accuracy on these samples: {correct}/{count}")
    print(f"  {'':26}{'mean':>11}{'min':>11}{'max':>11}")
    print(f"  {'loss per sample':26}" + _stats(loss))
    for name, values in norms.items():
        print(f"  {name + ' norm of the gradient':26}" + _stats(values))
    print(f"  all-zero gradients: {zero} of {count} samples ({zero / count:.1%})")

    check = check_gradients(model, x, y, coordinates=args.coordinates, seed=args.seed)
    print(str(check))
    return 0 if check.passed else 1


def _stats(values: Any) -> str:
    import numpy as np

    values = np.asarray(values, np.float64) + 0.0  # no "-0.000e+00"
    return "".join(f"{v:>11.3e}" for v in (values.mean(), values.min(), values.max()))


def _loss_name(loss: Any) -> str:
    if loss is None:
        return "none"
    if isinstance(loss, str):
        return loss
    name = type(loss).__name__
    from_logits = getattr(loss, "from_logits", None)
    return f"{name}(from_logits={from_logits})" if from_logits is not None else name


if __name__ == "__main__":
    raise SystemExit(main())
