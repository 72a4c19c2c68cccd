"""The ``distribute:`` section of a config: which `tf.distribute` strategy runs the attacks
(pure parsing, no TensorFlow; `advgrad.config.distribute_build.make_strategy` builds it).

```yaml
distribute:
  strategy: mirrored     # none (default) | mirrored | multi-worker
  cpu_devices: 2         # mirrored: split the CPU into N logical devices (or `devices`)
  devices: [/gpu:0, /gpu:1]   # mirrored: these devices (default: every GPU, else the CPU)
  timeout: 60            # multi-worker: seconds to wait for the workers of TF_CONFIG
```

``cpu_devices`` is at most one logical device per CPU this process may use (`usable_cpus`;
2 on a one-CPU machine): more only share the same cores, and each replica holds a copy of
every compiled graph. ``devices`` must exist on the machine: `make_strategy` checks them.

>>> from advgrad.schema.problems import Problems
>>> parse_distribute({"strategy": "mirrored", "cpu_devices": 2}, Problems())
DistributeConfig(strategy='mirrored', devices=None, cpu_devices=2, timeout=60.0)
>>> parse_distribute(None, Problems()).strategy
'none'
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any

from advgrad._validation import check_int, check_number
from advgrad.schema.problems import Problems, check_keys

__all__ = ["STRATEGIES", "DistributeConfig", "parse_distribute", "usable_cpus"]

STRATEGIES = ("none", "mirrored", "multi-worker")
_KEYS = ("strategy", "devices", "cpu_devices", "timeout")


@dataclasses.dataclass(frozen=True)
class DistributeConfig:
    """A validated ``distribute:`` section.

    Attributes:
        strategy: ``"none"`` (the default device), ``"mirrored"`` (MirroredStrategy) or
            ``"multi-worker"`` (MultiWorkerMirroredStrategy from ``TF_CONFIG``).
        devices: The mirrored strategy's devices, or None (TensorFlow's choice, or the
            `cpu_devices` logical CPUs).
        cpu_devices: Split the CPU into this many logical devices (before TensorFlow
            starts) and mirror over them, at most `usable_cpus` (or 2); None: no split.
        timeout: Seconds a multi-worker run waits for the other workers.
    """

    strategy: str = "none"
    devices: tuple[str, ...] | None = None
    cpu_devices: int | None = None
    timeout: float = 60.0


def usable_cpus() -> int:
    """The CPUs this process may run on (its affinity where the system tells, else all)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def parse_distribute(value: Any, problems: Problems, path: str = "distribute") -> DistributeConfig:
    """Validate a ``distribute:`` mapping (None: no strategy); problems by YAML path."""
    if value is None:
        return DistributeConfig()
    if not isinstance(value, dict):
        problems.expected(path, "a mapping with strategy, devices, cpu_devices, timeout", value)
        return DistributeConfig()
    check_keys(value, _KEYS, path, problems)
    strategy = value.get("strategy", "none")
    if strategy not in STRATEGIES:
        problems.expected(f"{path}.strategy", f"one of {list(STRATEGIES)}", strategy, STRATEGIES)
        strategy = "none"
    devices = value.get("devices")
    if devices is not None:
        if not (
            isinstance(devices, list)
            and devices
            and all(isinstance(d, str) and d.strip() for d in devices)
        ):
            problems.expected(f"{path}.devices", "a non-empty list of device names", devices)
            devices = None
        else:
            devices = tuple(devices)
    cpu_devices = value.get("cpu_devices")
    if cpu_devices is not None:
        most = max(2, usable_cpus())
        cpu_devices = problems.check(
            f"{path}.cpu_devices",
            cpu_devices,
            lambda p, v: check_int(p, v, low=1, high=most + 1),
            expected=f"an int from 1 to {most} (one logical device per CPU this process may use)",
        )
    timeout = problems.check(
        f"{path}.timeout",
        value.get("timeout", 60.0),
        lambda p, v: check_number(p, v, low=0.0, low_open=True),
    )
    local = devices is not None or cpu_devices is not None
    if local and strategy != "mirrored":
        problems.add(path, "devices and cpu_devices need strategy: mirrored")
    if devices is not None and cpu_devices is not None:
        problems.add(path, "give devices or cpu_devices, not both")
    return DistributeConfig(
        strategy=strategy,
        devices=devices,
        cpu_devices=cpu_devices,
        timeout=60.0 if timeout is None else float(timeout),
    )
