"""Replicas of a `tf.distribute.Strategy`: one compiled per-batch function on sub-batches.

`Replicas.of(strategy)` wraps a strategy (MirroredStrategy on several GPUs or logical CPU
devices, MultiWorkerMirroredStrategy on several machines). `Replicas.run` splits a batch
into one contiguous sub-batch per replica (global replica order = sample order, sizes
differing by at most one), runs the function on every replica inside one cached
`tf.function` (traced once per input signature, not per batch), and gathers the per-sample
outputs back in sample order, without duplicates (`strategy.gather`: under
MultiWorkerMirroredStrategy every worker gets the whole result). Each replica's function
also receives ``rows = [offset, total]``: where its sub-batch starts in the whole batch, and
the whole batch's size, so that random draws can be made for the whole batch and sliced
(the same numbers with or without replicas). A replica with no rows (a batch smaller than
the replica count) gets a copy of one row, and its output is dropped.

`multi_worker(timeout=...)` builds a MultiWorkerMirroredStrategy from ``TF_CONFIG`` after
checking, within `timeout` seconds, that every worker of the cluster answers: an address
nobody listens on is an error that names it, instead of a hang.

>>> import tensorflow as tf
>>> replicas = Replicas.of(tf.distribute.OneDeviceStrategy("/cpu:0"))
>>> double = lambda x, rows: 2 * x + 0 * tf.cast(rows[0], x.dtype)
>>> replicas.count, replicas.run(double, [tf.constant([1.0, 2.0, 3.0])]).numpy().tolist()
(1, [2.0, 4.0, 6.0])
>>> Replicas.of(None) is None
True
"""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import tensorflow as tf

from advgrad._compile import count_trace
from advgrad._validation import ArgumentError, check_number, invalid

__all__ = ["Replicas", "multi_worker", "split"]

_REPLICAS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def split(size: Any, count: int, index: Any) -> tuple[Any, Any]:
    """Rows ``[start, stop)`` of sub-batch `index` of `count` over a batch of `size`.

    >>> [split(7, 3, i) for i in range(3)]
    [(0, 2), (2, 4), (4, 7)]
    """
    return (index * size) // count, ((index + 1) * size) // count


class Replicas:
    """A strategy's replicas, running one per-batch function on contiguous sub-batches.

    Build it with `Replicas.of`; one instance per strategy (its compiled functions are kept
    as long as the strategy lives).

    Attributes:
        strategy: The `tf.distribute.Strategy`.
        count: Its replicas in sync (all workers together).
    """

    def __init__(self, strategy: tf.distribute.Strategy):
        self.strategy = strategy
        self.count = int(strategy.num_replicas_in_sync)
        self._functions: dict[Any, Callable] = {}

    @classmethod
    def of(cls, strategy: Any) -> Replicas | None:
        """The replicas of `strategy`: None for None, else a `tf.distribute.Strategy`.

        Raises:
            ArgumentError: `strategy` is neither (named ``strategy``).
        """
        if strategy is None:
            return None
        if not isinstance(strategy, tf.distribute.Strategy):
            raise invalid("strategy", "None or a tf.distribute.Strategy", strategy)
        if strategy not in _REPLICAS:
            _REPLICAS[strategy] = cls(strategy)
        return _REPLICAS[strategy]

    def run(
        self, fn: Callable, batched: Sequence[Any], shared: Sequence[Any] = (), *, key: Any = None
    ) -> Any:
        """``fn(*sub_batch, *shared, rows)`` on every replica, gathered in sample order.

        Args:
            fn: The per-batch function (a `tf.function` or plain Python traced here). It
                gets every `batched` argument's rows of its sub-batch, then `shared` as
                given, then ``rows``: an int32 ``[offset, total]`` tensor (its first row's
                place in the whole batch, the whole batch's size). Every output it returns
                must be per sample (rows along axis 0).
            batched: Arguments split along axis 0 (nests of tensors, the same number of rows).
            shared: Arguments every replica gets whole (tensors).
            key: What identifies `fn` for the cache of compiled functions (default: `fn`).

        Returns:
            `fn`'s outputs for the whole batch, in sample order.
        """
        batched = tf.nest.map_structure(tf.convert_to_tensor, list(batched))
        shared = tf.nest.map_structure(tf.convert_to_tensor, list(shared))
        size = int(tf.nest.flatten(batched)[0].shape[0])
        if size == 0:  # nothing to split: the default device
            return fn(*batched, *shared, tf.constant([0, 0], tf.int32))
        signature = (
            tf.nest.map_structure(lambda t: tf.TensorSpec([None, *t.shape[1:]], t.dtype), batched),
            tf.nest.map_structure(lambda t: tf.TensorSpec(t.shape, t.dtype), shared),
        )
        cache_key = (fn if key is None else key, _spec_key(signature))
        if cache_key not in self._functions:
            self._functions[cache_key] = self._compile(fn, signature)
        return self._functions[cache_key](batched, shared)

    def _compile(self, fn: Callable, signature: Any) -> Callable:
        strategy, count = self.strategy, self.count

        def distributed(batched, shared):
            count_trace("replicas")
            size = tf.shape(tf.nest.flatten(batched)[0])[0]

            def value(context):
                index = context.replica_id_in_sync_group
                start, stop = split(size, count, index)
                start = tf.minimum(start, size - 1)  # an empty sub-batch: a copy of one row
                stop = tf.maximum(stop, start + 1)
                part = tf.nest.map_structure(lambda t: t[start:stop], batched)
                return part, tf.stack([start, size])

            parts, rows = strategy.experimental_distribute_values_from_function(value)
            dtypes = []  # each output's dtype: it travels as a dtype the collectives take

            def replica(part, rows):
                outputs = fn(*part, *shared, rows)
                flat = [tf.convert_to_tensor(t) for t in tf.nest.flatten(outputs)]
                dtypes[:] = [t.dtype for t in flat]
                wire = [tf.cast(t, _WIRE.get(t.dtype, t.dtype)) for t in flat]
                return tf.nest.pack_sequence_as(outputs, wire)

            outputs = strategy.run(replica, args=(parts, rows))
            # Drop the copied rows of the replicas with an empty sub-batch.
            keep = []
            for index in range(count):
                start, stop = split(size, count, index)
                real = stop - start
                keep += [tf.ones([real], tf.bool), tf.zeros([tf.maximum(1 - real, 0)], tf.bool)]
            keep = tf.concat(keep, 0)
            flat = tf.nest.flatten(outputs, expand_composites=False)
            gathered = [
                tf.cast(tf.boolean_mask(strategy.gather(v, axis=0), keep), dtype)
                for v, dtype in zip(flat, dtypes, strict=True)
            ]
            return tf.nest.pack_sequence_as(outputs, gathered)

        # A partial per function: TensorFlow's retracing warning is keyed on the code object.
        return tf.function(
            functools.partial(distributed), input_signature=signature, autograph=False
        )


_WIRE = {
    tf.bool: tf.int32,
    tf.int8: tf.int32,
    tf.uint8: tf.int32,
    tf.int16: tf.int32,
    tf.uint16: tf.int32,
    tf.bfloat16: tf.float32,
}
"""What a gathered output of a dtype the collectives don't take travels as (exactly)."""


def _spec_key(signature: Any) -> Any:
    return tuple((tuple(s.shape.as_list()), s.dtype.name) for s in tf.nest.flatten(signature))


# ---------------------------------------------------------------- multi-worker
def multi_worker(
    timeout: float = 60.0, communication: Any = None
) -> tf.distribute.MultiWorkerMirroredStrategy:
    """A MultiWorkerMirroredStrategy from ``TF_CONFIG``, once every worker answers.

    Every worker calls it with the same cluster in its ``TF_CONFIG`` (its own ``task``):
    first the workers meet over plain TCP on their own addresses (each listens on its
    address and connects to every other), then each builds the strategy. TensorFlow's own
    start waits for absent workers without end; here a worker that does not come within
    `timeout` seconds is an error naming its address. Call it before anything else uses
    TensorFlow (the strategy configures the runtime).

    Args:
        timeout: Seconds to wait for the other workers (a number > 0).
        communication: Optional `tf.distribute.experimental.CommunicationOptions`.

    Raises:
        ArgumentError: ``TF_CONFIG`` is missing or malformed, or a worker did not answer
            within `timeout` (named ``TF_CONFIG``, with the addresses).
    """
    timeout = check_number("timeout", timeout, low=0.0, low_open=True)
    addresses, me = _cluster()
    _rendezvous(addresses, me, timeout)
    options = communication or tf.distribute.experimental.CommunicationOptions()
    return tf.distribute.MultiWorkerMirroredStrategy(communication_options=options)


def _cluster() -> tuple[list[str], int]:
    """The addresses of the cluster's chief and workers (in TensorFlow's task order) and
    the index of this task among them, from ``TF_CONFIG``."""
    raw = os.environ.get("TF_CONFIG")
    expected = (
        'a JSON object {"cluster": {"worker": ["host:port", ...]}, "task": {"type": '
        '"worker", "index": i}} in the environment variable TF_CONFIG'
    )
    try:
        config = json.loads(raw) if raw else None
        cluster, task = config["cluster"], config["task"]
        addresses = [*cluster.get("chief", []), *cluster.get("worker", [])]
        kind, index = task["type"], int(task["index"])
        me = index if kind == "chief" else len(cluster.get("chief", [])) + index
        if kind not in ("chief", "worker") or not 0 <= me < len(addresses):
            raise ValueError(kind)
        for address in addresses:
            host, port = address.rsplit(":", 1)
            int(port)
    except (TypeError, KeyError, ValueError, AttributeError):
        raise invalid("TF_CONFIG", expected, raw) from None
    return addresses, me


def _host_port(address: str) -> tuple[str, int]:
    host, port = address.rsplit(":", 1)
    return host.strip("[]"), int(port)


def _rendezvous(addresses: list[str], me: int, timeout: float) -> None:
    """Listen on this worker's address until every other worker connected to it, and
    connect to every other worker; an error naming the missing ones after `timeout`."""
    others = {i: a for i, a in enumerate(addresses) if i != me}
    if not others:
        return
    deadline = time.monotonic() + timeout
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(("", _host_port(addresses[me])[1]))
    except OSError as error:
        listener.close()
        reason = f"this worker's address {addresses[me]} cannot be listened on ({error})"
        raise ArgumentError("TF_CONFIG", reason, expected="a free port") from None
    listener.listen(len(addresses))
    listener.settimeout(0.1)
    reached: set[int] = set()  # the workers this one connected to
    heard: set[int] = set()  # the workers that connected to this one
    stop = threading.Event()

    def listen() -> None:  # beside the connecting loop: two workers never wait on each other
        while not stop.is_set():
            try:
                connection, _ = listener.accept()
            except (TimeoutError, BlockingIOError):
                continue
            except OSError:
                return
            with connection:
                connection.settimeout(1.0)
                try:
                    data = connection.recv(16)
                    connection.recv(1)  # the peer closes first (no TIME_WAIT on this port)
                except OSError:
                    continue
            if data.isdigit() and int(data) in others:
                heard.add(int(data))

    thread = threading.Thread(target=listen, daemon=True)
    thread.start()
    try:
        while (len(reached) < len(others) or len(heard) < len(others)) and (
            time.monotonic() < deadline
        ):
            for i, address in others.items():
                if i not in reached and _say(address, me):
                    reached.add(i)
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join()
        listener.close()
    missing = sorted(set(others) - (reached & heard))
    if missing:
        names = ", ".join(others[i] for i in missing)
        reason = (
            f"expected every worker of the cluster to answer within {timeout:g} s; "
            f"worker(s) {names} did not (this worker: {addresses[me]}). Start every worker "
            "with the same cluster in its TF_CONFIG and its own task index, or fix the "
            f"addresses; TF_CONFIG={os.environ.get('TF_CONFIG')}"
        )
        raise ArgumentError("TF_CONFIG", reason, expected="every worker answering")


def _say(address: str, me: int) -> bool:
    """Connect to `address` and tell it this worker's index; False if nobody listens."""
    try:
        with socket.create_connection(_host_port(address), timeout=0.5) as connection:
            connection.sendall(str(me).encode())
            connection.shutdown(socket.SHUT_WR)
            connection.settimeout(1.0)
            connection.recv(1)  # until the listener read it and closed
        return True
    except OSError:
        return False
