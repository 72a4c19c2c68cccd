"""What each ``advgrad`` subcommand does: one function per command, given parsed arguments.

The runners of config-driven workflows that are more than a call live beside these
(`advgrad.commands.training`: train, then ``model.keras`` and ``card.json``); the commands
that show what advgrad holds are in `advgrad.commands.catalog`.

`advgrad.cli` parses the command line and runs these inside its error handling and quiet
output; each returns the exit code (0 done, 1 failed) or raises `UsageError` (exit 2).
"""

from __future__ import annotations

import argparse
import dataclasses
import pathlib
import re
import shutil
import sys
import tempfile
import time
from typing import Any

from advgrad._io import atomic_write
from advgrad.commands.catalog import attacks, gradients, zoo_list, zoo_missing
from advgrad.commands.usage import PROG, UsageError
from advgrad.run_folder import (
    REPORT_JSON,
    STATE_FILE,
    RunFolder,
    check_output_file,
    fingerprint,
)

__all__ = [
    "PROG",
    "UsageError",
    "attacks",
    "bench",
    "compare",
    "generate",
    "gradients",
    "init",
    "report",
    "saliency",
    "train",
    "verify",
    "zoo_list",
    "zoo_missing",
]

REPORT_MD = "report.md"
COMPARE_MD = "compare.md"
COMPARE_PNG = "compare.png"
# What each command writes into its output folder (`advgrad.run_folder`: its own files).
PLOTS = ("robust_accuracy.png", "adversarial_eps=*.png", ".advgrad-plots-*")
BENCH_FILES = (STATE_FILE, REPORT_JSON, REPORT_MD, *PLOTS)
REPORT_FILES = (REPORT_MD, *PLOTS)
COMPARE_FILES = (COMPARE_MD, COMPARE_PNG)
GENERATE_FILES = (
    "manifest.json",
    "manifest.worker-*-of-*.json",
    "shard-*",
    ".shard-*",
    ".manifest*",
    ".advgrad-probe.*",
)
TRAIN_FILES = ("model.keras", "card.json", "backup")
SALIENCY_FILES = ("index.md", "attributions.npz")


# -------------------------------------------------------------------------------- init
def init(args: argparse.Namespace) -> int:
    """Write `advgrad.config.EXAMPLE` to ``args.path``; an existing file only with --force."""
    from advgrad.config import EXAMPLE

    path = pathlib.Path(args.path)
    if path.is_dir():
        raise UsageError(f"{path} is a folder: give a file name such as {path / 'advgrad.yaml'}")
    if check_output_file(path, force=args.force, option="PATH", content=EXAMPLE):
        print(f"{path} is already advgrad's example config: edit it, then run `{PROG} bench`")
        return 0
    atomic_write(path, EXAMPLE)
    print(f"wrote {path}: edit model, data and suite, then run `{PROG} bench {path}`")
    return 0


# ------------------------------------------------------------------------------- bench
def bench(args: argparse.Namespace) -> int:
    from advgrad.config import build_run, load_config

    config, out = _overridden(load_config(args.config), args)
    from advgrad.config.distribute_build import make_strategy

    strategy = make_strategy(config.distribute, config.source)  # before TensorFlow starts
    folder = _config_folder("bench", config, out, args, BENCH_FILES)
    with folder:
        folder.check()  # before any work: a folder that is not ours is refused at once
        if folder.finished:
            return _finished(folder, REPORT_MD)
        run = build_run(config)  # loads the model and data: every config error surfaces here

        from advgrad.evaluation import evaluate

        folder.open()  # created, locked, checked again under the lock, marked unfinished
        if folder.finished:  # another run finished it meanwhile
            return _finished(folder, REPORT_MD)
        state = out / STATE_FILE
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
            progress=None,  # a bar where a person watches (a terminal), none in a pipe or log
            targets=config.targets,
            individual=config.individual,
            strategy=strategy,
        )
        seconds = time.perf_counter() - start
        report.model["source"] = pathlib.Path(config.model).name  # a file name or zoo name
        report.data["name"] = _data_name(config.data)
        report.to_json(str(out / REPORT_JSON))
        markdown = report.to_markdown()
        _write_markdown(markdown, folder)
        plots = _save_plots(report, folder)
        folder.done()
    print(markdown.rstrip("\n"))
    print()
    written = [REPORT_JSON, REPORT_MD, *(pathlib.Path(p).name for p in plots)]
    print(f"wrote {', '.join(written)} to {out} ({seconds:.1f} s)")
    return 0


# ---------------------------------------------------------------------------- generate
def generate(args: argparse.Namespace) -> int:
    """Run a generation config: adversarial data as shards in the output folder."""
    from advgrad._validation import ArgumentError
    from advgrad.config import build_generation, load_generate

    config = load_generate(args.config)
    bench, out = _overridden(config.bench, args)
    worker = None
    if args.worker is not None:  # checked before the model and data load
        from advgrad.generation.workers import check_worker

        try:
            worker = check_worker(args.worker)
        except ArgumentError as err:
            raise UsageError(f"argument --worker: {err.reason}") from None
    if worker is not None and args.force:
        raise UsageError(
            "--force cannot be combined with --worker: it would remove the other workers' "
            "shards; remove the output folder first, or leave out --force"
        )
    from advgrad.config.distribute_build import make_strategy

    strategy = make_strategy(bench.distribute, bench.source)  # before TensorFlow starts
    config = dataclasses.replace(config, bench=bench)
    shared = worker is not None  # the workers of one run share the folder
    folder = _config_folder("generate", config, out, args, GENERATE_FILES, shared=shared)
    with folder:
        folder.check()
        if folder.finished and not args.resume:  # --resume: rewrite a damaged shard
            return _finished(folder, "manifest.json", f"check it with `{PROG} verify {out}`")
        model, data, attack = build_generation(config)

        from advgrad.generation import generate as run_generation

        folder.open()
        start = time.perf_counter()
        try:
            manifest = run_generation(
                model,
                data,
                attack,
                out,
                shard_size=config.shard_size,
                format=config.format,
                keep_clean=config.keep_clean,
                resume=folder.resuming or folder.finished or (worker is not None and args.resume),
                batch_size=bench.batch_size,
                seed=bench.seed,
                progress=None,  # a bar where a person watches, none in a pipe or log
                worker=None if worker is None else (worker.index, worker.count),
                strategy=strategy,
            )
        except ArgumentError as err:  # refused before any work: the folder, a resumed run
            raise UsageError(_flags(str(err))) from None
        if "worker" not in manifest:  # one run, or the last worker: the run is complete
            folder.done()
    seconds = time.perf_counter() - start
    shards = manifest.get("shards", [])
    samples = sum(int(shard.get("count", 0)) for shard in shards)
    if "worker" in manifest:  # a worker, not the last to finish
        print(
            f"worker {worker.label} wrote {samples} samples in {len(shards)} shard(s) to {out} "
            f"({seconds:.1f} s); the last of the {worker.count} workers to finish writes "
            f"{out / 'manifest.json'}"
        )
        return 0
    who = "" if worker is None else f"worker {worker.label} finished last: the workers "
    print(f"{who}wrote {samples} samples in {len(shards)} shard(s) to {out} ({seconds:.1f} s)")
    print(f"check them with `{PROG} verify {out}`; load them with advgrad.load_generated")
    return 0


def train(args: argparse.Namespace) -> int:
    """Run a training config: adversarial training inside Keras fit, then the plain model
    (model.keras) and its card (card.json) in the output folder."""
    from advgrad.commands.training import run_training
    from advgrad.config.registries import default_catalog
    from advgrad.training.config import load_train

    config = load_train(args.config, default_catalog())
    bench, out = _overridden(config.bench, args)
    config = dataclasses.replace(config, bench=bench)
    folder = _config_folder("train", config, out, args, TRAIN_FILES)
    with folder:
        folder.check()
        if folder.finished:
            return _finished(folder, "model.keras", f"its card: {out / 'card.json'}")
        folder.open()  # a fresh run (no --resume) starts without an earlier backup
        start = time.perf_counter()
        card = run_training(config, out, verbose=2)
        seconds = time.perf_counter() - start
        folder.done()
    history = card["history"]
    print(f"wrote {out / 'model.keras'} and {out / 'card.json'} ({seconds:.1f} s)")
    if "validation_accuracy" in card:
        line = f"validation accuracy {card['validation_accuracy']:.4f}"
        if "val_robust_accuracy" in history:
            line += f", robust {history['val_robust_accuracy'][-1]:.4f} under the robust_check"
        print(line)
    print(f"evaluate it with the standard suite: `{PROG} bench` with model: {out / 'model.keras'}")
    return 0


def saliency(args: argparse.Namespace) -> int:
    """Run a saliency config: each method's figure, the maps and an index.md."""
    from advgrad._validation import ArgumentError
    from advgrad.config.registries import default_catalog
    from advgrad.config.saliency_build import build_saliency
    from advgrad.saliency.config import load_saliency

    config = load_saliency(args.config, default_catalog())
    bench, out = _overridden(config.bench, args)
    config = dataclasses.replace(config, bench=bench)
    figures = tuple(f"{m.name}*.png" for m in config.methods)
    folder = _config_folder("saliency", config, out, args, (*SALIENCY_FILES, *figures))
    with folder:
        folder.check()
        if folder.finished:
            return _finished(folder, "index.md")
        run = build_saliency(config)

        from advgrad.saliency import write_saliency

        folder.open()
        start = time.perf_counter()
        try:
            paths = write_saliency(
                run.model,
                run.x,
                out,
                methods=[m.name for m in config.methods],
                settings=config.run_settings(),
                target=run.target,
                labels=run.y,
                feature_names=run.feature_names,
                samples=config.samples,
                title=f"Saliency maps: {pathlib.Path(bench.model).name}, {_data_name(bench.data)}",
            )
        except ArgumentError as err:  # a class id in `target` beyond the model's classes
            raise UsageError(f"{args.config}: {err}") from None
        seconds = time.perf_counter() - start
        folder.done()
    for method, reason in paths["skipped"].items():
        print(f"{PROG}: skipped {method}: {reason}")
    print(
        f"wrote {len(paths['figures'])} figure(s) of {len(run.y)} sample(s) to {out} "
        f"({seconds:.1f} s); open {paths['index']}"
    )
    return 0


def verify(args: argparse.Namespace) -> int:
    """Re-check every shard of a generation folder: exit 0 when all are whole, else 1."""
    from advgrad._validation import ArgumentError
    from advgrad.generation import verify as verify_folder

    try:
        result = verify_folder(args.out_dir)
    except ArgumentError as err:
        raise UsageError(str(err)) from None
    state = "complete" if result.complete else "unfinished (continue it with --resume)"
    print(f"{args.out_dir}: {result.shards} shard(s), {result.samples} samples, run {state}")
    for problem in result.problems:
        print(f"  {problem}")
    if result.ok:
        print("every shard is present, and its checksum and sample count match the manifest")
    elif result.bad:
        print(f"`{PROG} generate CONFIG --resume` writes shard(s) {result.bad} again")
    return 0 if result.ok else 1


def _finished(folder: RunFolder, result: str, *more: str) -> int:
    """The same command on its own finished run: say so, show its result, exit 0."""
    print(f"{folder.path} holds this {folder.command} run of the same config, complete")
    print(f"its result: {folder.path / result}" + "".join(f"; {text}" for text in more))
    print("nothing to do: pass --force to run it again")
    return 0


def _config_folder(
    command: str, config: Any, out: pathlib.Path, args: argparse.Namespace, files: tuple, **kw: Any
) -> RunFolder:
    """The `RunFolder` of a config-driven command: its config's fingerprint, its flags
    (``--resume`` only where the command takes it: else an unfinished run is run again)."""
    resume = getattr(args, "resume", None)
    fp = _config_fingerprint(command, config)
    return RunFolder(out, command, fp, files=files, resume=resume, force=args.force, **kw)


def _config_fingerprint(command: str, config: Any) -> str:
    """What defines a config's run (`advgrad.run_folder.fingerprint`): every setting but
    where it writes and where it was read from, and the content of its model and data files."""
    bench = getattr(config, "bench", config)
    files = [bench.model] if not bench.is_zoo_model else []
    if bench.data.npz is not None:
        files.append(bench.data.npz)
    return fingerprint(command, _identity(config), *map(pathlib.Path, files))


def _identity(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        skip = ("output", "source", "folder")
        fields = dataclasses.fields(value)
        return {f.name: _identity(getattr(value, f.name)) for f in fields if f.name not in skip}
    if isinstance(value, dict):
        return {str(k): _identity(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_identity(v) for v in value]
    return value


def _flags(text: str) -> str:
    """A Python API error in the command line's words: flags, not argument names."""
    text = text.replace("resume=True", "--resume").replace("another out_dir", "another --out")
    text = re.sub(r"worker='i/(\d+)'", r"--worker I/\1", text)
    return re.sub(r"\bout_dir\b", "--out", text)


def _data_name(data: Any) -> str:
    """The config's data, in words: ``digits (test split)``, ``d.npz (x: x, y: y)``."""
    if data.npz is not None:
        text = f"{pathlib.Path(data.npz).name} (x: {data.x}, y: {data.y})"
    else:
        text = f"{data.name} ({data.split} split)"
    return text if data.limit is None else f"{text}, first {data.limit}"


def _overridden(config: Any, args: argparse.Namespace) -> tuple[Any, pathlib.Path]:
    """`config` (a `BenchConfig`) with ``--limit``, ``--out`` and ``--import`` applied, and
    its output folder (default: ``runs/<config file name>``)."""
    from advgrad._validation import ArgumentError

    _check_out_argument(args.out)
    try:
        config = config.with_overrides(limit=args.limit, output=args.out, imports=args.imports)
    except ArgumentError as err:
        raise UsageError(f"argument --{err.argument}: {err.reason}") from None
    out = config.output or pathlib.Path("runs", pathlib.Path(args.config).stem).absolute()
    return config, out


def _check_out_argument(out: str | None) -> None:
    if out is not None and not out.strip():
        raise UsageError(f"--out: expected a folder path, received {out!r}")


def _write_markdown(markdown: str, folder: RunFolder) -> None:
    folder.write(REPORT_MD, markdown + ("" if markdown.endswith("\n") else "\n"))


def _save_plots(report: Any, folder: RunFolder) -> list[str]:
    """The plots, drawn in a scratch folder, then put in the run's folder (`RunFolder.write`)."""
    with tempfile.TemporaryDirectory(prefix=".advgrad-plots-", dir=folder.path) as scratch:
        try:
            drawn = report.save_plots(scratch)
        except ImportError as err:  # matplotlib is optional
            print(f"{PROG}: no plots written ({err}); pip install matplotlib", file=sys.stderr)
            return []
        written = []
        for path in drawn:
            name = pathlib.Path(path).name
            target = folder.write(name, lambda tmp, path=path: shutil.copyfile(path, tmp))
            written.append(str(target))
    return written


# ------------------------------------------------------------------------------ report
def report(args: argparse.Namespace) -> int:
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
    csv = None
    if args.csv is not None:  # checked before anything is written
        if not args.csv.strip():
            raise UsageError(f"--csv: expected a file path, received {args.csv!r}")
        target = pathlib.Path(args.csv)
        text = report.to_csv()
        same = check_output_file(target, force=args.force, option="--csv", content=text)
        csv = None if same else text
    folder = None
    if args.out:
        folder = RunFolder(
            pathlib.Path(args.out).absolute(),
            "report",
            fingerprint("report", path.absolute()),
            files=REPORT_FILES,
            resume=None,
            force=args.force,
        )
        folder.check()
    markdown = report.to_markdown()
    print(markdown.rstrip("\n"))
    if folder is not None:
        with folder:
            if not folder.finished:
                folder.open()
                _write_markdown(markdown, folder)
                plots = _save_plots(report, folder)
                folder.done()
                written = [REPORT_MD, *(pathlib.Path(p).name for p in plots)]
                print()
                print(f"wrote {', '.join(written)} to {folder.path}")
            else:
                print()
                print(f"{folder.path} holds this report's files already (--force rewrites them)")
    if args.csv is not None:
        target = pathlib.Path(args.csv)
        if csv is not None:
            report.to_csv(target)
            print(f"wrote {target.absolute()} ({report.n_samples} samples)")
        else:
            print(f"{target.absolute()} holds these outcomes already ({report.n_samples} samples)")
    return 0


# ----------------------------------------------------------------------------- compare
def compare(args: argparse.Namespace) -> int:
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
    if not args.out:
        print(markdown.rstrip("\n"))
        return 0
    runs = [pathlib.Path(run).absolute() for run in args.runs]
    with RunFolder(
        pathlib.Path(args.out).absolute(),
        "compare",
        fingerprint("compare", args.force, *runs),
        files=COMPARE_FILES,
        resume=None,
        force=args.force,
    ) as folder:
        folder.check()
        print(markdown.rstrip("\n"))
        print()
        if folder.finished:
            print(f"{folder.path} holds this comparison already (--force rewrites it)")
            return 0
        folder.open()
        folder.write(COMPARE_MD, markdown)
        written = [COMPARE_MD]
        try:
            comparison.save_plot(folder.path / COMPARE_PNG)
            written.append(COMPARE_PNG)
        except ImportError as err:  # matplotlib is optional
            print(f"{PROG}: no plot written ({err}); pip install matplotlib", file=sys.stderr)
        folder.done()
        print(f"wrote {', '.join(written)} to {folder.path}")
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
