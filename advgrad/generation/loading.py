"""Adversarial data as `tf.data`: generated shards streamed back, or an attack on the fly.

`load_generated` streams the shards `advgrad.generate` wrote, one shard file at a time, in
order or shuffled with a seed (the shard order, then a buffer of samples), as ``(x_adv, y)``
batches ready for ``model.fit``; it can serve a fixed fraction of the samples clean instead,
and, with ``fields=True``, each sample's stored record (`GeneratedFields`) for analysis.
`adversarial_dataset` attacks a dataset's batches as they are read instead, with no files.

>>> import tempfile
>>> from advgrad import data, zoo
>>> from advgrad.attacks import FGSM
>>> from advgrad.generation import generate
>>> ds, out = data.digits(), tempfile.mkdtemp()
>>> _ = generate(zoo.load("digits-cnn"), (ds.x_test[:20], ds.y_test[:20]),
...              FGSM(eps=0.1, bounds=ds.bounds), out, shard_size=8)
>>> [tuple(y.shape) for _, y in load_generated(out, batch_size=16)]
[(16,), (4,)]
>>> _, _, fields = next(iter(load_generated(out, batch_size=4, fields=True)))
>>> fields.index.numpy().tolist(), fields.attack[0].numpy(), bool(fields.adversarial.numpy().all())
([0, 1, 2, 3], b'fgsm', True)
>>> bool((fields.clean_class.numpy() == ds.y_test[:4]).all())  # the digits CNN is right here
True
"""

from __future__ import annotations

import os
import pathlib
from typing import Any, NamedTuple

import numpy as np
import tensorflow as tf

from advgrad._validation import ArgumentError, check_bool, check_int, check_number, invalid
from advgrad.attacks.base import Attack
from advgrad.batching import SEED_LIMIT, seed_of
from advgrad.generation.manifest import (
    CLASS_COLUMNS,
    ShardError,
    read_manifest,
    read_shard_checked,
)
from advgrad.generation.writer import NORM_DTYPE

__all__ = ["GeneratedFields", "adversarial_dataset", "load_generated"]

_CHECK_HASH = True  # False only in benchmarks/loading.py, to time the pipeline without it


class GeneratedFields(NamedTuple):
    """What `load_generated(..., fields=True)` yields for each sample beside ``(x, y)``: its
    record as `advgrad.generate` stored it (tensors; with a batch axis when batched).

    Attributes:
        index: int64, the sample's position in the data `generate` was given.
        clean_correct: bool, the model's class on the clean input equals the label (and
            its output was finite).
        adv_correct: bool, the same on the adversarial input (False: the attack fooled it).
        clean_class: int64, the model's predicted class on the clean input (-1: its output
            was not finite, no prediction); None for a folder written before advgrad stored
            it (manifest version 1).
        adv_class: int64, the same on the adversarial input.
        norm: float32, the perturbation's size in the norm of each input's budget, in the
            structure of ``x`` (one value, a tuple or a dict; 0 for a frozen input).
        adversarial: bool, ``x`` is the adversarial input (False where `mix_clean` served
            the clean input instead; the other fields are the stored record either way).
        attack: string, the attack's registry name (its whole config: ``manifest.json``).
    """

    index: Any
    clean_correct: Any
    adv_correct: Any
    clean_class: Any
    adv_class: Any
    norm: Any
    adversarial: Any
    attack: Any


def load_generated(
    out_dir: str | os.PathLike,
    *,
    batch_size: int | None = 32,
    shuffle: bool = False,
    seed: int | None = None,
    buffer_size: int | None = None,
    mix_clean: float | None = None,
    drop_remainder: bool = False,
    fields: bool = False,
) -> tf.data.Dataset:
    """The adversarial data `advgrad.generate` wrote, as a `tf.data.Dataset` of ``(x, y)``
    (with `fields`: ``(x, y, GeneratedFields)``).

    ``x`` has the structure the data had (one array, a tuple or a dict of the inputs); ``y``
    the labels as given. Shards are read one at a time (memory: a shard's bytes and arrays
    plus the shuffle buffer). Each shard file is read once, as it is streamed: its size
    bounded, its SHA-256 compared with the manifest's, then parsed from those bytes with
    its dtypes, shapes and count checked; a shard that differs stops the iteration with an
    error naming the file and the fix (``tf.errors.InvalidArgumentError``: `tf.data`
    raises it). The SHA-256 costs about 1 % of a pass over digits shards, about 10 % over
    CIFAR-sized float32 inputs (`benchmarks/results/loading.md`, 2 shared CPUs).

    Args:
        out_dir: The folder of a complete `generate` run.
        batch_size: Samples per batch, or None for single samples. Defaults to 32.
        shuffle: Shuffle the shard order and then the samples, in a buffer of
            `buffer_size`; a new order each epoch, the same sequence of orders for the same
            `seed`. Defaults to False (data order).
        seed: The shuffle's seed (an int >= 0), or None for an unseeded shuffle.
        buffer_size: Samples in the shuffle buffer. Defaults to the shard size.
        mix_clean: None (default: every sample adversarial), or the fraction in [0, 1] of
            samples served clean instead: sample ``i`` (its original index) is clean when
            ``floor((i + 1) * mix_clean) > floor(i * mix_clean)``, exactly that fraction,
            spread evenly over the data, the same samples every epoch. The clean inputs
            are those stored by ``generate(..., keep_clean=True)``: a run without them is
            refused.
        drop_remainder: Drop a last, smaller batch. Defaults to False.
        fields: Also yield each sample's stored record, a `GeneratedFields` (index, clean
            and adversarial correctness and predicted classes, perturbation norm, attack),
            as a third element:
            for analysis, not for ``fit`` (which reads a third element as sample weights).
            Defaults to False.

    Returns:
        A `tf.data.Dataset`, prefetched.

    Raises:
        ArgumentError: Naming the argument: an invalid one, an `out_dir` with no manifest,
            a damaged one (one line naming the field) or an incomplete run (resume it
            first; a run of several workers: the workers and shards still missing are
            named), `mix_clean` without stored clean inputs.
    """
    manifest = read_manifest(out_dir)
    if not manifest.get("complete"):
        raise ArgumentError(
            "out_dir",
            f"the run in {str(out_dir)!r} is incomplete: finish it with "
            "advgrad.generate(..., resume=True) first.",
        )
    if batch_size is not None:
        batch_size = check_int("batch_size", batch_size, low=1, high=2**31)
    shuffle = check_bool("shuffle", shuffle)
    if seed is not None:
        seed = check_int("seed", seed, low=0, high=SEED_LIMIT - 1)
    config = manifest["config"]
    buffer_size = check_int(
        "buffer_size", config["shard_size"] if buffer_size is None else buffer_size, low=1
    )
    if mix_clean is not None:
        mix_clean = check_number("mix_clean", mix_clean, low=0.0, high=1.0)
        if not config.get("keep_clean"):
            raise ArgumentError(
                "mix_clean",
                "expected a run that stored its clean inputs, received a run generated "
                "without them: generate with keep_clean=True to mix clean data in.",
            )
    drop_remainder = check_bool("drop_remainder", drop_remainder)
    fields = check_bool("fields", fields)

    structure = manifest["structure"]
    columns = manifest["columns"]
    names = [k[len("x_adv/") :] for k in columns if k.startswith("x_adv/")]
    keys = [f"x_adv/{n}" for n in names] + ["y"]
    if mix_clean is not None:
        keys += [f"clean/{n}" for n in names] + ["index"]
    norms = [n for n in names if f"norm/{n}" in columns]  # the perturbed inputs
    classes = [k for k in CLASS_COLUMNS if k in columns]  # none in a version 1 folder
    if fields:
        keys += [k for k in ("index", "clean_correct", "adv_correct") if k not in keys]
        keys += classes + [f"norm/{n}" for n in norms]
    attack = tf.constant(config["attack"]["name"])
    signature = {
        k: tf.TensorSpec((None, *columns[k]["shape"]), tf.as_dtype(np.dtype(columns[k]["dtype"])))
        for k in keys
    }
    folder, shards = pathlib.Path(out_dir), manifest["shards"]
    check_hash = _CHECK_HASH  # read once: the benchmark's switch (benchmarks/loading.py)

    def read(position):
        entry = shards[int(position)]
        try:  # read once, hashed, parsed from those bytes (`read_shard_checked`)
            yield read_shard_checked(folder, manifest, entry, keys, check_hash=check_hash)
        except ShardError as err:
            raise ShardError(
                err.index,
                str(folder / err.file),
                f"{err.problem}: it or manifest.json changed after advgrad.generate wrote them; "
                f"`advgrad verify {folder}` lists the bad shards, and `advgrad generate "
                "CONFIG --resume` (generate(..., resume=True)) writes them again",
            ) from None

    dataset = tf.data.Dataset.range(len(shards))
    if shuffle:
        dataset = dataset.shuffle(len(shards), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.flat_map(
        lambda position: tf.data.Dataset.from_generator(
            read, args=(position,), output_signature=signature
        ).unbatch()
    )
    if shuffle:
        dataset = dataset.shuffle(buffer_size, seed=seed, reshuffle_each_iteration=True)

    def structured(by_name):  # the data's structure: one array, a tuple or a dict
        ordered = [by_name[n] for n in structure["names"]]
        if structure["kind"] == "dict":
            return dict(zip(structure["names"], ordered, strict=True))
        if structure["kind"] == "list":
            return tuple(ordered)
        (value,) = ordered
        return value

    def pack(row):
        leaves = [row[f"x_adv/{n}"] for n in names]
        clean = tf.constant(False)
        if mix_clean is not None:
            i = tf.cast(row["index"], tf.float64)
            clean = tf.floor((i + 1) * mix_clean) > tf.floor(i * mix_clean)
            leaves = [
                tf.where(clean, row[f"clean/{n}"], v) for n, v in zip(names, leaves, strict=True)
            ]
        x = structured(dict(zip(names, leaves, strict=True)))
        if not fields:
            return x, row["y"]
        zero = tf.zeros([], tf.as_dtype(NORM_DTYPE))  # a frozen input: unchanged
        norm = structured({n: row[f"norm/{n}"] if n in norms else zero for n in names})
        clean_class, adv_class = (row[k] for k in classes) if classes else (None, None)
        record = GeneratedFields(
            row["index"],
            row["clean_correct"],
            row["adv_correct"],
            clean_class,
            adv_class,
            norm,
            ~clean,
            attack,
        )
        return x, row["y"], record

    dataset = dataset.map(pack, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    samples = manifest["data"]["samples"]  # known (the counts add up to it): fit sees it
    dataset = dataset.apply(tf.data.experimental.assert_cardinality(samples))
    if batch_size is not None:
        dataset = dataset.batch(batch_size, drop_remainder=drop_remainder)
    return dataset.prefetch(tf.data.AUTOTUNE)


def adversarial_dataset(
    dataset: tf.data.Dataset, model: Any, attack: Attack, *, seed: int = 0
) -> tf.data.Dataset:
    """`dataset` with every batch's inputs replaced by the attack's, computed as it is read.

    The attack runs eagerly inside the pipeline (``tf.py_function``) on the model **as it
    is when each batch is read**: during ``model.fit`` it follows the weights being
    trained (adversarial training), and two passes over the dataset give different data
    once the weights change. Batch ``b`` (counted from the start of each pass) is attacked
    with ``attack.replace(seed=seed_of(seed, attack.seed, b, 0, 0))``, the seeds `generate` uses.
    Nothing is written; for data used more than once, `advgrad.generate` is cheaper.

    Args:
        dataset: A batched `tf.data.Dataset` of ``(x, y)`` (``x`` an array, tuple or dict
            matching the model's inputs; ``y`` what the attack takes as labels).
        model: The model the attack runs against (read at each batch).
        attack: An `advgrad.attacks.Attack` (set its ``bounds``).
        seed: Seed of the per-batch attack seeds, an int >= 0. Defaults to 0.

    Returns:
        A `tf.data.Dataset` of ``(x_adv, y)`` with `dataset`'s element spec.

    >>> import tensorflow as tf
    >>> from advgrad import data, zoo
    >>> from advgrad.attacks import FGSM
    >>> ds = data.digits()
    >>> clean = tf.data.Dataset.from_tensor_slices((ds.x_test[:8], ds.y_test[:8])).batch(4)
    >>> adv = adversarial_dataset(clean, zoo.load("digits-cnn"), FGSM(eps=0.1, bounds=(0, 1)))
    >>> [round(float(abs(a[0] - c[0]).numpy().max()), 4) for a, c in zip(adv, clean)]
    [0.1, 0.1]
    """
    if not isinstance(dataset, tf.data.Dataset):
        raise invalid("dataset", "a batched tf.data.Dataset of (x, y)", dataset)
    if not isinstance(attack, Attack):
        raise invalid("attack", "an advgrad.attacks.Attack", attack)
    seed = check_int("seed", seed, low=0, high=SEED_LIMIT - 1)
    spec = dataset.element_spec
    if not isinstance(spec, tuple) or len(spec) != 2:
        raise invalid("dataset", "a batched tf.data.Dataset of (x, y) pairs", dataset)
    x_spec, y_spec = spec
    flat_specs = tf.nest.flatten(x_spec)
    if any(s.shape.rank == 0 for s in flat_specs):
        raise invalid("dataset", "a batched tf.data.Dataset (call .batch(n))", dataset)

    def attack_batch(number, y, *flat):
        x = tf.nest.pack_sequence_as(x_spec, list(flat))
        batch_seed = seed_of(seed, attack.seed, int(number), 0, 0)
        x_adv = attack.replace(seed=batch_seed)(model, x, y)
        return [
            tf.cast(v, s.dtype) for v, s in zip(tf.nest.flatten(x_adv), flat_specs, strict=True)
        ]

    def step(number, element):
        x, y = element
        out = tf.py_function(
            attack_batch, [number, y, *tf.nest.flatten(x)], Tout=[s.dtype for s in flat_specs]
        )
        for value, s in zip(out, flat_specs, strict=True):
            value.set_shape(s.shape)
        return tf.nest.pack_sequence_as(x_spec, out), y

    return dataset.enumerate().map(step)
