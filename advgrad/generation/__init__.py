"""Adversarial data as a product: sharded, resumable, verifiable, streamed back as tf.data.

`generate` attacks a data set batch by batch and writes the adversarial inputs, with their
labels, original indices, clean/adversarial correctness flags and perturbation norms, into
numbered shards of exactly `shard_size` samples (``.tfrecord`` or ``.npz``) plus a JSON
manifest (config, model and data fingerprints, versions, per-shard counts and SHA-256
checksums). Every file is written to a temporary name, fsynced and renamed; a killed run
resumed with ``resume=True`` yields exactly the bytes of an uninterrupted one. `verify`
re-checks the shards; `load_generated` streams them back as a `tf.data.Dataset`;
``generate(..., worker="i/N")`` runs one of N independent workers that share the folder;
`adversarial_dataset` attacks a dataset on the fly instead, with no files.

The parts: `shards` (the two file formats), `manifest` (the JSON manifest, fingerprints and
`verify`), `workers` (the workers' shares and the merge of their manifests), `writer`
(shard buffers and the background writer thread), `pipeline`
(`generate`), `loading` (`load_generated`, `adversarial_dataset`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from advgrad._lazy import lazy_names

if TYPE_CHECKING:
    from advgrad.generation.loading import GeneratedFields, adversarial_dataset, load_generated
    from advgrad.generation.manifest import VerifyResult, verify
    from advgrad.generation.pipeline import generate

__all__ = [
    "GeneratedFields",
    "VerifyResult",
    "adversarial_dataset",
    "generate",
    "load_generated",
    "verify",
]

__getattr__, __dir__ = lazy_names(
    __name__,
    {
        "GeneratedFields": "advgrad.generation.loading",
        "adversarial_dataset": "advgrad.generation.loading",
        "load_generated": "advgrad.generation.loading",
        "VerifyResult": "advgrad.generation.manifest",
        "verify": "advgrad.generation.manifest",
        "generate": "advgrad.generation.pipeline",
    },
)
