"""`generate`: attack a data set batch by batch into checksummed shards, resumable at any point.

The main thread reads the data (`advgrad.batching.Batches`) and runs each batch's
`advgrad.generation.step.BatchStep`: the attack with the batch's own seed
(`advgrad.batching.seed_of` of `seed`, the attack's seed and the batch number) and
the model's classes on the clean and adversarial inputs, in one compiled call for the
attacks that have one. It hands the result to a background thread
(`advgrad.generation.writer.Background`), which takes the norms, fills the shard buffers and
writes the full ones (`advgrad.generation.writer.ShardFiles`) while the next batch is
attacked. A resumed run re-reads the data from the start: a shard
already written is only digested (its clean data must match the manifest's digest), a batch
is attacked only if it touches a shard still to write (one after the last finished shard,
or one `verify` found missing or corrupt), and every batch keeps its number and seed, so
the shards come out exactly as in an uninterrupted run.

With ``worker="i/N"`` the run is one of N independent workers (`advgrad.generation.workers`):
it writes only the shards ``s % N == i`` and attacks only the batches that touch them (a
batch straddling two workers' shards is attacked by both, with the same seed: the same
rows), keeps its own manifest file, and the last worker to finish merges the N files into
``manifest.json``.
"""

from __future__ import annotations

import contextlib
import functools
import os
import pathlib
import re
import tempfile
import warnings
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from advgrad import data as data_lib
from advgrad._io import FolderBusyError, folder_lock, path_lock
from advgrad._validation import (
    SHARD_LIMIT,
    SIZE_LIMIT,
    ArgumentError,
    FlaggedWarning,
    check_bool,
    check_int,
    check_progress,
    check_seed,
    invalid,
)
from advgrad.attacks.base import Attack
from advgrad.batching import Batches, check_batch, output_classes
from advgrad.generation.manifest import (
    MANIFEST,
    MANIFEST_FORMAT,
    MANIFEST_VERSION,
    check_resumable,
    check_shards,
    differences,
    read_manifest,
    write_manifest,
)
from advgrad.generation.shards import FORMATS
from advgrad.generation.step import BatchStep
from advgrad.generation.workers import MERGE_LOCK, Share, check_worker, merge, worker_files
from advgrad.generation.writer import NORM_DTYPE, Background, Layout, ShardBuffer, ShardFiles
from advgrad.models import ModelAdapter
from advgrad.provenance import describe_model, model_digest, sha, versions
from advgrad.replicas import Replicas

__all__ = ["generate"]

SPLITS = ("train", "test")


def generate(
    model: Any,
    data: Any,
    attack: Attack | str,
    out_dir: str | os.PathLike,
    *,
    shard_size: int,
    format: str = "tfrecord",  # noqa: A002 - the issue's (and the CLI's) name
    resume: bool = False,
    batch_size: int = 128,
    seed: int = 0,
    split: str = "train",
    keep_clean: bool = False,
    progress: bool | None = None,
    worker: str | tuple[int, int] | None = None,
    strategy: Any = None,
) -> dict[str, Any]:
    """Attack every sample of `data` and write the adversarial inputs as sharded files.

    Each shard (``shard-00000.tfrecord``, ...) holds exactly `shard_size` samples (the last
    one fewer), in data order, with the columns ``x_adv/<input>`` (every model input; a
    frozen one unchanged), ``clean/<input>`` (with `keep_clean`), ``y`` (the labels as
    given), ``index`` (the sample's position in the data), ``clean_correct`` and
    ``adv_correct`` (the model's prediction on the clean and adversarial input equals the
    label, and its output is finite: `advgrad.predictions.judge`), ``clean_class`` and
    ``adv_class`` (the model's predicted class on each, int64; -1 where its output is not
    finite) and ``norm/<input>`` (the
    perturbation's size in the norm of that input's budget, per perturbed input). A sample
    whose model output is not finite (NaN or inf) is never correct; a `FlaggedWarning`
    says how many of the samples written had one, on the clean and on the adversarial
    input. ``manifest.json`` (`advgrad.generation.manifest`) records the run
    and every shard's count and SHA-256; it is rewritten atomically after each shard, and
    every shard is written to a temporary name, fsynced and renamed, so a killed run leaves
    only whole files under final names. Batch ``b`` is attacked with the seed
    ``seed_of(seed, attack.seed, b, 0, 0)``: the same arguments give the same bytes. The
    attack and both predictions are one compiled call (for the attacks that run in a graph:
    `advgrad.generation.step`); the norms and the writing run on a background thread,
    overlapping the next batch's attack; memory stays flat in the data size (one shard being
    filled and at most four batches).

    Args:
        model: A keras.Model (or callable on tensors) with one classification output.
        data: An ``(x, y)`` pair of arrays (``x`` an array, list or dict of arrays matching
            the model's inputs), a batched `tf.data.Dataset` of such pairs (re-batched to
            `batch_size`; streamed), the name of an embedded data set (`advgrad.data.names`)
            or an `advgrad.data.Dataset` (its `split` is used). Labels are what the attack
            gets: class ids or one-hot rows (targets for a targeted attack).
        attack: An `advgrad.attacks.Attack` (set its ``bounds``) or a registry name.
        out_dir: The output folder: new or empty, or (with `resume`) one a run of the same
            config wrote.
        shard_size: Samples per shard, an int in ``[1, 2**40)``
            (`advgrad._validation.SHARD_LIMIT`).
        format: ``"tfrecord"`` (default: one ``tf.train.Example`` per sample) or ``"npz"``.
        resume: Continue the run in `out_dir`: re-read the data, check it against the
            manifest, regenerate missing or corrupt shards and write the rest. Its config
            and model must be the same (else an error naming what differs). Without a
            manifest in `out_dir`, starts afresh. Defaults to False.
        batch_size: Samples per attacked batch (a batch may straddle two shards). Defaults
            to 128.
        seed: Seed of the per-batch attack seeds, an int in ``[0, 2**63)``. Defaults to 0.
        split: ``"train"`` (default) or ``"test"``: the split of a named data set.
        keep_clean: Also store the clean inputs (``clean/<input>``), which
            `advgrad.load_generated` can then mix in. Defaults to False.
        progress: Show a tqdm bar (samples/s, shards written, ETA): True, False, or None
            (default) for a bar only where a person is watching (stderr is a terminal, or a
            Jupyter notebook), none in pipes, logs or tests.
        worker: None (default: one run writes every shard), or ``"i/N"`` (or ``(i, N)``,
            ``0 <= i < N``): run as worker ``i`` of ``N`` independent runs (processes or
            machines sharing `out_dir`), which writes the shards ``s`` with ``s % N == i``,
            byte for byte those a one-worker run writes (`advgrad.generation.workers`).
            Each worker keeps its own ``manifest.worker-i-of-N.json`` (resumed with
            `resume`, with the same rules); the one that finishes last writes
            ``manifest.json``, listing every shard as a one-worker run does (plus
            ``workers: N``); until then `verify` and `advgrad.load_generated` refuse the
            folder, naming what is missing. Every worker reads all of the data.
        strategy: A ``tf.distribute.Strategy`` (``MirroredStrategy`` over GPUs or logical
            CPU devices, or `advgrad.replicas.multi_worker`'s) or None: each batch's
            compiled call is split over its replicas (`advgrad.replicas.Replicas`), with
            the same bytes as without. An attack that does not run in a graph (Square, FAB,
            EOT...) runs on the default device.

    Returns:
        The manifest (a dict, as written to ``out_dir/manifest.json``); with `worker`, the
        worker's own manifest (its shards; key ``worker``), or the merged ``manifest.json``
        when this worker finished last (key ``workers``).

    Raises:
        ArgumentError: Naming the argument, before any work: an invalid argument, an
            unknown format, data that do not match the model, an `out_dir` that is not a
            writable folder, is being written by another run at the same time, or holds
            a run's manifest (without `resume`; another config's is named), or a
            resumed run whose config or model differs (named); a `worker` that is not
            ``"i/N"``, a worker another run is running, or a folder of another number of
            workers (``worker``). Data that differ from a resumed run's (``data``) are
            refused when the first differing shard is read.
        OSError: When a shard cannot be written (full disk...): nothing is left under its
            final name; the shards before it are intact and a resume continues.

    Warns:
        FlaggedWarning: Once per attack, as a direct call does
            (`advgrad.attacks.Attack.warn_unbounded`), when it leaves unbounded an input
            whose values in a batch all lie in [0, 1]: pass ``bounds=(0, 1)``.

    >>> import tempfile
    >>> from advgrad import data, zoo
    >>> from advgrad.attacks import PGD
    >>> ds, out = data.digits(), tempfile.mkdtemp()
    >>> manifest = generate(zoo.load("digits-cnn"), (ds.x_test[:40], ds.y_test[:40]),
    ...     PGD(eps=0.1, steps=3, bounds=ds.bounds), out, shard_size=16, format="npz")
    >>> [s["count"] for s in manifest["shards"]], manifest["complete"]
    ([16, 16, 8], True)
    """
    attack = _resolve_attack(attack)
    shard_size = check_int("shard_size", shard_size, low=1, high=SHARD_LIMIT)
    if not isinstance(format, str) or format not in FORMATS:
        raise invalid("format", f"one of {list(FORMATS)}", format)
    resume = check_bool("resume", resume)
    batch_size = check_int("batch_size", batch_size, low=1, high=SIZE_LIMIT)
    seed = check_seed(seed)
    keep_clean = check_bool("keep_clean", keep_clean)
    progress = check_progress("progress", progress)
    share = check_worker(worker)
    replicas = Replicas.of(strategy)
    stream = Batches(_resolve_data(data, split), batch_size)
    adapter = ModelAdapter.of(model)
    perturbed: tuple[str, ...] | None = None
    if not stream.streamed:  # arrays: checked whole against the model before any work
        head = stream.head()
        _, leaves = _split_inputs(adapter, head)
        perturbed = _perturbed(attack, leaves)
        stream.check(output_classes(model, head))
    folder = _prepare_folder(out_dir)
    config = {
        "attack": attack.get_config(),
        "shard_size": shard_size,
        "format": format,
        "seed": seed,
        "batch_size": batch_size,
        "keep_clean": keep_clean,
    }
    samples = None if stream.streamed else len(stream.arrays[2])
    claim = functools.partial(_claim, folder, config, model, resume, share, samples, shard_size)

    def run(manifest, fresh, bad) -> dict[str, Any]:
        step = BatchStep(model, attack, seed=seed, replicas=replicas)
        go = _Run(model, adapter, step, stream, folder, manifest, bad, perturbed, progress, share)
        try:
            written = go.go()  # the per-batch attack: `_Run.go`, one call per batch
        except BaseException:
            if fresh and not manifest["shards"]:  # ours, and nothing written: no claim
                with contextlib.suppress(OSError):
                    (folder / _file(share)).unlink()
            raise
        go.flag_non_finite()
        return written

    if share is None:
        with _locked(folder):  # one run at a time per folder
            return run(*claim())
    # a worker: the folder shared with the other workers (a one-worker run holds it whole),
    # its own lock held throughout, and the claim and the merge one worker at a time
    with _locked(folder, shared=True), _locked(folder / share.lock, share=share):
        with _locked(folder / MERGE_LOCK, wait=True):
            claimed = claim()
        manifest = run(*claimed)
        with _locked(folder / MERGE_LOCK, wait=True):
            merged = _merge(folder, share.count)
        return manifest if merged is None else merged


def _file(share: Share | None) -> str:
    return MANIFEST if share is None else share.file


def _claim(folder, config, model, resume, share, samples, shard_size):
    """Check the folder against this run (or worker), then claim it: its manifest, whether
    it is new, and the shards a resume must write again."""
    digest = model_digest(model)
    name = _file(share)
    _refuse_mixed(folder, share)
    saved = None
    if share is not None:  # the other workers' runs must be this one
        others = [
            (s.file, read_manifest(folder, share=s)) for s in worker_files(folder) if s != share
        ]
        if (folder / MANIFEST).exists():
            others.append((MANIFEST, read_manifest(folder)))
        for file, other in others:
            check_resumable(other, folder, file)  # an older version: never joined
            _check_same(folder, other, config, digest)
    if (folder / name).exists():
        saved = read_manifest(folder, share=share)
        check_resumable(saved, folder, name)  # an older version: never resumed
        _check_same(folder, saved, config, digest)  # another run's: refused, naming the change
        if not resume:
            whose = "this run's" if share is None else f"worker {share.label}'s"
            state = "complete" if saved.get("complete") else "unfinished"
            raise ArgumentError(
                "out_dir",
                f"{str(folder)!r} holds {whose} {name} (the same config and model, "
                f"{state}): pass resume=True to continue it or re-check its shards, or "
                "another out_dir.",
            )
    _remove_leftovers(folder, share)
    if saved is not None:
        saved["versions"] = versions()
        return saved, False, set(check_shards(folder, saved).bad)
    manifest = {
        "format": MANIFEST_FORMAT,
        "version": MANIFEST_VERSION,
        "config": config,
        "model": describe_model(model, digest),
        "data": {"samples": None, "sha256": None},
        "versions": versions(),
        "structure": None,
        "columns": None,
        "shards": [],
        "complete": False,
    }
    if share is not None:  # the number of shards: known now for arrays, at the end if streamed
        total = None if samples is None else -(-samples // shard_size)
        manifest["worker"] = {"index": share.index, "count": share.count, "shards": total}
    write_manifest(folder, manifest, name)  # claims the folder before any work
    return manifest, True, set()


def _check_same(folder, saved, config, digest) -> None:
    differ = differences(saved, config, digest)
    if differ:
        raise ArgumentError(
            differ[0],
            f"the run in {str(folder)!r} was generated with a different "
            f"{', '.join(differ)}: resume it with the same config and model, or pass "
            "another out_dir.",
        )


def _refuse_mixed(folder: pathlib.Path, share: Share | None) -> None:
    """Refuse a folder that another number of workers (or a one-worker run) writes."""
    counts = sorted({s.count for s in worker_files(folder)})
    if (folder / MANIFEST).exists():
        with contextlib.suppress(ArgumentError):  # unreadable: refused where it is read
            workers = read_manifest(folder).get("workers")
            counts.append(0 if workers is None else workers)
    mine = 0 if share is None else share.count
    other = next((c for c in counts if c != mine), None)
    if other is None:
        return
    given = "worker=None" if share is None else f"worker={share.label!r}"
    told = "without worker (one run)" if other == 0 else f"as {other} workers (worker='i/{other}')"
    raise ArgumentError(
        "worker",
        f"the run in {str(folder)!r} is generated {told}, received {given}: run or resume "
        "it the same way, or pass another out_dir.",
    )


def _merge(folder: pathlib.Path, count: int) -> dict[str, Any] | None:
    """Write ``manifest.json`` when every worker has finished (the merged manifest, else None)."""
    manifests = []
    for index in range(count):
        share = Share(index, count)
        if not (folder / share.file).exists():
            return None
        manifest = read_manifest(folder, share=share)
        if not manifest.get("complete"):
            return None
        manifests.append(manifest)
    merged = merge(manifests)
    for path in folder.glob(f".{MANIFEST}.*"):  # a merge killed half way
        if ".tmp" in path.name:
            with contextlib.suppress(OSError):
                path.unlink()
    write_manifest(folder, merged)
    return merged


class _Run:
    """One `generate` call's loop over the batches (state shared by its steps)."""

    def __init__(
        self, model, adapter, step, stream, folder, manifest, bad, perturbed, progress, share
    ):
        self.model, self.adapter, self.stream = model, adapter, stream
        self.step, self.attack = step, step.attack
        self.folder, self.manifest, self.bad, self.perturbed = folder, manifest, bad, perturbed
        self.share = share
        config = manifest["config"]
        self.size, self.seed, self.keep_clean = (
            config["shard_size"],
            config["seed"],
            config["keep_clean"],
        )
        self.saved = {e["index"]: dict(e) for e in manifest["shards"]}  # a previous run's
        self.complete = bool(manifest["complete"])
        self.progress = progress
        self.layout: Layout | None = None
        self.buffers: dict[int, ShardBuffer] = {}
        self.data_shas: list[str] = []
        self.classes: int | None = None
        self.files = ShardFiles(folder, manifest, config["format"], _file(share))
        self.judged = 0  # samples written by this run, and those whose output is not finite
        self.non_finite = {"clean": 0, "adversarial": 0}

    def to_write(self, shard: int) -> bool:
        """Whether this run writes `shard`: its own (every one, or a worker's share), not
        finished before, or found missing or corrupt."""
        if self.share is not None and not self.share.owns(shard):
            return False
        return shard not in self.saved or shard in self.bad

    def go(self) -> dict[str, Any]:
        from tqdm.auto import tqdm

        total = None if self.stream.streamed else len(self.stream.arrays[2])
        desc = "generate" if self.share is None else f"generate {self.share.label}"
        bar = tqdm(total=total, disable=not self.progress, unit="sample", desc=desc)
        worker = Background(depth=2)
        offset = 0
        try:
            for number, (x, y) in enumerate(self.stream):
                y = np.asarray(y)
                leaves = self._check(offset, x, y)
                n = len(y)
                if self.complete and offset + n > self.manifest["data"]["samples"]:
                    raise self._data_differs("its length (more samples than the run in out_dir)")
                touched = range(offset // self.size, (offset + n - 1) // self.size + 1)
                result = None
                if any(self.to_write(k) for k in touched):  # else only read (and digested)
                    result = self.step(number, x, y)  # x_adv, both predictions, norms
                worker.submit(self._collect, offset, x, y, leaves, result)  # overlaps the next
                offset += n
                bar.update(n)
                if self.progress:
                    bar.set_postfix_str(f"shards {self.files.written}", refresh=False)
            if offset == 0:
                raise invalid("data", "at least one sample", offset)
            worker.submit(self._end, offset)
            worker.finish()
        except BaseException:
            worker.abort()
            raise
        finally:
            bar.close()
        return self.manifest

    def _check(self, offset: int, x: Any, y: np.ndarray) -> dict[str, np.ndarray]:
        """The batch's inputs by name, checked against the model and the first batch."""
        given, leaves = _split_inputs(self.adapter, x)
        leaves = {n: np.asarray(v) for n, v in leaves.items()}
        if self.stream.streamed:
            if self.classes is None:
                self.classes = output_classes(self.model, x)
            check_batch(x, y, self.classes, first=offset)
        if self.layout is None:
            self._first_batch(given, leaves, y)
        else:
            problem = self.layout.mismatch(leaves, y)
            if problem:
                raise invalid("data", "batches of the first batch's dtypes and shapes", problem)
        return leaves

    def _first_batch(self, given, leaves, y) -> None:
        if self.perturbed is None:
            self.perturbed = _perturbed(self.attack, leaves)
        self.layout = Layout.of(given, leaves, y, self.perturbed, self.keep_clean)
        described = self.layout.to_manifest()
        if self.manifest["columns"] is None:
            self.manifest.update(described)  # before the first submit: no shard written yet
        elif {k: self.manifest[k] for k in described} != described:
            raise self._data_differs("its inputs or labels (dtypes, shapes or structure)")

    # ---------------------------------------------------- on the background thread
    def _collect(self, offset: int, x: Any, y: np.ndarray, leaves: dict, result: Any) -> None:
        """Put an attacked (or, `result` None, only re-read) batch into its shards."""
        n = len(y)
        columns = None if result is None else self._columns(offset, x, y, leaves, result)
        for k in range(offset // self.size, (offset + n - 1) // self.size + 1):
            buffer = self.buffers.get(k)
            if buffer is None:
                keep = self.to_write(k)
                buffer = ShardBuffer(k, k * self.size, self.size, self.layout, keep)
                self.buffers[k] = buffer
            lo = max(k * self.size, offset) - offset
            hi = min((k + 1) * self.size, offset + n) - offset
            buffer.add(leaves, y, columns, lo, hi)
            if result is not None and self.to_write(k):
                self._count(result, lo, hi)
            if buffer.full:
                self._close_shard(buffer)

    def _count(self, result: Any, lo: int, hi: int) -> None:
        """Count rows ``lo:hi`` of an attacked batch, written: their non-finite outputs."""
        self.judged += hi - lo
        self.non_finite["clean"] += int(np.sum(~result.clean_finite[lo:hi]))
        self.non_finite["adversarial"] += int(np.sum(~result.adv_finite[lo:hi]))

    def _columns(self, offset, x, y, leaves, result) -> dict[str, np.ndarray]:
        _, adv = self.adapter.split_inputs(result.x_adv)
        columns = {f"x_adv/{n}": np.asarray(adv[n]) for n in self.layout.names}
        if self.keep_clean:
            columns.update({f"clean/{n}": leaves[n] for n in self.layout.names})
        columns["y"] = y
        columns["index"] = np.arange(offset, offset + len(y), dtype=np.int64)
        columns["clean_correct"] = result.clean_correct  # False where not finite (`judge`)
        columns["adv_correct"] = result.adv_correct
        # the predicted classes; -1 where the output is not finite (no prediction: `judge`)
        columns["clean_class"] = np.where(result.clean_finite, result.clean, -1)
        columns["adv_class"] = np.where(result.adv_finite, result.adversarial, -1)
        for name in self.layout.perturbed:
            columns[f"norm/{name}"] = result.norms[name].astype(NORM_DTYPE)
        return columns

    def _close_shard(self, buffer: ShardBuffer) -> None:
        del self.buffers[buffer.index]
        data_sha = buffer.data_sha256()
        self.data_shas.append(data_sha)
        saved = self.saved.get(buffer.index)
        if saved is not None and saved["data_sha256"] != data_sha:
            raise self._data_differs(f"the samples of shard {buffer.index}")
        if saved is not None and saved["count"] != buffer.filled:
            raise self._data_differs(f"the number of samples (shard {buffer.index})")
        if self.to_write(buffer.index):
            self.files.write(buffer, {})

    def _end(self, offset: int) -> None:
        for buffer in list(self.buffers.values()):  # the last, partial shard
            self._close_shard(buffer)
        shards = -(-offset // self.size)
        fewer = any(k >= shards for k in self.saved)
        if fewer or (self.complete and offset > self.manifest["data"]["samples"]):
            more = "fewer" if fewer else "more"
            raise self._data_differs(f"its length ({more} samples than the run in out_dir)")
        updates: dict[str, Any] = {
            "data": {"samples": offset, "sha256": sha(*self.data_shas)},
            "complete": True,
        }
        if self.share is not None:  # the number of shards, now known however the data came
            updates["worker"] = {**self.manifest["worker"], "shards": shards}
        self.files.write(None, updates)

    def flag_non_finite(self) -> None:
        """Warn (`FlaggedWarning`) when a sample this run wrote had a non-finite output."""
        clean, adversarial = self.non_finite["clean"], self.non_finite["adversarial"]
        if not clean and not adversarial:
            return
        warnings.warn(
            f"Non-finite model outputs (NaN or inf) in the samples generate wrote: {clean} of "
            f"{self.judged} samples on their clean input, {adversarial} on their adversarial "
            "input, written with clean_correct / adv_correct False. A NaN or inf output is no "
            "prediction: look for an unstable operation in the model (a log or division by 0, "
            "an overflow in float16, a custom layer) or in its preprocessing.",
            FlaggedWarning,
            stacklevel=4,  # generate's caller
        )

    def _data_differs(self, what: str) -> ArgumentError:
        return ArgumentError(
            "data",
            f"the data differ from those the run in {str(self.folder)!r} was generated "
            f"from ({what}): resume it with the same data, or pass another out_dir.",
        )


def _split_inputs(adapter: ModelAdapter, x: Any) -> tuple[Any, dict[str, Any]]:
    """`ModelAdapter.split_inputs`, every refusal an `ArgumentError` naming `data`."""
    try:
        return adapter.split_inputs(x, "data")
    except ArgumentError:
        raise
    except ValueError as err:
        prefix = "Invalid value for argument `data`: "
        text = str(err)
        reason = text[len(prefix) :] if text.startswith(prefix) else text
        raise ArgumentError("data", reason) from None


def _resolve_attack(attack: Any) -> Attack:
    if isinstance(attack, str):
        from advgrad.attacks import get_attack

        return get_attack(attack)
    if not isinstance(attack, Attack):
        raise invalid("attack", "an advgrad.attacks.Attack or a registry name", attack)
    return attack


def _resolve_data(data: Any, split: str) -> Any:
    if not isinstance(split, str) or split not in SPLITS:
        raise invalid("split", f"one of {list(SPLITS)}", split)
    if isinstance(data, str):
        if data not in data_lib.names():
            raise invalid("data", f"arrays, a tf.data.Dataset or one of {data_lib.names()}", data)
        data = data_lib.get(data)
    if isinstance(data, data_lib.Dataset):
        return data.train if split == "train" else data.test
    return data


def _perturbed(attack: Attack, leaves: Mapping[str, Any]) -> tuple[str, ...]:
    budgets = attack.budgets(tuple(leaves))
    return tuple(n for n, b in budgets.items() if b is not None)


def _prepare_folder(out_dir: Any) -> pathlib.Path:
    """`out_dir` as a writable folder (created if needed), or an error naming it."""
    if not isinstance(out_dir, (str, os.PathLike)):
        raise invalid("out_dir", "a folder path (str or os.PathLike)", out_dir)
    folder = pathlib.Path(out_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".advgrad-probe.", dir=folder)
        os.close(fd)
        os.remove(probe)
    except OSError as err:
        raise ArgumentError(
            "out_dir",
            f"expected a writable folder, received out_dir={str(folder)!r}, which cannot be "
            f"written to ({err.strerror or err}).",
            expected="a writable folder",
            received=repr(str(folder)),
        ) from None
    return folder


@contextlib.contextmanager
def _locked(
    path: pathlib.Path, *, shared: bool = False, wait: bool = False, share: Share | None = None
) -> Iterator[None]:
    """`advgrad._io.folder_lock` on the folder (a one-worker run), or `path_lock` on it
    (`shared`: a worker) or on a lock file in it; a busy one refused as an `ArgumentError`
    naming ``out_dir`` (``worker`` for a worker's own lock, `share`)."""
    whole = not (shared or wait or share)  # a one-worker run: `folder_lock`, as always
    try:
        with folder_lock(path) if whole else path_lock(path, shared=shared, wait=wait):
            yield
    except FolderBusyError:  # raised only by taking the lock: nothing has run
        if share is not None:
            raise ArgumentError(
                "worker",
                f"worker {share.label} of {str(path.parent)!r} is being run by another run "
                "right now: wait for it to finish (or stop it), or pass another worker.",
            ) from None
        raise ArgumentError(
            "out_dir",
            f"{str(path)!r} is being written by another run right now: wait for it to "
            "finish (or stop it), or pass another out_dir.",
        ) from None


def _remove_leftovers(folder: pathlib.Path, share: Share | None) -> None:
    """Temporary files of a killed run (`advgrad._io.atomic_write`'s names): never whole.

    A worker removes only its own (its shards', its manifest's): the other workers may be
    writing theirs right now."""
    for path in folder.iterdir():
        name = path.name
        if share is None:
            temporary = name.startswith((".shard-", f".{MANIFEST}.")) and ".tmp" in name
            gone = temporary or name.startswith(".advgrad-probe.")
        else:
            shard = re.match(r"^\.shard-(\d+)\.", name)
            ours = (shard and share.owns(int(shard[1]))) or name.startswith(f".{share.file}.")
            gone = bool(ours) and ".tmp" in name
        if gone:
            with contextlib.suppress(OSError):
                path.unlink()
