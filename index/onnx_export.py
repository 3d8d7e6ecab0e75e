"""Export a sentence-transformers model to an int8 ONNX file, once, into a cache folder.

The source is a mean-pooled BERT-style sentence-transformers folder (the bundled
all-MiniLM-L6-v2 by default); it is only read, never written. The result is a
folder ``<cache_root>/onnx-int8-<key>/`` holding the quantized model, the
tokenizer and ``export.json``. The key hashes the source files, the recipe and
the exporter versions, so changed weights or a new torch re-export, and an
unchanged model is reused by every later start.

Why this recipe (measured on SciFact texts against torch fp32, see
``benchmarks/embedding.py``): dynamic int8 with one scale per tensor gave a mean
cosine of only 0.94; one scale per output channel gave 0.994 (min 0.989), and
keeping the first layer's feed-forward output in fp32 lifted the minimum over
0.99. Embedding tables stay fp32: quantizing their Gather lowered the minimum
(0.989 -> 0.987) and saves no compute, only 35 MB of file. The quantizer needs no calibration data, so the export is a
pure function of the weights: byte-identical when repeated.

Weights use 7 of their 8 bits (``reduce_range``). On a CPU without VNNI (AVX2 only, as
on AMD EPYC machines this project runs on), onnxruntime multiplies uint8 activations by
int8 weights with an instruction whose 16-bit sums saturate, and the same model embedded
worse there than where it was measured: over 200 SciFact texts the minimum cosine to fp32
was 0.982 (mean 0.993), and the sample texts' 0.98996. With 7-bit weights the sums cannot
saturate, so every CPU computes the same: 0.991 (mean 0.995) and 0.993 on that machine.

Two processes starting together cannot corrupt the cache: the export is
serialised by a lock file, written into a temporary folder and renamed into
place, and a folder whose model does not match its recorded checksum is set
aside and exported again.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import importlib.metadata
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from index.embedding import weights_digest
from index.onnx_embedding import MODEL_FILE, TOKENIZER_FILE, ExportedModel, load_tokenizer, mean_pool, open_session

log = logging.getLogger(__name__)

# Bump when the export or quantization below changes in a way that changes vectors:
# it is part of the fingerprint an index records (index/embedding_stamp.py).
RECIPE = "int8-r2"  # r2: 7-bit weights (reduce_range), so no CPU saturates
MANIFEST_FILE = "export.json"
OPSET = 17
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
OUTPUT_NAME = "last_hidden_state"
# MatMuls left in fp32: of the twelve feed-forward MatMuls, each kept in fp32 in turn, the first layer's output
# projection helped most (minimum cosine to fp32 over 200 SciFact texts 0.989 -> 0.992), for ~1/18 of the MACs.
KEEP_FP32 = ("/model/encoder/layer.0/output/dense/MatMul",)
# A freshly exported model must embed these within this cosine of the source model, or it is refused: a
# guard against a broken recipe (one scale per tensor scores 0.96-0.97 here, the recipe 0.99+). Texts of one
# or two tokens ("ok") drift most, to ~0.97, so the check uses phrases and sentences.
SELF_CHECK_FLOOR = 0.98
SELF_CHECK_TEXTS = (
    "Where do I submit travel expenses?",
    "The quarterly revenue forecast was revised after the warehouse robots' battery recall.",
    "Vitamin D supplementation reduced the incidence of respiratory infections in a randomized trial of "
    "elderly patients, although the effect was smaller in those with normal baseline levels.",
    "password reset",
)
_VERSIONED = ("torch", "transformers", "onnx", "onnxruntime", "tokenizers")


def onnx_int8_fingerprint(source_digest: str) -> str:
    """What an index records for vectors made by this recipe from these weights."""
    return f"onnx-{RECIPE}/{source_digest[:16]}"


def ensure_int8_model(*, source: Path, cache_root: Path) -> ExportedModel:
    """The cached int8 export of ``source``, exporting it first when missing or stale."""
    digest = weights_digest(source)
    key = _cache_key(digest)
    final = cache_root / f"onnx-int8-{key}"
    cached = _load_verified(final, key)
    if cached is not None:
        return cached
    cache_root.mkdir(parents=True, exist_ok=True)
    with _exclusive(cache_root / ".export.lock"):
        cached = _load_verified(final, key)  # another process may have finished while we waited
        if cached is not None:
            return cached
        if final.exists():
            _set_aside(final)
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=cache_root))
        try:
            started = time.perf_counter()
            _export(source=source, target=staging, key=key, digest=digest)
            os.rename(staging, final)
            log.info("exported the int8 ONNX embedding model to %s in %.1f s", final, time.perf_counter() - started)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    loaded = _load_verified(final, key)
    if loaded is None:  # pragma: no cover - only if the folder is changed under us
        raise RuntimeError(f"the exported model at {final} could not be read back")
    return loaded


def _cache_key(digest: str) -> str:
    versions = {name: importlib.metadata.version(name) for name in _VERSIONED}
    material = json.dumps({"source": digest, "recipe": RECIPE, "opset": OPSET, "versions": versions}, sort_keys=True)
    return hashlib.sha256(material.encode()).hexdigest()[:16]


def _load_verified(folder: Path, key: str) -> ExportedModel | None:
    """The export in ``folder`` when it is complete and intact, else None."""
    try:
        manifest = json.loads((folder / MANIFEST_FILE).read_text(encoding="utf-8"))
        intact = manifest.get("key") == key and _sha256(folder / MODEL_FILE) == manifest.get("model_sha256")
    except (OSError, ValueError):
        return None
    if not intact:
        return None
    return ExportedModel(
        folder=folder,
        fingerprint=str(manifest["fingerprint"]),
        max_seq_length=int(manifest["max_seq_length"]),
    )


def _set_aside(folder: Path) -> None:
    # A damaged export is renamed, not deleted: another process may still have its files open.
    aside = folder.with_name(f".damaged-{folder.name}-{os.getpid()}-{time.time_ns()}")
    log.warning("the cached model at %s is incomplete or damaged; moved to %s and exporting again", folder, aside)
    os.rename(folder, aside)


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    with open(lock_path, "a+b") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _export(*, source: Path, target: Path, key: str, digest: str) -> None:
    """Writes the int8 model, tokenizer and manifest into ``target`` (a fresh folder)."""
    max_seq_length = _check_pooling(source)
    shutil.copyfile(source / TOKENIZER_FILE, target / TOKENIZER_FILE)

    from onnxruntime.quantization import QuantType, quantize_dynamic

    fp32_file = target / "model_fp32.onnx"
    encoder = _load_encoder(source)
    tokenizer = load_tokenizer(target / TOKENIZER_FILE, max_seq_length=max_seq_length)
    _export_fp32(encoder, fp32_file, tokenizer)
    _require_nodes(fp32_file, KEEP_FP32)
    quantize_dynamic(
        fp32_file,
        target / MODEL_FILE,
        weight_type=QuantType.QInt8,
        per_channel=True,
        reduce_range=True,
        op_types_to_quantize=["MatMul"],
        nodes_to_exclude=list(KEEP_FP32),
    )
    fp32_file.unlink()
    _self_check(encoder, target / MODEL_FILE, tokenizer)
    manifest = {
        "key": key,
        "fingerprint": onnx_int8_fingerprint(digest),
        "source": str(source),
        "source_sha256": digest,
        "recipe": RECIPE,
        "opset": OPSET,
        "versions": {name: importlib.metadata.version(name) for name in _VERSIONED},
        "max_seq_length": max_seq_length,
        "model_sha256": _sha256(target / MODEL_FILE),
    }
    (target / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2, sort_keys=True), encoding="utf-8")
    for path in (target / MODEL_FILE, target / TOKENIZER_FILE, target / MANIFEST_FILE):
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())  # the rename that publishes the folder must not outrun its contents


def _read_json(path: Path, *, default: dict[str, Any]) -> dict[str, Any]:
    if not path.exists():
        return default
    value = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(value, dict):
        raise ValueError(f"{path} is not a JSON object")
    return value


def _check_pooling(source: Path) -> int:
    """The model's maximum sequence length, after checking it is Transformer + mean pooling (+ normalize).

    The runtime re-implements pooling in numpy; any other pipeline would silently embed differently.
    """
    modules = json.loads((source / "modules.json").read_text(encoding="utf-8"))
    kinds = [str(module["type"]).rsplit(".", 1)[-1] for module in modules]
    if kinds[:2] != ["Transformer", "Pooling"] or any(kind != "Normalize" for kind in kinds[2:]):
        raise ValueError(f"{source}: only Transformer + mean Pooling (+ Normalize) models can be exported, not {kinds}")
    pooling = json.loads((source / modules[1]["path"] / "config.json").read_text(encoding="utf-8"))
    modes = {name for name, enabled in pooling.items() if name.startswith("pooling_mode_") and enabled}
    if modes != {"pooling_mode_mean_tokens"}:
        raise ValueError(f"{source}: only mean pooling can be exported, not {sorted(modes)}")
    config = _read_json(source / "sentence_bert_config.json", default={})
    return int(config.get("max_seq_length", 256))


def _load_encoder(source: Path) -> Any:
    import torch
    from transformers import AutoModel

    class Encoder(torch.nn.Module):
        """The transformer with positional inputs and one output: what the ONNX graph holds."""

        def __init__(self, model: Any) -> None:
            super().__init__()
            self.model = model

        def forward(self, input_ids: Any, attention_mask: Any, token_type_ids: Any) -> Any:
            outputs = self.model(input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids)
            return outputs.last_hidden_state

    # Eager attention traces to plain MatMul/Softmax with dynamic shapes; the SDPA path bakes in shape checks.
    model = AutoModel.from_pretrained(str(source), attn_implementation="eager")
    encoder = Encoder(model)
    encoder.eval()
    return encoder


def _export_fp32(encoder: Any, path: Path, tokenizer: Any) -> None:
    import torch

    # Traced on a padded batch of two, so no shape of the sample is taken for a constant of the graph.
    longest = max(len(tokenizer.encode(text).ids) for text in SELF_CHECK_TEXTS[:2])
    batch = [tokenizer.encode(text).ids for text in SELF_CHECK_TEXTS[:2]]
    ids = torch.tensor([row + [0] * (longest - len(row)) for row in batch])
    mask = torch.tensor([[1] * len(row) + [0] * (longest - len(row)) for row in batch])
    inputs = (ids, mask, torch.zeros_like(ids))
    axes = {name: {0: "batch", 1: "sequence"} for name in (*INPUT_NAMES, OUTPUT_NAME)}
    with torch.no_grad(), warnings.catch_warnings():
        # The TorchScript exporter (dynamo=False) warns that it is deprecated, and the tracer warns about
        # Python branches on shapes in transformers' mask helpers: both are benign here (the outputs are
        # checked against torch below) and the dynamo exporter would need onnxscript as a further dependency.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            encoder,
            inputs,
            str(path),
            input_names=list(INPUT_NAMES),
            output_names=[OUTPUT_NAME],
            dynamic_axes=axes,
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )


def _require_nodes(path: Path, names: tuple[str, ...]) -> None:
    """Refuses a graph that lacks a node the recipe names: a renamed node would silently be quantized."""
    import onnx

    present = {node.name for node in onnx.load(str(path), load_external_data=False).graph.node}
    missing = [name for name in names if name not in present]
    if missing:
        raise ValueError(f"the exported graph has no node {missing}: the quantization recipe needs updating")


def _self_check(encoder: Any, model_file: Path, tokenizer: Any) -> None:
    """Each check text, alone as the runtime feeds it, through torch fp32 and through the int8 file."""
    import numpy as np
    import torch

    session = open_session(model_file, threads=1)
    for text in SELF_CHECK_TEXTS:
        ids = np.array([tokenizer.encode(text).ids], dtype=np.int64)
        mask, types = np.ones_like(ids), np.zeros_like(ids)
        with torch.no_grad():
            hidden = encoder(torch.from_numpy(ids), torch.from_numpy(mask), torch.from_numpy(types)).numpy()
        reference = mean_pool(hidden, mask)[0]
        feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
        cosine = float(reference @ mean_pool(session.run(None, feeds)[0], mask)[0])
        if cosine < SELF_CHECK_FLOOR:
            raise ValueError(f"the int8 export embeds {text!r} too differently from the source model ({cosine:.3f})")
