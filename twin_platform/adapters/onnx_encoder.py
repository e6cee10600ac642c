"""ONNX Runtime encoder for the sentence-transformers embedding model: the same vectors as SentenceEmbedder, cheaper.

The RAG API embeds one short query per request. On a CPU core, sentence-transformers on torch spends most of that
time in framework overhead, and the API process pays torch's import and memory. This encoder runs the same
model (same weights, same tokenizer, same truncation, mean pooling over the attention mask and L2 normalisation
inside the graph) on ONNX Runtime, optionally with int8 dynamically quantized weights.

The ONNX graph is exported once, at first use, into a cache folder the caller owns (the platform's data dir):
``<cache_dir>/<model-name>-<fingerprint>/model.onnx`` (and ``model.int8.onnx``), each with a ``.json`` sidecar
that records the source model's fingerprint and the file's sha256. Export needs torch and transformers; loading a
cached graph needs neither. Files are written under a temporary name and renamed, and exports are serialised with a
lock file, so processes that start together neither read a half-written graph nor export twice. A sidecar that does
not match (changed model, truncated or corrupt file) makes the graph export again instead of failing.

Whether the int8 graph may serve queries is a measured decision: see ``twin_platform.benchmarks.encoders``.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import re
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from twin_platform.adapters.embedding import DEFAULT_MODEL, resolve_model_path

if TYPE_CHECKING:
    import onnxruntime  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

# Bump when the export or quantization steps change, so caches made by older code are not reused.
EXPORT_RECIPE = 1
OPSET = 17
FP32_FILE = "model.onnx"
INT8_FILE = "model.int8.onnx"
# The files that decide what the exported graph computes; README, .gitattributes and training data do not.
_FINGERPRINT_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
    "modules.json",
    "sentence_bert_config.json",
    "1_Pooling/config.json",
)
# Sentences the export checks the graph against torch with, before it is published.
_PROBES = (
    "How do I build an evaluation set before touching the prompt?",
    "Retrieval returned the right document for about half of the questions.",
    "a",
)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def model_fingerprint(model_dir: Path) -> str:
    """A content hash of the files that define the model (weights, config, tokenizer, pooling) and the recipe."""
    digest = hashlib.sha256(f"recipe={EXPORT_RECIPE};opset={OPSET}".encode())
    for name in _FINGERPRINT_FILES:
        path = model_dir / name
        if path.is_file():
            digest.update(f"\0{name}\0{path.stat().st_size}\0".encode())
            digest.update(_sha256(path).encode())
    return digest.hexdigest()


@dataclass(frozen=True)
class ModelLayout:
    """What the encoder needs to know about a sentence-transformers folder, checked before anything is exported."""

    max_seq_length: int
    do_lower_case: bool
    dimension: int

    @classmethod
    def read(cls, model_dir: Path) -> ModelLayout:
        modules = json.loads((model_dir / "modules.json").read_text())
        kinds = [m["type"].rsplit(".", 1)[-1] for m in modules]
        pooling_dir = next((m["path"] for m in modules if m["type"].endswith("Pooling")), "1_Pooling")
        pooling = json.loads((model_dir / pooling_dir / "config.json").read_text())
        # The graph hard-codes mean pooling and normalisation: refuse a model whose pipeline is anything else
        # rather than silently computing different vectors.
        if kinds != ["Transformer", "Pooling", "Normalize"] or not pooling.get("pooling_mode_mean_tokens"):
            raise ValueError(f"{model_dir}: only Transformer -> mean Pooling -> Normalize models are supported")
        if any(pooling.get(k) for k in pooling if k.startswith("pooling_mode_") and k != "pooling_mode_mean_tokens"):
            raise ValueError(f"{model_dir}: only mean pooling is supported, got {pooling}")
        st_config = json.loads((model_dir / "sentence_bert_config.json").read_text())
        config = json.loads((model_dir / "config.json").read_text())
        max_len = int(st_config.get("max_seq_length") or config.get("max_position_embeddings", 512))
        max_len = min(max_len, int(config.get("max_position_embeddings", max_len)))
        return cls(
            max_seq_length=max_len,
            do_lower_case=bool(st_config.get("do_lower_case", False)),
            dimension=int(pooling["word_embedding_dimension"]),
        )


def _cache_folder(cache_dir: Path, model_id: str, fingerprint: str) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", model_id.rstrip("/").rsplit("/", 1)[-1]) or "model"
    return cache_dir / f"{name}-{fingerprint[:16]}"


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """One exporter per cache folder across processes; the lock is released when the process dies, too."""
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def _publish(tmp: Path, final: Path) -> None:
    """Make ``tmp`` visible as ``final`` in one step (same folder, so ``os.replace`` is atomic)."""
    with tmp.open("rb") as handle:
        os.fsync(handle.fileno())
    tmp.chmod(0o644)  # mkstemp makes 0600; API workers may run as another user than the one that exported
    os.replace(tmp, final)


def _temp_path(folder: Path, name: str) -> Path:
    fd, path = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=folder)
    os.close(fd)
    return Path(path)


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _valid(path: Path, fingerprint: str) -> bool:
    """Whether ``path`` is a complete graph made from this model by this recipe (sidecar matches size and hash)."""
    try:
        meta = json.loads(_sidecar(path).read_text())
        if meta.get("fingerprint") != fingerprint or meta.get("recipe") != EXPORT_RECIPE:
            return False
        # Size first: it catches a truncated file without reading it; the hash catches the rest.
        return bool(path.stat().st_size == meta["bytes"] and _sha256(path) == meta["sha256"])
    except (OSError, ValueError, KeyError, TypeError):
        return False


def _write_sidecar(path: Path, fingerprint: str, seconds: float, extra: dict[str, Any]) -> None:
    meta = {
        "fingerprint": fingerprint,
        "recipe": EXPORT_RECIPE,
        "bytes": path.stat().st_size,
        "sha256": _sha256(path),
        "seconds": round(seconds, 3),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **extra,
    }
    tmp = _temp_path(path.parent, _sidecar(path).name)
    tmp.write_text(json.dumps(meta, indent=2))
    _publish(tmp, _sidecar(path))


def export_fp32(model_dir: Path, target: Path) -> dict[str, Any]:
    """Export the model with pooling and normalisation into one ONNX graph at ``target``; returns export facts.

    Uses torch's TorchScript-based exporter (``dynamo=False``): it works offline without onnxscript, and its
    graph of the eager attention is one ONNX Runtime fuses well (the SDPA variant ran about 3x slower there).
    The graph is checked against torch on a few probe sentences; a mismatch raises, so the caller never publishes it.
    """
    import warnings

    import torch
    from transformers import AutoModel

    class Pooled(torch.nn.Module):
        """The sentence-transformers pipeline: token embeddings -> masked mean -> L2 normalise."""

        def __init__(self, encoder: torch.nn.Module) -> None:
            super().__init__()
            self.encoder = encoder

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            # The tokenizer gives single-segment input all-zero token type ids; computing them here keeps the graph's
            # inputs to the two that matter.
            tokens = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=torch.zeros_like(input_ids)
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
            pooled = (tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # as sentence-transformers' Pooling
            return torch.nn.functional.normalize(pooled, p=2.0, dim=1)

    layout = ModelLayout.read(model_dir)
    encoder = AutoModel.from_pretrained(str(model_dir), attn_implementation="eager").eval()
    module = Pooled(encoder).eval()
    tokenizer = _tokenizer(model_dir, layout.max_seq_length, pad=True)
    probes = tokenizer.encode_batch(list(_PROBES))
    ids = torch.tensor([e.ids for e in probes], dtype=torch.int64)
    mask = torch.tensor([e.attention_mask for e in probes], dtype=torch.int64)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy exporter announces its own deprecation and tracer notes
        reference = module(ids, mask).numpy()
        torch.onnx.export(
            module,
            (ids, mask),
            str(target),
            input_names=["input_ids", "attention_mask"],
            output_names=["sentence_embedding"],
            dynamic_axes={
                "input_ids": {0: "batch", 1: "sequence"},
                "attention_mask": {0: "batch", 1: "sequence"},
                "sentence_embedding": {0: "batch"},
            },
            opset_version=OPSET,
            dynamo=False,
        )
    session = _session(target, threads=1)
    got = session.run(None, {"input_ids": ids.numpy(), "attention_mask": mask.numpy()})[0]
    worst = float(np.min(np.sum(got * reference, axis=1)))
    if worst < 0.9999:
        raise RuntimeError(f"the exported graph disagrees with torch (cosine {worst:.6f}); not publishing it")
    return {
        "exporter": "torch.onnx.export(dynamo=False)",
        "torch": torch.__version__,
        "opset": OPSET,
        "probe_min_cosine": round(worst, 7),
    }


def quantize_int8(source: Path, target: Path) -> dict[str, Any]:
    """Dynamic int8 quantization of the fp32 graph: weights int8 per output channel, activations per call.

    Per-channel scales roughly halve the error of per-tensor ones on this model (mean query cosine to torch 0.992
    against 0.960); restricting it to the MatMuls (fp32 embedding table) gained nothing measurable and kept the
    file 2.6x larger. Attention score products (MatMuls without constant weights) stay fp32, ONNX Runtime's
    default. Caveat: activation ranges are taken over the whole batch, so an int8 vector depends slightly on
    what it was batched with. Whether int8 ranks chunks well enough is measured in ``benchmarks.encoders``.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic  # type: ignore[import-untyped]

    root = logging.getLogger()
    root.addFilter(_quiet_quantizer)
    try:
        quantize_dynamic(str(source), str(target), weight_type=QuantType.QInt8, per_channel=True)
    finally:
        root.removeFilter(_quiet_quantizer)
    return {"quantization": "dynamic int8", "weight_type": "QInt8", "per_channel": True}


def _quiet_quantizer(record: logging.LogRecord) -> bool:
    """The quantizer logs on the root logger: per-tensor notes, and advice to pre-process that does not apply here
    (its symbolic shape inference fails on this graph; measured without it). Errors still pass."""
    return record.levelno >= logging.ERROR or "onnxruntime" not in record.pathname


def _tokenizer(model_dir: Path, max_length: int, *, pad: bool) -> Any:
    """The model's fast tokenizer, configured as sentence-transformers calls it (truncate, pad to longest)."""
    from tokenizers import Tokenizer

    tokenizer = Tokenizer.from_file(str(model_dir / "tokenizer.json"))
    # tokenizer.json ships its own truncation (128) and fixed padding; sentence-transformers overrides both.
    if pad:
        tokenizer.enable_truncation(max_length=max_length)
        # Padded positions are masked out of attention and pooling, so the pad id cannot change a vector.
        tokenizer.enable_padding(pad_id=tokenizer.token_to_id("[PAD]") or 0)
    else:
        tokenizer.no_truncation()
        tokenizer.no_padding()
    return tokenizer


def _session(path: Path, threads: int) -> onnxruntime.InferenceSession:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    # One request at a time per session: inter-op parallelism only adds threads that compete for the same core.
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


class OnnxEmbedder:
    """Implements :class:`twin_platform.domain.features.Embedder` with ONNX Runtime; vectors match SentenceEmbedder.

    ``cache_dir`` holds exported graphs (e.g. ``<data_dir>/models/onnx``). ``intra_op_num_threads=1`` suits one API
    process per core. ``quantized`` selects the int8 graph. ``model_id`` is the torch embedder's: it is the same
    model, and stored chunks are filtered on it.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        cache_dir: Path,
        quantized: bool = False,
        intra_op_num_threads: int = 1,
        batch_size: int = 32,
    ) -> None:
        self.model_dir = Path(resolve_model_path(model))
        if not self.model_dir.is_dir():
            raise FileNotFoundError(f"{model}: the ONNX encoder needs a local sentence-transformers folder")
        # Whatever resolves to the packaged folder is the default model, under the id SentenceEmbedder gives it.
        self.model_id = DEFAULT_MODEL if self.model_dir == Path(resolve_model_path(DEFAULT_MODEL)) else model
        self.quantized = quantized
        self.batch_size = batch_size
        self.layout = ModelLayout.read(self.model_dir)
        self.dimension = self.layout.dimension
        self.fingerprint = model_fingerprint(self.model_dir)
        self.folder = _cache_folder(Path(cache_dir), self.model_id, self.fingerprint)
        self.export_seconds: dict[str, float] = {}  # what this instance exported, by file; empty when reused
        self.path = self._ensure_graph()
        self.session = _session(self.path, intra_op_num_threads)
        self.tokenizer = _tokenizer(self.model_dir, self.layout.max_seq_length, pad=True)
        self._counter = _tokenizer(self.model_dir, self.layout.max_seq_length, pad=False)
        special = len(self._counter.encode("", add_special_tokens=True).ids)
        self.max_tokens = self.layout.max_seq_length - special

    @property
    def variant(self) -> str:
        return "onnx-int8" if self.quantized else "onnx-fp32"

    def _ensure_graph(self) -> Path:
        fp32, int8 = self.folder / FP32_FILE, self.folder / INT8_FILE
        wanted = int8 if self.quantized else fp32
        if _valid(wanted, self.fingerprint):
            return wanted
        with _exclusive(self.folder / ".export.lock"):
            # Another process may have exported while this one waited for the lock.
            if not _valid(fp32, self.fingerprint):
                self._produce(fp32, lambda tmp: export_fp32(self.model_dir, tmp))
            if self.quantized and not _valid(int8, self.fingerprint):
                self._produce(int8, lambda tmp: quantize_int8(fp32, tmp))
        return wanted

    def _produce(self, final: Path, make: Callable[[Path], dict[str, Any]]) -> None:
        if final.exists():
            log.warning("%s is stale or damaged; exporting it again", final)
        tmp = _temp_path(self.folder, final.name)
        started = time.perf_counter()
        try:
            facts = make(tmp)
            seconds = time.perf_counter() - started
            _publish(tmp, final)
        finally:
            tmp.unlink(missing_ok=True)
        _write_sidecar(
            final, self.fingerprint, seconds, {"model_id": self.model_id, "source": str(self.model_dir), **facts}
        )
        self.export_seconds[final.name] = round(seconds, 3)
        log.info("exported %s in %.1f s", final, seconds)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        if not texts:
            return []
        return [len(e.ids) for e in self._counter.encode_batch(list(texts), add_special_tokens=False)]

    def encode(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        if not texts:
            return np.zeros((0, self.dimension), dtype=np.float32)
        items = [t.lower() for t in texts] if self.layout.do_lower_case else list(texts)
        # Longest first, as sentence-transformers batches: similar lengths waste less padding.
        order = sorted(range(len(items)), key=lambda i: -len(items[i]))
        out = np.empty((len(items), self.dimension), dtype=np.float32)
        for start in range(0, len(order), self.batch_size):
            picked = order[start : start + self.batch_size]
            encodings = self.tokenizer.encode_batch([items[i] for i in picked])
            feed = {
                "input_ids": np.array([e.ids for e in encodings], dtype=np.int64),
                "attention_mask": np.array([e.attention_mask for e in encodings], dtype=np.int64),
            }
            out[picked] = self.session.run(None, feed)[0]
        return out
