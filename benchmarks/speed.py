"""Speed benchmark: advgrad's compiled attack loop against the cost of its gradients.

For each model and attack, the attack's wall time (`attack(model, x, y)`, end to end, as a
user calls it) is compared with a *floor*: the same number of forward + backward (w.r.t. the inputs)
passes of the same model on the same batch, inside ONE `tf.function` (an autograph
`tf.range` loop), timed the same way. The ratio attack / floor is the attack loop's overhead:
step rule, projection, clipping, best-so-far bookkeeping, loss trace, and the Python around
the compiled call.

    python benchmarks/speed.py                    # full run (both models, 40 steps, 5 repeats)
    python benchmarks/speed.py --quick            # 10 steps, 3 repeats, 1 training epoch
    python benchmarks/speed.py --batch-sizes 450,128 --repeats 7

Targets: FGSM <= 1.5 x one forward+backward pass; BIM / PGD / MI-FGSM <= 1.05 x `steps`
passes; APGD (CE, `steps` steps, one restart) <= 1.10 x `steps` passes; the minimal-norm
attacks (L2, no budget; `run`, which judges the result) <= 1.20 x the floor per gradient:
FMN (`steps` steps) and CW-L2 (4 x `steps` / 4) against `steps` passes, DeepFool (10
candidates: 9 gradients per step, in one pass over the batch tiled 9 times; samples stop once
fooled) against its exact mean gradient count per sample times one pass. Row "FGSM run"
times `FGSM.run`, which also judges the result with one more forward pass to report
`fooled` (every attack's `run` pays that pass once); it has no target. Every row also
gives the model's accuracy on the attack's output, so speed is never bought with strength.

Timing protocol (see benchmarks/README.md): every timed callable is called `--warmup` times
first (tracing and warm-up, not timed); then `--repeats` rounds. In a round every attack run
is bracketed by two runs of its floor (F a1 F a2 F a3 F, the attacks' order rotated from round
to round) and paired with their mean; the ratio reported is the median over rounds of
attack time / paired floor time, which cancels drift in the load of a shared machine. The
ratios of the medians and of the minima, and CPU-time ratios, are recorded too.

Variants (issue 18): `--precision float32,mixed_float16,mixed_bfloat16` rebuilds each model
under each Keras mixed-precision policy with the float32 model's weights (its floor is that
model's own floor); `--jit-compile no,yes` adds, per attack, a row with `jit_compile=True`
(name suffixed " +XLA", no target) timed against the same plain floor, plus rows "floor
+XLA" (the floor compiled with XLA against the plain floor). `--attacks PGD,FGSM` restricts
the attacks (mixed precision is slow on a CPU: few repeats).

    python benchmarks/speed.py --models digits-cnn --attacks PGD --jit-compile no,yes \
        --precision float32,mixed_float16,mixed_bfloat16 --repeats 5 \
        --out benchmarks/results/digits-cnn-xla-precision

Writes `<out>/speed.json` and `<out>/speed.md`, and prints the table.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import os
import pathlib
import platform
import statistics
import sys
import time
from collections.abc import Callable

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

# _common puts the repository and benchmarks/ on sys.path.
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from _common import ROOT, write_results  # noqa: E402

import advgrad  # noqa: E402
from advgrad import attacks, data, zoo  # noqa: E402
from advgrad.gradients import trace_count  # noqa: E402

EPS = 0.1
BOUNDS = (0.0, 1.0)
FGSM_TARGET = 1.5
ITERATIVE_TARGET = 1.05
APGD_TARGET = 1.10  # its step-size schedule sees the loss: a little more work per step
MINIMAL_TARGET = 1.20  # minimal-norm attacks (FMN, CW-L2, DeepFool), per gradient
RESNET_NAME = "digits32-resnet"
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
ATTACKS = ("FGSM", "BIM", "PGD", "MI-FGSM", "APGD", "FMN", "CW-L2", "DeepFool")
XLA = " +XLA"  # suffix of the rows with jit_compile=True


# ----------------------------------------------------------------------------- machine


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    import keras

    try:
        affinity = len(os.sched_getaffinity(0))
    except AttributeError:
        affinity = None
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpus_usable": affinity,
        "gpus": [d.name for d in tf.config.list_physical_devices("GPU")],
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "numpy": np.__version__,
        "advgrad": advgrad.__version__,
        "intra_op_threads": tf.config.threading.get_intra_op_parallelism_threads(),
        "inter_op_threads": tf.config.threading.get_inter_op_parallelism_threads(),
        "loadavg_start": _loadavg(),
    }


def _loadavg():
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except OSError:
        return None


# ------------------------------------------------------------------------------ models


def _upsample(x: np.ndarray) -> np.ndarray:
    """8x8x1 digits -> 32x32x3: bilinear resize, tiled to three channels, kept in [0, 1]."""
    big = tf.image.resize(tf.constant(x), (32, 32), method="bilinear")
    return np.ascontiguousarray(tf.clip_by_value(tf.tile(big, [1, 1, 1, 3]), 0.0, 1.0).numpy())


def _resnet(seed: int):
    """Stem conv 32, 3 stages x 2 basic residual blocks (32/64/152 channels: about 0.9M
    parameters), global average pooling, Dense(10) logits."""
    import keras
    from keras import layers

    keras.utils.set_random_seed(seed)

    def conv_bn(h, channels, kernel, stride, name):
        h = layers.Conv2D(
            channels, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv"
        )(h)
        return layers.BatchNormalization(momentum=0.9, name=f"{name}_bn")(h)

    def block(h, channels, stride, name):
        shortcut = h
        out = layers.ReLU(name=f"{name}_relu1")(conv_bn(h, channels, 3, stride, f"{name}_a"))
        out = conv_bn(out, channels, 3, 1, f"{name}_b")
        if stride != 1 or shortcut.shape[-1] != channels:
            shortcut = conv_bn(shortcut, channels, 1, stride, f"{name}_proj")
        return layers.ReLU(name=f"{name}_out")(layers.Add(name=f"{name}_add")([out, shortcut]))

    x = keras.Input((32, 32, 3), name="image")
    h = layers.ReLU(name="stem_relu")(conv_bn(x, 32, 3, 1, "stem"))
    for stage, (channels, stride) in enumerate([(32, 1), (64, 2), (152, 2)]):
        h = block(h, channels, stride, f"s{stage}b0")
        h = block(h, channels, 1, f"s{stage}b1")
    h = layers.GlobalAveragePooling2D(name="pool")(h)
    logits = layers.Dense(10, name="logits")(h)
    return keras.Model(x, logits, name="digits32_resnet")


def _accuracy(model, x, y) -> float:
    logits = model.predict(x, batch_size=225, verbose=0)
    return float(np.mean(np.argmax(logits, -1) == y))


def load_models(
    names: list[str], epochs: int, seed: int, precisions: tuple[str, ...] = ("float32",)
) -> list[dict]:
    import keras

    ds = data.digits()
    models = []
    for name in names:
        start = time.perf_counter()
        if name == "digits-cnn":
            model = zoo.load("digits-cnn")
            x_test = np.asarray(ds.x_test)
            how = "advgrad.zoo.load('digits-cnn') (cached or trained by the zoo recipe)"
        elif name == RESNET_NAME:
            model = _resnet(seed)
            x_train, x_test = _upsample(ds.x_train), _upsample(ds.x_test)
            model.compile(
                optimizer=keras.optimizers.Adam(3e-3),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"],
            )
            model.fit(x_train, ds.y_train, epochs=epochs, batch_size=32, shuffle=True, verbose=0)
            how = f"built here, seed {seed}, Adam(3e-3), {epochs} epoch(s), batch 32"
        else:
            raise SystemExit(f"unknown model {name!r}: use digits-cnn or {RESNET_NAME}")
        y_test = np.asarray(ds.y_test)
        seconds = round(time.perf_counter() - start, 2)
        for precision in precisions:
            variant = model if precision == "float32" else _under_policy(name, model, precision)
            label = name if precision == "float32" else f"{name} ({precision})"
            models.append(
                {
                    "name": label,
                    "base": name,
                    "precision": precision,
                    "model": variant,
                    "x": x_test,
                    "y": y_test,
                    "info": {
                        "parameters": int(variant.count_params()),
                        "input_shape": list(x_test.shape[1:]),
                        "test_images": int(len(y_test)),
                        "clean_accuracy": round(_accuracy(variant, x_test, y_test), 4),
                        "precision": precision,
                        "how": how
                        if precision == "float32"
                        else f"rebuilt under the {precision} policy with the float32 weights",
                        "load_or_train_seconds": seconds,
                    },
                }
            )
    return models


def _under_policy(name: str, model, policy: str):
    """`model`'s architecture built under the Keras mixed-precision `policy`, with its
    weights (float32 variables: the layers compute in half precision)."""
    import keras

    keras.mixed_precision.set_global_policy(policy)
    try:
        variant = zoo._digits_cnn() if name == "digits-cnn" else _resnet(0)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    variant.set_weights(model.get_weights())
    return variant


# ------------------------------------------------------------------------------- floor


def make_floor(model, sample_shape, passes: int, jit_compile: bool = False):
    """`passes` forward+backward (w.r.t. inputs) passes of summed CE-from-logits (cast to
    float32, as advgrad casts a mixed-precision model's outputs) in ONE `tf.function`. Each
    pass feeds the next through `x * (1 + 1e-30 * sum(grad))`, a numerical no-op that keeps
    the passes serial (as in an attack, where step t+1 needs the gradient of step t) and
    that no optimiser can hoist out of the loop or fold away."""

    spec = [
        tf.TensorSpec((None, *sample_shape), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    ]

    @tf.function(input_signature=spec, jit_compile=jit_compile)
    def floor(x, y):
        ids = tf.cast(y, tf.int32)
        acc = tf.zeros([], tf.float32)
        for _ in tf.range(passes):
            with tf.GradientTape() as tape:
                tape.watch(x)
                logits = tf.cast(model(x, training=False), tf.float32)  # no-op in float32
                loss = tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits))
            grad = tape.gradient(loss, x)
            total = tf.reduce_sum(grad)
            acc += total
            x = x * (1.0 + 1e-30 * total)
        return acc

    return floor


def make_forward(model, sample_shape):
    """One forward pass and the summed CE loss (no gradient): the scoring pass an attack does
    on its final iterate to report `fooled` (and to consider that iterate for the best)."""

    spec = [
        tf.TensorSpec((None, *sample_shape), tf.float32),
        tf.TensorSpec((None,), tf.int64),
    ]

    @tf.function(input_signature=spec)
    def forward(x, y):
        logits = tf.cast(model(x, training=False), tf.float32)
        ids = tf.cast(y, tf.int32)
        return tf.reduce_sum(tf.nn.sparse_softmax_cross_entropy_with_logits(ids, logits))

    return forward


# ------------------------------------------------------------------------------ timing


def _chunks(n: int, size: int):
    return [(s, min(s + size, n)) for s in range(0, n, size)]


def floor_runner(fn, x: np.ndarray, y: np.ndarray, batch_size: int) -> Callable[[], None]:
    xt, yt = tf.constant(x), tf.constant(y)
    pieces = [(xt[a:b], yt[a:b]) for a, b in _chunks(len(y), batch_size)]

    def run():
        out = [fn(xc, yc) for xc, yc in pieces]
        for value in out:
            value.numpy()  # wait for the result

    return run


def run_runner(attack, model, x: np.ndarray, y: np.ndarray, record: dict) -> Callable:
    """`attack.run(model, x, y)`: x_adv, plus the judging forward pass that gives `fooled`."""

    def run():
        result = attack.run(model, x, y)  # numpy in, numpy out: what a user pays
        record["fooled_rate"] = round(float(np.mean(result.fooled)), 4)
        record["gradients_per_sample"] = int(result.gradients)
        if isinstance(attack, attacks.DeepFool):
            # Per sample: steps x (k gradients + 1 forward) + the clean forward, k = candidates
            # - 1 (each iterate is judged as it is made: no separate verdict pass).
            k = attack.candidates - 1
            exact = np.mean((np.asarray(result.queries) - 1) * k / (k + 1))
            record["exact_gradients_per_sample"] = round(float(exact), 4)
        if result.norms is not None:
            record["median_norm"] = round(float(np.median(result.norms)), 4)
        return result.x_adv

    return run


def minimal_specs(steps: int, batch_size: int) -> list[tuple]:
    """(name, attack, floor key, floor passes or None = per gradient, target): the
    minimal-norm attacks in L2, no budget, with `steps` gradients (DeepFool: its own)."""
    common = {"norm": "l2", "bounds": BOUNDS, "batch_size": batch_size}
    searches = next(b for b in (4, 2, 1) if steps % b == 0)
    return [
        (
            f"FMN (L2, {steps} steps)",
            attacks.FMN(steps=steps, **common),
            "floor_n",
            steps,
            MINIMAL_TARGET,
        ),
        (
            f"CW-L2 ({searches} x {steps // searches})",
            attacks.CarliniWagnerL2(
                binary_search_steps=searches, steps=steps // searches, **common
            ),
            "floor_n",
            steps,
            MINIMAL_TARGET,
        ),
        ("DeepFool (L2)", attacks.DeepFool(**common), "floor_1", None, MINIMAL_TARGET),
    ]


def call_runner(attack, model, x: np.ndarray, y: np.ndarray) -> Callable:
    """`attack(model, x, y)`: x_adv only, so the final iterate is not judged."""

    def run():
        return np.asarray(attack(model, x, y))

    return run


def _timed(fn: Callable) -> tuple[float, float]:
    start, start_cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - start, time.process_time() - start_cpu


def time_bracketed(groups: list[tuple[str, Callable, list[tuple[str, Callable]]]], repeats: int):
    """Time each member of a group between two runs of the group's floor.

    `groups` holds `(floor name, floor callable, [(name, callable), ...])`. Each round runs,
    per group, ``F a1 F a2 F ... ak F`` (the members' order rotated by one each round, the
    groups' order alternating), so every member call is bracketed by floor calls made just
    before and just after it; its paired floor is their mean, which cancels drift in the
    machine's load that is slower than one call. Returns
    ``({name: {"wall", "cpu", "floor_wall", "floor_cpu"}}, {floor name: {"wall", "cpu"}})``
    with one entry per round (member) or per floor call (floor); "cpu" is the CPU time of
    this process, all threads.
    """
    members: dict[str, dict[str, list[float]]] = {}
    floors = {name: {"wall": [], "cpu": []} for name, _, _ in groups}
    for r in range(repeats):
        for floor_name, floor_fn, group in groups if r % 2 == 0 else groups[::-1]:
            shift = r % len(group)

            def floor_call(name=floor_name, fn=floor_fn):
                wall, cpu = _timed(fn)
                floors[name]["wall"].append(wall)
                floors[name]["cpu"].append(cpu)
                return wall, cpu

            before = floor_call()
            for name, fn in group[shift:] + group[:shift]:
                wall, cpu = _timed(fn)
                after = floor_call()
                rec = members.setdefault(
                    name, {"wall": [], "cpu": [], "floor_wall": [], "floor_cpu": []}
                )
                rec["wall"].append(wall)
                rec["cpu"].append(cpu)
                rec["floor_wall"].append((before[0] + after[0]) / 2)
                rec["floor_cpu"].append((before[1] + after[1]) / 2)
                before = after
    return members, floors


def _paired(values: list[float], floors: list[float]) -> float:
    return statistics.median([v / f for v, f in zip(values, floors, strict=True)])


# --------------------------------------------------------------------------- third party


def third_party_notes() -> dict:
    """cleverhans / foolbox / ART are only detected here: none is a dependency of advgrad.
    When one is importable the benchmark runs its Linf PGD on the same model and batch."""
    notes = {}
    for module, label in (("cleverhans", "cleverhans"), ("foolbox", "foolbox"), ("art", "ART")):
        found = importlib.util.find_spec(module) is not None
        notes[label] = {"installed": found, "note": None if found else "skipped"}
    return notes


def third_party_runners(notes: dict, model, x, y, steps: int, batch_size: int):
    """Best-effort runners for installed libraries (Linf PGD, `steps` steps, eps 0.1)."""
    runners = []
    step = 2.5 * EPS / steps
    if notes["cleverhans"]["installed"]:
        try:
            from cleverhans.tf2.attacks.projected_gradient_descent import (
                projected_gradient_descent,
            )

            xt, yt = tf.constant(x), tf.constant(y)

            def cleverhans_pgd():
                return np.concatenate(
                    [
                        projected_gradient_descent(
                            model,
                            xt[a:b],
                            EPS,
                            step,
                            steps,
                            np.inf,
                            clip_min=0.0,
                            clip_max=1.0,
                            y=yt[a:b],
                            rand_init=True,
                            sanity_checks=False,
                        ).numpy()
                        for a, b in _chunks(len(y), batch_size)
                    ]
                )

            runners.append(("cleverhans PGD", cleverhans_pgd))
        except Exception as err:  # noqa: BLE001 - optional, report and go on
            notes["cleverhans"]["note"] = f"import failed: {err!r}"
    if notes["foolbox"]["installed"]:
        try:
            import foolbox as fb

            fmodel = fb.TensorFlowModel(model, bounds=BOUNDS)
            fb_attack = fb.attacks.LinfPGD(abs_stepsize=step, steps=steps, random_start=True)
            xt, yt = tf.constant(x), tf.constant(y)

            def foolbox_pgd():
                out = []
                for a, b in _chunks(len(y), batch_size):
                    _, clipped, _ = fb_attack(fmodel, xt[a:b], yt[a:b], epsilons=EPS)
                    out.append(np.asarray(clipped))
                return np.concatenate(out)

            runners.append(("foolbox PGD", foolbox_pgd))
        except Exception as err:  # noqa: BLE001
            notes["foolbox"]["note"] = f"setup failed: {err!r}"
    if notes["ART"]["installed"]:
        try:
            import keras
            from art.attacks.evasion import ProjectedGradientDescent
            from art.estimators.classification import TensorFlowV2Classifier

            classifier = TensorFlowV2Classifier(
                model=model,
                nb_classes=10,
                input_shape=tuple(x.shape[1:]),
                loss_object=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                clip_values=BOUNDS,
            )
            art_attack = ProjectedGradientDescent(
                classifier,
                norm=np.inf,
                eps=EPS,
                eps_step=step,
                max_iter=steps,
                batch_size=batch_size,
                verbose=False,
            )

            def art_pgd():
                return art_attack.generate(x=x, y=y)

            runners.append(("ART PGD", art_pgd))
        except Exception as err:  # noqa: BLE001
            notes["ART"]["note"] = f"setup failed: {err!r}"
    return runners


# -------------------------------------------------------------------------------- main


def _variants(specs: list[tuple], jit: tuple[bool, ...]) -> list[tuple]:
    """`specs` as asked by ``--jit-compile``: the plain attacks, and/or each with
    ``jit_compile=True`` (name + " +XLA", no target: XLA is opt-in, not held to one)."""
    plain = list(specs) if False in jit else []
    xla = [
        (f"{name}{XLA}", attack.replace(jit_compile=True), key, passes, None)
        for name, attack, key, passes, _ in specs
    ]
    return plain + (xla if True in jit else [])


def _wanted(name: str, wanted: list[str]) -> bool:
    return name.split(" ")[0] in wanted


def benchmark_model(entry: dict, args, notes: dict) -> list[dict]:
    model, x, y = entry["model"], entry["x"], entry["y"]
    sample_shape = tuple(x.shape[1:])
    floor_1 = make_floor(model, sample_shape, 1)
    floor_n = make_floor(model, sample_shape, args.steps)
    forward = make_forward(model, sample_shape)
    xla_floors = {}
    if True in args.jit_compile:  # the floors compiled with XLA, timed against the plain ones
        xla_floors = {
            "floor_1": make_floor(model, sample_shape, 1, jit_compile=True),
            "floor_n": make_floor(model, sample_shape, args.steps, jit_compile=True),
        }
    rows = []
    for batch_size in args.batch_sizes:
        common = {"eps": EPS, "bounds": BOUNDS, "loss": "ce", "batch_size": batch_size}
        every = [
            ("FGSM", attacks.FGSM(**common), "floor_1", 1, FGSM_TARGET),
            (
                "BIM",
                attacks.BIM(steps=args.steps, **common),
                "floor_n",
                args.steps,
                ITERATIVE_TARGET,
            ),
            (
                "PGD",
                attacks.PGD(steps=args.steps, seed=args.seed, **common),
                "floor_n",
                args.steps,
                ITERATIVE_TARGET,
            ),
            (
                "MI-FGSM",
                attacks.MIFGSM(steps=args.steps, **common),
                "floor_n",
                args.steps,
                ITERATIVE_TARGET,
            ),
            (
                "APGD",
                attacks.APGD(steps=args.steps, seed=args.seed, **common),
                "floor_n",
                args.steps,
                APGD_TARGET,
            ),
        ]
        specs = _variants([s for s in every if _wanted(s[0], args.attacks)], args.jit_compile)
        runners = {name: call_runner(a, model, x, y) for name, a, *_ in specs}
        records: dict[str, dict] = {}
        fgsm = next((s for s in specs if s[0] == "FGSM"), None)
        if fgsm is not None:
            records["FGSM run"] = {}
            runners["FGSM run"] = run_runner(fgsm[1], model, x, y, records["FGSM run"])
        minimal = _variants(
            [s for s in minimal_specs(args.steps, batch_size) if _wanted(s[0], args.attacks)],
            args.jit_compile,
        )
        for name, attack, *_ in minimal:
            records[name] = {}
            runners[name] = run_runner(attack, model, x, y, records[name])
        extra = (
            third_party_runners(notes, model, x, y, args.steps, batch_size)
            if entry["name"] in args.third_party and False in args.jit_compile
            else []
        )
        floors_xla = {
            key: (f"{key}{XLA}", floor_runner(fn, x, y, batch_size))
            for key, fn in xla_floors.items()
        }

        groups = []
        for key, floor_fn in (("floor_1", floor_1), ("floor_n", floor_n)):
            named = [n for n, _, k, *_ in specs if k == key]
            named += ["FGSM run"] if key == "floor_1" and fgsm is not None else []
            named += [n for n, _, k, *_ in minimal if k == key]
            group = [(n, runners[n]) for n in named]
            if key == "floor_1":
                group.append(("forward", floor_runner(forward, x, y, batch_size)))
            else:
                group += extra
            group += [floors_xla[key]] if key in floors_xla else []
            groups.append((key, floor_runner(floor_fn, x, y, batch_size), group))
        repeats = args.resnet_repeats if entry["base"] == RESNET_NAME else args.repeats
        print(
            f"[{entry['name']}] batch {batch_size}: {args.warmup} warm-up + {repeats} "
            "bracketed rounds ...",
            flush=True,
        )
        # Warm up first (this traces), so the trace counter can check timing never retraces.
        for _, floor_fn, group in groups:
            for _ in range(args.warmup):
                floor_fn()
                for _, fn in group:
                    fn()
        traces_before = trace_count("attack")
        timed, floors = time_bracketed(groups, repeats)
        retraced = trace_count("attack") - traces_before
        robust = {  # accuracy on each attack's output, from one more (untimed) call
            name: _accuracy(model, fn(), y)
            for _, _, group in groups
            for name, fn in group
            if name != "forward" and not name.startswith("floor")
        }
        load = _loadavg()
        fwd = timed["forward"]
        forward_seconds = statistics.median(fwd["wall"])
        forward_fraction = _paired(fwd["wall"], fwd["floor_wall"])
        sanity = statistics.median(floors["floor_n"]["wall"]) / (
            args.steps * statistics.median(floors["floor_1"]["wall"])
        )
        common_fields = {
            "precision": entry["precision"],
            "forward_seconds": forward_seconds,
            "forward_fraction_of_floor_1": round(forward_fraction, 4),
            "retraced_while_timing": retraced,
            "floor_linearity": round(sanity, 3),
            "loadavg_after": load,
        }
        fgsm_run = [("FGSM run", None, "floor_1", 1, None)] if fgsm is not None else []
        floor_rows = [
            (name, None, key, 1 if key == "floor_1" else args.steps, None)
            for key, (name, _) in floors_xla.items()
        ]
        for name, _, floor_key, passes, target in (
            specs[:1]
            + fgsm_run
            + specs[1:]
            + [(n, None, "floor_n", args.steps, None) for n, _ in extra]
            + minimal
            + floor_rows
        ):
            rec = timed[name]
            scale = 1.0
            if passes is None:  # DeepFool: per gradient, against its gradients x one pass
                passes = records[name]["exact_gradients_per_sample"]
                scale = passes
                rec = {
                    **rec,
                    "floor_wall": [f * scale for f in rec["floor_wall"]],
                    "floor_cpu": [f * scale for f in rec["floor_cpu"]],
                }
            ratio = _paired(rec["wall"], rec["floor_wall"])
            # What the attack must compute: its passes plus one scoring forward pass.
            work = [f + forward_seconds for f in rec["floor_wall"]]
            if name.startswith("floor"):
                timed_as = "the floor compiled with XLA (jit_compile=True)"
            elif name in records:
                timed_as = "attack.run(model, x, y)"
            elif name in runners:
                timed_as = "attack(model, x, y)"
            else:
                timed_as = "third-party PGD"
            rows.append(
                {
                    "model": entry["name"],
                    "attack": name,
                    "timed": timed_as,
                    "jit_compile": name.endswith(XLA),
                    "batch_size": batch_size,
                    "steps": passes,
                    "floor_passes": passes,
                    "seconds": statistics.median(rec["wall"]),
                    "floor_seconds": statistics.median(rec["floor_wall"]),
                    "ratio": ratio,
                    "ratio_of_medians": statistics.median(rec["wall"])
                    / statistics.median(rec["floor_wall"]),
                    "ratio_of_minima": min(rec["wall"]) / (scale * min(floors[floor_key]["wall"])),
                    "target": target,
                    "pass": None if target is None else bool(ratio <= target),
                    "seconds_all": [round(t, 5) for t in rec["wall"]],
                    "floor_seconds_all": [round(t, 5) for t in rec["floor_wall"]],
                    "ratio_vs_floor_plus_forward": _paired(rec["wall"], work)
                    if name == "FGSM run"
                    else None,
                    "cpu_seconds": statistics.median(rec["cpu"]),
                    "floor_cpu_seconds": statistics.median(rec["floor_cpu"]),
                    "cpu_ratio": _paired(rec["cpu"], rec["floor_cpu"]),
                    "robust_accuracy": None if name not in robust else round(robust[name], 4),
                    **common_fields,
                    **records.get(name, {}),
                }
            )
    return rows


def _fmt_seconds(value: float) -> str:
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def markdown(machine: dict, settings: dict, models: list[dict], rows: list[dict], notes) -> str:
    lines = [
        "# advgrad attack speed vs. the forward+backward floor",
        "",
        f"- Date: {machine['date']}",
        f"- Machine: {machine['cpu_model']}, {machine['cpu_count']} CPUs "
        f"({machine['cpus_usable']} usable), GPUs: {machine['gpus'] or 'none'}",
        f"- Platform: {machine['platform']}, Python {machine['python']}",
        f"- TensorFlow {machine['tensorflow']}, Keras {machine['keras']}, "
        f"NumPy {machine['numpy']}, advgrad {machine['advgrad']}",
        f"- Load average (1/5/15 min) at start: {machine['loadavg_start']}, "
        f"at end: {machine.get('loadavg_end')}",
        f"- Settings: Linf eps={EPS}, bounds {list(BOUNDS)}, loss CE on logits, "
        f"steps={settings['steps']}, repeats={settings['repeats']} "
        f"({RESNET_NAME}: {settings['resnet_repeats']}; median), "
        f"warm-up={settings['warmup']}, quick={settings['quick']}",
        "",
        "Models:",
        "",
    ]
    for m in models:
        info = m["info"]
        lines.append(
            f"- `{m['name']}`: input {tuple(info['input_shape'])}, {info['parameters']:,} "
            f"parameters, clean accuracy {info['clean_accuracy']:.3f} on "
            f"{info['test_images']} test images ({info['how']})"
        )
    lines += [
        "",
        "time = median wall time of `attack(model, x, y)` (numpy in and out; `FGSM run`: "
        "`attack.run(model, x, y)`, which also judges x_adv to report `fooled`); floor = "
        "median of the same number of forward+backward passes in one `tf.function` "
        "(1 for FGSM, `steps` for the others); ratio = median over rounds of attack time / "
        "mean of the floor runs just before and just after it.",
        "",
        "| model | batch | attack | time | floor | ratio | target | ok | best-round ratio "
        "| CPU-time ratio | ratio vs floor + 1 forward | robust accuracy |",
        "|---|---:|---|---:|---:|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        target = "-" if r["target"] is None else f"<= {r['target']:.2f}"
        ok = "-" if r["pass"] is None else ("yes" if r["pass"] else "**no**")
        cpu_ratio = f"{r['cpu_ratio']:.3f}" if "cpu_ratio" in r else "-"
        robust = "-" if r.get("robust_accuracy") is None else f"{r['robust_accuracy']:.3f}"
        work = (
            f"{r['ratio_vs_floor_plus_forward']:.3f}"
            if r.get("ratio_vs_floor_plus_forward") is not None
            else "-"
        )
        lines.append(
            f"| {r['model']} | {r['batch_size']} | {r['attack']} | {_fmt_seconds(r['seconds'])}"
            f" | {_fmt_seconds(r['floor_seconds'])} ({r['floor_passes']}x) | {r['ratio']:.3f}"
            f" | {target} | {ok} | {r['ratio_of_minima']:.3f} | {cpu_ratio} | {work}"
            f" | {robust} |"
        )
    lines += [
        "",
        "Best-round ratio: fastest attack run / fastest floor run. CPU-time ratio: the "
        "paired ratio on the process's CPU time (all threads) instead of wall time. Ratio vs "
        "floor + 1 forward (`run` rows only): `run` also judges its final iterate with one "
        "forward pass, to report `fooled`; this column divides by floor + that pass. Neither "
        "is used for ok. Robust accuracy: the model's accuracy on the attack's output (one "
        "more call, untimed; `FGSM` and `FGSM run` return the same x_adv).",
    ]
    if settings.get("jit_compile") != [False] or settings.get("precision") != ["float32"]:
        lines += [
            "",
            f"Variants: precision {settings.get('precision')}, jit_compile "
            f"{settings.get('jit_compile')}. A model `name (policy)` is the same architecture "
            "and weights built under that Keras mixed-precision policy; its floor is its own "
            "(logits cast to float32, as advgrad does). Rows `... +XLA` run the attack with "
            "`jit_compile=True` and are divided by the same plain floor as the plain rows, so "
            "their ratios compare directly (below 1 x the plain row's ratio: XLA is faster); "
            "rows `floor_1 +XLA` / `floor_n +XLA` time the floor compiled with XLA against "
            "the plain floor.",
        ]
    lines += ["", "Other libraries:", ""]
    for label, note in notes.items():
        lines.append(
            f"- {label}: {'installed' if note['installed'] else 'not installed'}"
            + (f" ({note['note']})" if note["note"] else "")
        )
    return "\n".join(lines) + "\n"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="10 steps, 3 repeats, 1 training epoch (unless given explicitly)",
    )
    parser.add_argument("--repeats", type=int, default=None, help="timed rounds (default 5)")
    parser.add_argument(
        "--resnet-repeats",
        type=int,
        default=None,
        help=f"timed rounds on {RESNET_NAME} (default: --repeats; one round there is minutes)",
    )
    parser.add_argument("--warmup", type=int, default=1, help="untimed calls first (default 1)")
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="steps of BIM/PGD/MI-FGSM/APGD (default 40; 10 with --quick)",
    )
    parser.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="training epochs of the residual CNN (default 4; 1 with --quick)",
    )
    parser.add_argument(
        "--batch-sizes",
        default="450",
        help="comma-separated attack batch sizes (default 450; e.g. 450,128)",
    )
    parser.add_argument(
        "--models",
        default=f"digits-cnn,{RESNET_NAME}",
        help=f"comma-separated, among digits-cnn,{RESNET_NAME}",
    )
    parser.add_argument(
        "--third-party",
        default="digits-cnn",
        help="comma-separated models on which installed CleverHans/Foolbox/ART PGD run too "
        "(default digits-cnn: on the residual CNN one of their rounds takes minutes)",
    )
    parser.add_argument(
        "--precision",
        default="float32",
        help="comma-separated Keras policies among float32,mixed_float16,mixed_bfloat16: "
        "each model is rebuilt under each with the float32 weights (default float32)",
    )
    parser.add_argument(
        "--jit-compile",
        default="no",
        help="comma-separated among no,yes: the attacks without and/or with "
        "jit_compile=True (XLA), against the same plain floor (default no)",
    )
    parser.add_argument(
        "--attacks",
        default=",".join(ATTACKS),
        help=f"comma-separated, among {','.join(ATTACKS)} (default all)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out",
        default=str(ROOT / "benchmarks" / "results"),
        help="folder for speed.json and speed.md",
    )
    args = parser.parse_args(argv)
    if args.repeats is None:
        args.repeats = 3 if args.quick else 5
    if args.resnet_repeats is None:
        args.resnet_repeats = args.repeats
    if args.steps is None:
        args.steps = 10 if args.quick else 40
    if args.epochs is None:
        args.epochs = 1 if args.quick else 4
    args.batch_sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    args.third_party = [m.strip() for m in args.third_party.split(",") if m.strip()]
    args.precision = tuple(p.strip() for p in args.precision.split(",") if p.strip())
    if not args.precision or any(p not in PRECISIONS for p in args.precision):
        parser.error(f"--precision: comma-separated among {','.join(PRECISIONS)}")
    switches = {"no": False, "yes": True}
    jit = [j.strip().lower() for j in args.jit_compile.split(",") if j.strip()]
    if not jit or any(j not in switches for j in jit):
        parser.error("--jit-compile: comma-separated among no,yes")
    args.jit_compile = tuple(dict.fromkeys(switches[j] for j in jit))
    args.attacks = [a.strip() for a in args.attacks.split(",") if a.strip()]
    unknown = [a for a in args.attacks if a not in ATTACKS]
    if unknown or not args.attacks:
        parser.error(f"--attacks: comma-separated among {','.join(ATTACKS)}; got {unknown}")
    if (
        min(args.repeats, args.resnet_repeats, args.steps) < 1
        or args.warmup < 0
        or not args.batch_sizes
    ):
        parser.error("--repeats and --steps must be >= 1, --warmup >= 0, a batch size given")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    machine = machine_info()
    settings = {
        "quick": args.quick,
        "repeats": args.repeats,
        "resnet_repeats": args.resnet_repeats,
        "warmup": args.warmup,
        "steps": args.steps,
        "epochs": args.epochs,
        "batch_sizes": args.batch_sizes,
        "eps": EPS,
        "bounds": list(BOUNDS),
        "norm": "linf",
        "loss": "ce (sparse softmax cross-entropy on logits)",
        "seed": args.seed,
        "third_party_on": args.third_party,
        "precision": list(args.precision),
        "jit_compile": list(args.jit_compile),
        "attacks": args.attacks,
        "targets": {
            "FGSM": FGSM_TARGET,
            "iterative": ITERATIVE_TARGET,
            "APGD": APGD_TARGET,
            "minimal-norm (per gradient)": MINIMAL_TARGET,
        },
    }
    notes = third_party_notes()
    models = load_models(args.models, args.epochs, args.seed, args.precision)
    rows = []
    for entry in models:
        rows += benchmark_model(entry, args, notes)
    machine["loadavg_end"] = _loadavg()

    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine,
        "settings": settings,
        "models": {m["name"]: m["info"] for m in models},
        "results": rows,
        "third_party": notes,
        "all_pass": all(r["pass"] for r in rows if r["pass"] is not None),
    }
    table = markdown(machine, settings, models, rows, notes)
    write_results(out, "speed", report, table)
    print()
    print(table)
    print(f"wrote {out / 'speed.json'} and {out / 'speed.md'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
