"""The TensorFlow side of a config's ``distribute:`` section: the strategy it asks for.

`make_strategy` is what the bench (and the generation and training) commands call with a
`advgrad.schema.distribute.DistributeConfig`: None for ``strategy: none``, a
MirroredStrategy (over ``devices``, or over ``cpu_devices`` logical CPUs, split first), or a
MultiWorkerMirroredStrategy from ``TF_CONFIG`` (`advgrad.replicas.multi_worker`: a worker
that does not answer within ``timeout`` is an error naming it). A device in ``devices`` that
the machine does not have is refused, by its index, before any work (`check_devices`):
TensorFlow alone would place its replica on another device.

>>> from advgrad.schema.distribute import DistributeConfig
>>> make_strategy(DistributeConfig()) is None
True
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advgrad._validation import ArgumentError
from advgrad.schema.distribute import DistributeConfig
from advgrad.schema.problems import ConfigError

__all__ = ["check_devices", "make_strategy", "split_cpu"]


def split_cpu(count: int) -> list[str]:
    """Split the CPU into `count` logical devices (once, before TensorFlow starts); their
    names.

    Raises:
        ArgumentError: TensorFlow has already started with another split (named
            ``cpu_devices``).
    """
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    current = tf.config.get_logical_device_configuration(cpu)
    if current is None or len(current) != count:
        try:
            tf.config.set_logical_device_configuration(
                cpu, [tf.config.LogicalDeviceConfiguration()] * count
            )
        except RuntimeError:
            have = len(tf.config.list_logical_devices("CPU"))
            reason = (
                f"expected to split the CPU into {count} logical devices before TensorFlow "
                f"starts, but it has already started with {have}: split it first (the bench "
                "command does), or run in a fresh process."
            )
            expected = "TensorFlow not yet started"
            raise ArgumentError("cpu_devices", reason, expected=expected) from None
    return [f"/cpu:{i}" for i in range(count)]


def check_devices(devices: Sequence[str], source: Any = None) -> list[str]:
    """`devices` as given, each one a device of this machine (``/gpu:0``, ``CPU:1``,
    ``/device:GPU:0``...); it lists TensorFlow's devices, so it starts the runtime.

    Raises:
        ConfigError: A name that is not a device name, or a device that this machine does
            not have, at ``distribute.devices[i]``.
    """
    import tensorflow as tf

    have = {}
    for device in tf.config.list_logical_devices():
        spec = tf.DeviceSpec.from_string(device.name)
        have[(spec.device_type, spec.device_index)] = f"/{spec.device_type}:{spec.device_index}"
    problems: list[str] = []
    seen: dict[tuple, str] = {}
    for index, name in enumerate(devices):
        path = f"distribute.devices[{index}]"
        try:
            spec = tf.DeviceSpec.from_string(name)
        except ValueError:
            spec = None
        if spec is None or spec.device_type is None:
            problems.append(f"{path}: {name!r} is not a device name (such as /gpu:0)")
            continue
        key = (spec.device_type.upper(), 0 if spec.device_index is None else spec.device_index)
        if key not in have or spec.job not in (None, "localhost"):
            names = ", ".join(sorted(have.values(), key=_device_order)[:16]).lower()
            problems.append(f"{path}: no device {name!r} on this machine (it has {names})")
        elif key in seen:
            problems.append(f"{path}: {name!r} is {seen[key]!r} again: give each device once")
        seen.setdefault(key, name)
    if problems:
        raise ConfigError(problems, source)
    return list(devices)


def _device_order(name: str) -> tuple[str, int]:
    kind, index = name.rsplit(":", 1)
    return kind, int(index)


def make_strategy(section: DistributeConfig | None, source: Any = None) -> Any:
    """The `tf.distribute.Strategy` a ``distribute:`` section asks for, or None.

    Call it before anything else runs TensorFlow ops: the CPU split and the multi-worker
    runtime must come first.

    Args:
        section: The parsed section (None: no strategy).
        source: The config file, for the error.

    Raises:
        ConfigError: ``distribute.cpu_devices`` after TensorFlow started, a device name
            that is bad or not on this machine (``distribute.devices[i]``), a bad or
            unanswered ``TF_CONFIG`` (``distribute.strategy``).
    """
    if section is None or section.strategy == "none":
        return None
    import tensorflow as tf

    try:
        if section.strategy == "multi-worker":
            from advgrad.replicas import multi_worker

            return multi_worker(timeout=section.timeout)
        devices = None
        if section.devices is not None:
            devices = check_devices(section.devices, source)
        if section.cpu_devices is not None:
            devices = split_cpu(section.cpu_devices)
        return tf.distribute.MirroredStrategy(devices)
    except ConfigError:
        raise
    except ArgumentError as error:
        path = "cpu_devices" if error.argument == "cpu_devices" else "strategy"
        raise ConfigError([f"distribute.{path}: {error.reason}"], source) from None
    except (ValueError, RuntimeError) as error:  # TensorFlow: an unknown device
        message = " ".join(str(error).split())
        raise ConfigError([f"distribute.devices: {message}"], source) from None
