"""Robust accuracy of a model under a suite of attacks: worst case per sample, resumable.

`evaluate` streams the data batch by batch. For every batch and every eps it predicts the
clean inputs first (misclassified samples are non-robust at every eps and no attack runs on
them), then runs the attacks of the suite; a sample is robust only if every attack failed on
it (the AutoAttack cascade, Croce & Hein 2020). Whether an attack fooled a sample is decided
by the model's own prediction on the returned input, after checking that the input lies in
the attack's threat model (its eps ball and bounds, frozen inputs unchanged, every value
finite).

With ``state="runs/x.json"`` the per-sample outcomes and counters are written atomically
after each batch, so a run killed at any point resumes at the first unfinished batch and
gives exactly the result of an uninterrupted run: every (batch, attack, eps) has its own
seed derived from ``seed``.

This module orchestrates; the parts live next to it: `cascade` (the attacks on one batch),
`state` (the resumable state and fingerprint), `targeting`, `curve`, `adaptive`; the data
arrive as batches from `advgrad.batching`. What a
model predicts is `advgrad.predictions`; the threat-model test is `advgrad.budget.outside`.

>>> from advgrad import data, zoo
>>> from advgrad.attacks import get_attack
>>> from advgrad.evaluation import evaluate
>>> ds = data.digits()
>>> report = evaluate(
...     zoo.load("digits-cnn"), (ds.x_test[:32], ds.y_test[:32]),
...     suite=[get_attack("fgsm", bounds=ds.bounds)], eps=[0.0, 0.3], sanity=False)
>>> report.robust_accuracy[0.0] == report.clean_accuracy, report.robust_accuracy[0.3] < 0.5
(True, True)
"""

from __future__ import annotations

import functools
import os
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from advgrad._validation import (
    SIZE_LIMIT,
    FlaggedWarning,
    check_bool,
    check_eps,
    check_int,
    check_progress,
    check_seed,
    invalid,
)
from advgrad.attacks.base import unit_data_checked
from advgrad.batching import Batches, check_batch, concat, output_classes, take
from advgrad.budget import unbounded_message, unbounded_on_unit_data
from advgrad.evaluation.adaptive import Policy
from advgrad.evaluation.cascade import Runner, fit_classes, labels, postfix
from advgrad.evaluation.curve import CURVE, Curve, curve_attacks
from advgrad.evaluation.state import StateFile, Tally, fingerprint
from advgrad.evaluation.targeting import resolve as resolve_targets
from advgrad.models import ModelAdapter
from advgrad.outcomes import MAX_ATTACKS, ROBUST
from advgrad.predictions import Classes, class_ids
from advgrad.provenance import describe_model, model_digest, versions
from advgrad.replicas import Replicas
from advgrad.report import Report

if TYPE_CHECKING:
    from advgrad.attacks import Attack

__all__ = ["evaluate"]

SANITY_SAMPLES = 64
"""How many of the first samples the sanity checks of `advgrad.flags` look at."""


def _warnings_as_flags(run: Any) -> Any:
    """Every warning raised while `run` works becomes a ``run_warning`` flag of its report
    (once per distinct message), then reaches the caller as usual, from the caller's line.

    Warnings the caller's filters ignore are left out; one they turn into errors still
    raises where it happens. A `FlaggedWarning` already has a flag of its own.
    """

    @functools.wraps(run)
    def wrapper(*args: Any, **kwargs: Any) -> Report:
        report = None
        try:
            # unit_data_checked: evaluate warns about unbounded [0, 1] data once, not its attacks
            with warnings.catch_warnings(record=True) as caught, unit_data_checked():
                warnings.simplefilter("always", append=True)  # after the caller's own filters
                report = run(*args, **kwargs)
        finally:  # replayed on failure too
            seen: dict[tuple[type, str], warnings.WarningMessage] = {}
            for record in caught:
                seen.setdefault((record.category, str(record.message)), record)
            for (category, text), record in seen.items():
                warnings.warn(record.message, category, stacklevel=2)
                if report is not None and not issubclass(category, FlaggedWarning):
                    report.flags.append(_warning_flag(category, text))
        return report

    return wrapper


def _warning_flag(category: type, text: str) -> dict[str, str]:
    return {
        "code": "run_warning",
        "message": f"{category.__name__}: {' '.join(text.split())}",
        "advice": "Raised while the run worked: read it before trusting the numbers, and "
        "fix its cause if it bears on them.",
    }


@_warnings_as_flags
def evaluate(
    model: Any,
    data: Any,
    *,
    suite: Sequence[Any],
    eps: float | str | Sequence[float | str],
    batch_size: int = 128,
    state: str | os.PathLike | None = None,
    seed: int = 0,
    return_adversarial: bool = False,
    progress: bool | None = None,
    sanity: bool = True,
    individual: bool | None = None,
    targets: Any = None,
    strategy: Any = None,
) -> Report:
    """Robust accuracy under the worst case of an attack suite, per eps (AutoAttack-style).

    For each batch and eps: the clean prediction comes first (misclassified samples are
    non-robust at every eps; no attack runs on them); then the attacks, in suite order. A
    sample is robust only if every attack failed on it. An attack "fooled" a sample when the
    model's own prediction on the returned input differs from the label *and* the input lies
    in the attack's threat model (eps ball of its norm, bounds, frozen inputs unchanged,
    finite values: `advgrad.budget.outside`); anything else is not counted, with a warning.
    A sample whose model output is not finite (NaN or inf) is never correct, robust or
    fooled: on the clean input it counts as neither correct nor robust, on an attack's input
    as not robust (and not fooled); the ``non_finite_outputs`` flag says how many (raised
    whether or not `sanity` runs; outcome codes: `advgrad.outcomes`).
    Targeted attacks (``targeted=True``) aim at the class that `targets` picks (by default
    the most likely wrong class of the clean input); they still count as having fooled a
    sample whenever its prediction differs from the label. Croce & Hein, "Reliable evaluation of
    adversarial robustness with an ensemble of diverse parameter-free attacks", ICML 2020.

    Each attack runs as ``attack.replace(eps=e, seed=s)``, where ``s`` is derived from
    `seed`, the attack's own seed and the (batch, attack, eps) indices. An attack with a
    ``budget`` setting (per-input `advgrad.Budget`, ``None`` = frozen input) gets every
    non-frozen input's eps replaced by ``e``.

    Args:
        model: A keras.Model (or callable on tensors) whose single output gives logits or
            probabilities (predicted class: argmax on the last axis).
        data: An ``(x, y)`` pair (``x``: an array, list or dict of arrays matching the
            model's inputs; ``y``: class ids or one-hot rows), or a `tf.data.Dataset`
            yielding ``(x, y)`` batches; it is re-batched to `batch_size`, so both give the
            same result. Data are streamed: memory does not grow with the data set (apart
            from a few bytes of outcome per sample). Labels must be class ids in
            ``[0, classes)`` of the model's output (2 classes for one unit) or one-hot rows
            as wide as the output, and every floating-point input finite (no NaN, no inf),
            as the attacks require. Arrays are checked whole, before any work; streamed
            data (a `tf.data.Dataset`) are checked per batch, as each batch arrives and
            before it is attacked, so an invalid batch stops the run there (batches
            finished before it are in `state`, if given). Empty data, or an empty
            element of a dataset, is refused.
        suite: Attacks, in cascade order: registry names (``"pgd"``: default settings),
            configured `advgrad.attacks.Attack` objects, or ``{"name": ..., **settings}``
            dicts; or a named suite, ``"standard"`` or ``"fast"`` (its attacks with
            default settings; `advgrad.get_suite` configures them). Set their ``bounds``:
            the default is unbounded (no clipping).
        eps: A number or a list of numbers, each finite and >= 0 (sorted, duplicates
            dropped); ``"curve"``, alone or among them: also the whole curve of robust
            accuracy against eps, from one run of the suite's minimal-norm attacks with no
            budget (CW-L2, DeepFool, FMN, FAB-T; FMN in the first attack's norm and bounds
            when the suite has none), in ``report.curve`` (`Report.curve_accuracy` reads it
            at any eps; the plot draws it next to the fixed-eps points); resumable like
            the rest.
        batch_size: Samples per batch, an int in ``[1, 2**31)``. Defaults to 128.
        state: Path of a JSON state file, or None (default: nothing saved). Written
            atomically after every batch; if it exists, the run resumes after its last
            finished batch and gives exactly the uninterrupted result. A state written for
            another model, data, suite, eps, batch size, seed, `individual` or `targets` is an
            error.
        seed: Seed from which each (batch, attack, eps) seed is derived: an int in
            ``[0, 2**63)``. Defaults to 0.
        return_adversarial: Keep the adversarial input that first fooled each sample, in
            ``report.adversarial`` (memory grows with the data; not kept for batches done
            by an earlier, interrupted run). Defaults to False.
        progress: Show a tqdm bar over batches with the running accuracies (True), or
            not (False). Defaults to None: shown where a person is watching (stderr is a
            terminal, or a Jupyter notebook: `tqdm.auto`), not in pipes, logs or tests.
        sanity: Run the checks of `advgrad.flags` on the first samples and put their flags
            in ``report.flags`` (also warned). Defaults to True.
        individual: Also run every attack alone on every clean-correct sample, for the
            per-attack rows (``report.per_attack``); the cascade is then read off those
            runs at no extra cost. False runs each attack only on the samples still robust
            (cheaper; no per-attack rows). Defaults to True for a list of attacks and to
            False for a named suite (AutoAttack's cascade).
        targets: The class each attack with ``targeted=True`` aims at (untargeted attacks
            ignore it): None or ``"most-likely-wrong"`` (default: the clean input's most
            likely class other than its label), ``"least-likely"`` (its least likely class),
            ``"random"`` (a class other than the label, drawn with a generator seeded from
            `seed` and the batch index: the same targets on every run and resume), an int
            (that class id for every sample, in ``[0, classes)``), or an array of class
            ids, one per sample (``(x, y)`` arrays only; a `tf.data.Dataset` is refused). A
            sample whose target equals its label cannot be fooled into its own class: the
            targeted attacks skip it and it counts as robust against them (in the per-attack
            rows and the cascade). Unless the default, the rule is part of the `state`
            fingerprint and is written as ``"targets"`` into the ``report.suite`` entry of
            every targeted attack (the rule name, the class id, or ``"array sha256:..."``).
            The per-attack rows of a targeted attack give its robust accuracy: its success
            rate at each eps is ``clean_accuracy - per_attack[label][eps]``.
        strategy: A `tf.distribute.Strategy` (MirroredStrategy on several GPUs or logical
            CPU devices, MultiWorkerMirroredStrategy from ``TF_CONFIG``:
            `advgrad.replicas.multi_worker`) whose replicas each attack's chunks are split
            over, or None (default: the default device). The report is the one without it
            (same outcomes, counts and robust accuracy), and so is the `state` file: a run
            may be resumed with or without a strategy. The attacks that run as one graph
            per chunk (FGSM, BIM, PGD, MI-FGSM, APGD, APGD-T) use it; the others and the
            clean predictions run on the default device. Under MultiWorkerMirroredStrategy
            every worker runs the same call on the same data and gets the whole report.

    Returns:
        A `advgrad.report.Report`.

    Raises:
        ValueError: An `advgrad._validation.ArgumentError` naming the argument: on an
            invalid argument or invalid data, before any work (streamed data: before the
            invalid batch is attacked); if `state` is not a regular file, is too large,
            cannot be parsed, was written for a different model/data/suite, or holds
            anything but what a run writes (a saved state is checked, not trusted; the
            file is left unchanged).

    >>> from advgrad import data, zoo
    >>> from advgrad.attacks import get_attack
    >>> ds = data.digits()
    >>> fgsm = get_attack("fgsm", bounds=ds.bounds)
    >>> r = evaluate(zoo.load("digits-cnn"), ds.test, suite=[fgsm], eps=0.1, batch_size=450)
    >>> r.n_samples, r.robust_accuracy[0.1] <= r.clean_accuracy
    (450, True)
    """
    attacks = _resolve_suite(suite)
    rules = getattr(attacks, "rules", None)  # a named suite's rules (adaptive)
    if rules is not None and all(r == "all" for r in rules):
        rules = None
    if len(attacks) > MAX_ATTACKS:  # every outcome code fits an int8
        raise invalid("suite", f"at most {MAX_ATTACKS} attacks", suite)
    eps_list, curve = _resolve_eps(eps)
    batch_size = check_int("batch_size", batch_size, low=1, high=SIZE_LIMIT)
    seed = check_seed(seed)
    return_adversarial = check_bool("return_adversarial", return_adversarial)
    progress = check_progress("progress", progress)
    sanity = check_bool("sanity", sanity)
    if individual is None:
        # a named suite, or a suite with rules: the cascade alone
        individual = not isinstance(suite, str) and rules is None
    individual = check_bool("individual", individual)
    if rules is not None and individual:
        raise invalid("individual", "False for a suite whose members follow rules", individual)
    rule = resolve_targets(targets)
    Replicas.of(strategy)  # raises, naming `strategy`
    curve_runner = None
    if curve:
        chosen = curve_attacks(attacks)
        curve_runner = Curve(model, chosen, labels(chosen), seed)
    stream = Batches(data, batch_size)
    ModelAdapter.of(model)  # validates `model`
    classes = None
    if stream.streamed:
        rule.check(2**62, None, streamed=True)  # refuses an array at once
    else:  # arrays: all of them checked now, before any work
        classes = output_classes(model, stream.head())
        stream.check(classes)
        rule.check(classes, len(stream.arrays[2]), streamed=False)
    attacks = fit_classes(attacks, model, classes)  # the settings that run, recorded
    names = labels(attacks)
    unbounded: list[str] = []  # attacks left unbounded on data in [0, 1] (warned once)
    if not stream.streamed:
        structure, leaves, _ = stream.arrays
        unbounded = _unbounded_on_unit_data(model, attacks, names, structure.pack(leaves))
    configs = [a.get_config() for a in attacks]
    digest = model_digest(model)
    expected = fingerprint(
        digest, configs, eps_list, batch_size, seed, individual, targets=rule.fingerprint()
    )
    if curve_runner is not None:  # a curve run resumes only a curve run's state
        expected["curve"] = list(curve_runner.labels)
    policy = None
    if rules is not None:  # a suite with rules resumes only a state of the same rules
        policy = Policy(rules, names, eps_list, Classes.of(ModelAdapter.of(model)).threshold)
        expected["adaptive"] = policy.fingerprint()
    store = StateFile(state, expected, names) if state is not None else None
    if store is not None and store.saved is not None:
        tally = Tally.from_state(names, eps_list, store.saved["tally"])
        if policy is not None:
            try:
                policy.record.resume(store.saved["tally"].get("adaptive"), tally.n_samples)
            except ValueError as err:
                raise store.refuse(f"which is damaged: {err}.") from None
        if curve_runner is not None:
            tally.start_curve(curve_runner.labels)
            tally.resume_curve(store.saved["tally"])
        done = store.batches_done
        if return_adversarial and done:
            warnings.warn(
                f"Resuming from {str(store.path)!r} after {done} finished batch(es): their "
                "adversarial examples were not saved and are missing from report.adversarial.",
                stacklevel=2,
            )
    else:
        tally = Tally(names, eps_list)
        if curve_runner is not None:
            tally.start_curve(curve_runner.labels)
        done = 0

    if unbounded:  # warned once everything is checked, just before the work starts
        warnings.warn(unbounded_message(unbounded), FlaggedWarning, 2)
    if policy is not None:
        tally.adaptive = policy.record
    runner = Runner(
        model,
        attacks,
        names,
        eps_list,
        seed,
        individual,
        return_adversarial,
        rule,
        strategy,
        policy,
    )
    sample_x: list[Any] = []
    sample_y: list[np.ndarray] = []
    sampled = 0
    started = time.perf_counter()
    with warnings.catch_warnings():  # a notebook without ipywidgets: a text bar, no flag
        warnings.simplefilter("ignore")
        from tqdm.auto import tqdm

    bar = tqdm(total=stream.total, disable=not progress, unit="batch", desc="evaluate")
    truth: list[np.ndarray] = []
    try:
        index = -1
        offset = 0
        for index, (x_b, y_b) in enumerate(stream):
            size = len(y_b)
            truth.append(class_ids(y_b))  # every batch, resumed ones too: per-class rows
            if stream.streamed:  # streamed: each batch checked as it arrives, before use
                if classes is None:
                    classes = output_classes(model, x_b)
                    rule.check(classes, None, streamed=True)  # a fixed class id < classes
                check_batch(x_b, y_b, classes, first=offset)
                if index == 0:
                    unbounded = _unbounded_on_unit_data(model, attacks, names, x_b)
                    if unbounded:
                        warnings.warn(unbounded_message(unbounded), FlaggedWarning, 2)
            if sampled < SANITY_SAMPLES:
                rows = np.arange(min(size, SANITY_SAMPLES - sampled))
                sample_x.append(take(x_b, rows))
                sample_y.append(np.array(np.asarray(y_b)[rows]))
                sampled += len(rows)
            batch_sha = tally.digest.update(x_b, y_b)  # of the data so far
            if index < done:
                finished = tally.batch_hashes[index], tally.sizes[index]
                if (batch_sha, size) != finished:
                    raise store.mismatch(f"data (batch {index})")
            else:
                if store is not None and store.complete:
                    raise store.mismatch("data (more samples)")
                runner.run_batch(tally, index, offset, x_b, y_b)
                if curve_runner is not None:
                    curve_runner.run_batch(tally, index, offset, x_b, y_b)
                tally.sizes.append(size)
                tally.batch_hashes.append(batch_sha)
                if store is not None:
                    store.write(tally, complete=False)
            offset += size
            bar.update(1)
            if progress:
                bar.set_postfix_str(postfix(tally), refresh=False)
        if index + 1 < done:
            raise store.mismatch("data (fewer samples)")
        if tally.n_samples == 0:
            raise invalid("data", "at least one sample", data)
        if store is not None and not store.complete:
            store.write(tally, complete=True)
    finally:
        bar.close()

    seconds = time.perf_counter() - started
    report = _report(tally, runner, model, configs, seed, batch_size, individual, digest, seconds)
    report.labels = [int(v) for v in np.concatenate(truth)]
    report.distribute = _distribution(strategy)
    if curve_runner is not None:
        report.curve = curve_runner.result(tally)
    if runner.outside:  # a correctness flag: raised whether or not `sanity` runs
        counts = ", ".join(f"{label}: {n}" for label, n in runner.outside.items())
        report.flags.append(
            {
                "code": "outside_threat_model",
                "message": "Attacks returned inputs that fool the model but lie outside their "
                f"threat model (eps ball, bounds, frozen inputs or non-finite values): "
                f"{counts}. They were not counted as adversarial.",
                "advice": "The attack does not keep to its budget: check a custom attack's "
                "projection and clipping, and the bounds (the data's valid range).",
            }
        )
    if unbounded:  # like outside_threat_model: raised whether or not `sanity` runs
        report.flags.append(_unbounded_flag(unbounded))
    from advgrad import flags as flags_lib

    broken = flags_lib.non_finite_outputs(report)  # from the outcomes: always
    if broken is not None:
        report.flags.append(broken.to_dict())
        warnings.warn(broken.message, FlaggedWarning, stacklevel=2)
    if sanity:
        flags = flags_lib.run_all(
            model, concat(sample_x), np.concatenate(sample_y), report, seed=seed
        )
        report.flags += [f.to_dict() for f in flags]
        if flags:
            codes = ", ".join(f.code for f in flags)
            warnings.warn(
                f"advgrad.evaluate raised {len(flags)} sanity flag(s): {codes}. The robust "
                "accuracy may be overestimated; see report.flags for what to try.",
                FlaggedWarning,
                stacklevel=2,
            )
    if policy is not None:  # after the sanity checks too: "adaptive" is no setting
        entries = policy.record.entries()
        suites = zip(names, report.suite, strict=True)
        report.suite = [{**c, "adaptive": entries[label]} for label, c in suites]
    if not rule.default:  # the rule, in the report's config of every targeted attack (after
        # the sanity checks, which rebuild attacks from these configs: "targets" is no setting)
        report.suite = [
            {**c, "targets": rule.describe()} if a.targeted else c
            for a, c in zip(attacks, report.suite, strict=True)
        ]
    return report


def _distribution(strategy: Any) -> dict[str, Any]:
    """What `Report.distribute` records of `strategy`: its class, replicas and devices."""
    if strategy is None:
        return {"strategy": "none", "replicas": 1, "devices": []}
    devices = getattr(strategy.extended, "worker_devices", ())
    return {
        "strategy": type(strategy).__name__,
        "replicas": int(strategy.num_replicas_in_sync),
        "devices": [str(d) for d in devices],
    }


def _unbounded_on_unit_data(
    model: Any, attacks: Sequence[Attack], names: Sequence[str], x: Any
) -> list[str]:
    """The labels of the attacks left unbounded on a floating input whose values in `x` all
    lie in [0, 1] (`advgrad.budget.unbounded_on_unit_data`); `x`: the whole arrays, or a
    stream's first batch."""
    _, leaves = ModelAdapter.of(model).split_inputs(x)
    threat_models = {}
    for attack, label in zip(attacks, names, strict=True):
        try:
            threat_models[label] = attack.budgets(tuple(leaves))
        except (ValueError, TypeError):
            continue
    return unbounded_on_unit_data(threat_models, leaves)


def _unbounded_flag(unbounded: list[str]) -> dict[str, str]:
    return {
        "code": "unbounded_attack_on_bounded_data",
        "message": unbounded_message(unbounded),
        "advice": "Give every attack the data's valid range (bounds=(0, 1), or the data set's "
        "bounds): unclipped adversarial inputs may not be valid inputs, and the robust "
        "accuracy may be underestimated.",
    }


def _resolve_suite(suite: Any) -> list[Attack]:
    from advgrad import attacks as attacks_lib

    if isinstance(suite, str) and suite in attacks_lib.list_suites():
        return attacks_lib.get_suite(suite)
    if isinstance(suite, attacks_lib.Suite) and suite:  # get_suite's, with its rules
        return suite
    if isinstance(suite, (str, Mapping)) or not isinstance(suite, Sequence) or not suite:
        expected = (
            "a non-empty list of attack names, Attack objects or dicts, or a suite name "
            f"among {attacks_lib.list_suites()}"
        )
        raise invalid("suite", expected, suite)
    resolved = []
    for item in suite:
        if isinstance(item, attacks_lib.Attack):
            resolved.append(item)
        elif isinstance(item, str):
            if item not in attacks_lib.list_attacks():
                raise invalid("suite", f"attack names among {attacks_lib.list_attacks()}", item)
            resolved.append(attacks_lib.get_attack(item))
        elif isinstance(item, Mapping) and isinstance(item.get("name"), str):
            resolved.append(attacks_lib.from_config(dict(item)))
        else:
            raise invalid("suite", "attack names, Attack objects or {'name': ...} dicts", item)
    return resolved


def _resolve_eps(eps: Any) -> tuple[list[float], bool]:
    """Every eps a finite number >= 0 (sorted, duplicates dropped), and whether "curve" is
    among them."""
    values = list(eps) if isinstance(eps, (list, tuple, np.ndarray)) else [eps]
    expected = f"a finite number >= 0, {CURVE!r}, or a non-empty list of them"
    if not values:
        raise invalid("eps", expected, eps)
    curve = any(isinstance(v, str) and v == CURVE for v in values)
    numbers = []
    for value in values:
        if isinstance(value, str):
            if value != CURVE:
                raise invalid("eps", expected, value)
            continue
        numbers.append(check_eps(value))
    return sorted(set(numbers)), curve


def _report(tally, runner, model, configs, seed, batch_size, individual, digest, seconds):
    """The `Report` of a finished tally (without the sanity flags)."""
    n = tally.n_samples
    eps = tally.eps
    outcomes = {e: tally.outcomes(i) for i, e in enumerate(eps)}
    robust = {e: float(np.sum(outcomes[e] == ROBUST) / n) for e in eps}
    per_attack: dict[str, dict[float, float]] = {}
    attack_outcomes: dict[str, dict[float, np.ndarray]] = {}
    if individual:
        for label in tally.labels:
            arrays = {e: tally.robust_alone(label, i) for i, e in enumerate(eps)}
            attack_outcomes[label] = arrays
            per_attack[label] = {e: float(np.sum(arrays[e]) / n) for e in eps}
    loss_trend = {
        label: {
            e: [row[0] / row[2], row[1] / row[2]]
            for e, row in zip(eps, tally.loss[label], strict=True)
            if row[2] > 0
        }
        for label in tally.labels
    }
    targeted = {
        label: {e: list(row) for e, row in zip(eps, rows, strict=True)}
        for (label, rows), config in zip(tally.targeted.items(), configs, strict=True)
        if config.get("targeted") and rows is not None
    }
    adversarial = None
    if runner.keep:
        adversarial = {}
        for i, e in enumerate(eps):
            parts = runner.adversarial[i]
            if parts:
                adversarial[e] = {key: concat([p[key] for p in parts]) for key in parts[0]}
    return Report(
        clean_accuracy=float(tally.clean_correct / n),
        robust_accuracy=robust,
        per_attack=per_attack,
        outcomes=outcomes,
        n_samples=n,
        attacks=list(tally.labels),
        attack_outcomes=attack_outcomes,
        suite=[{**c, "eps": list(eps)} for c in configs],  # the radii actually swept
        eps=list(eps),
        gradients=dict(tally.gradients),
        queries=dict(tally.queries),
        timings={k: round(v, 6) for k, v in tally.timings.items()},
        gradients_per_sample=dict(tally.per_sample),
        loss_trend=loss_trend,
        targeted_success=targeted,
        seed=seed,
        batch_size=batch_size,
        individual=individual,
        seconds=round(seconds, 6),
        versions=versions(),
        flags=[],
        model=describe_model(model, digest),
        data={"n_samples": n, **tally.digest.describe()},
        adversarial=adversarial,
    )
