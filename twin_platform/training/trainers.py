"""SFT and DPO with trl + peft LoRA, and merging the adapters into the base weights.

- CPU (these machines): float32, no bf16, no gradient checkpointing, ``use_cpu`` (bf16 on CPU is
  about 10x slower). CUDA: bf16 where supported, gradient checkpointing, and unsloth's
  ``FastLanguageModel`` when the ``gpu`` extra is installed.
- SFT data is conversational prompt/completion, so the loss covers the author's answer only.
- DPO trains a second LoRA on the SFT model (the SFT adapter merged in); with peft the reference
  model is that same model with the adapter switched off, so no second copy sits in memory.
- Checkpoints go to ``checkpoint_dir`` every ``save_steps``; a rerun of the same configuration on
  the same data resumes from the newest one.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from twin_platform.training.options import StageOptions, TrainingOptions

logger = logging.getLogger(__name__)
LogFn = Callable[[dict[str, float]], None]


@dataclass
class TrainingResult:
    adapter_dir: Path
    history: list[dict[str, float]]  # one entry per logged step
    metrics: dict[str, float]
    resumed_from: str | None = None
    backend: str = "transformers"
    evaluation: dict[str, float] = field(default_factory=dict)

    @property
    def losses(self) -> list[float]:
        return [entry["loss"] for entry in self.history if "loss" in entry]


def cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


def use_unsloth() -> bool:
    """unsloth only where it can work: CUDA present and the ``gpu`` extra installed."""
    return cuda_available() and importlib.util.find_spec("unsloth") is not None


def _load_policy(base_model: str, options: TrainingOptions, *, adapters: Sequence[Path] = ()) -> tuple[Any, Any, Any]:
    """(model, tokenizer, peft_config): peft_config is None when the model already carries a fresh LoRA."""
    import torch
    from peft import LoraConfig, PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    lora = options.lora
    targets: Any = lora.target_modules if lora.target_modules == "all-linear" else lora.target_modules.split(",")
    if use_unsloth():
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base_model, max_seq_length=options.max_length, load_in_4bit=options.load_in_4bit, dtype=None
        )
        for adapter in adapters:
            model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
        unsloth_targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
        model = FastLanguageModel.get_peft_model(
            model,
            r=lora.rank,
            lora_alpha=lora.alpha,
            lora_dropout=lora.dropout,
            target_modules=unsloth_targets if targets == "all-linear" else targets,
            use_gradient_checkpointing="unsloth",
            random_state=options.seed,
        )
        return model, tokenizer, None
    dtype = torch.bfloat16 if cuda_available() and torch.cuda.is_bf16_supported() else torch.float32
    tokenizer = AutoTokenizer.from_pretrained(adapters[-1] if adapters else base_model)
    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=dtype)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    config = LoraConfig(
        r=lora.rank, lora_alpha=lora.alpha, lora_dropout=lora.dropout, target_modules=targets, task_type="CAUSAL_LM"
    )
    return model, tokenizer, config


def _common_args(stage: StageOptions, options: TrainingOptions, checkpoint_dir: Path) -> dict[str, Any]:
    on_gpu = cuda_available()
    import torch

    return {
        "output_dir": str(checkpoint_dir),
        "per_device_train_batch_size": stage.batch_size,
        "per_device_eval_batch_size": stage.batch_size,
        "gradient_accumulation_steps": stage.grad_accum,
        "learning_rate": stage.learning_rate,
        "num_train_epochs": stage.epochs,
        "max_steps": stage.max_steps if stage.max_steps > 0 else -1,
        "warmup_steps": stage.warmup_ratio,  # a float below 1 is a ratio of the total steps
        "lr_scheduler_type": "linear",
        "logging_steps": 1,
        "save_strategy": "steps",
        "save_steps": stage.save_steps,
        "save_total_limit": 2,
        "eval_strategy": "no",
        "report_to": "none",
        "seed": options.seed,
        "data_seed": options.seed,
        "max_length": options.max_length,
        "bf16": on_gpu and torch.cuda.is_bf16_supported(),
        "gradient_checkpointing": on_gpu and not use_unsloth(),  # unsloth checkpoints in its own way
        "use_cpu": not on_gpu,
        "dataloader_num_workers": 0,
        "disable_tqdm": True,
    }


def _callback(on_log: LogFn | None) -> list[Any]:
    from transformers import TrainerCallback

    class Relay(TrainerCallback):
        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any) -> None:
            if on_log and logs:
                on_log({"step": state.global_step, **{k: float(v) for k, v in logs.items()}})

    return [Relay()]


def _run(trainer: Any, checkpoint_dir: Path, adapter_dir: Path, tokenizer: Any) -> tuple[dict[str, float], str | None]:
    from transformers.trainer_callback import PrinterCallback
    from transformers.trainer_utils import get_last_checkpoint

    trainer.remove_callback(PrinterCallback)  # our relay logs each step; no raw dicts on stdout
    last = get_last_checkpoint(str(checkpoint_dir)) if checkpoint_dir.is_dir() else None
    if last:
        logger.info("resuming from %s", last)
    started = time.perf_counter()
    output = trainer.train(resume_from_checkpoint=last)
    metrics = {k: float(v) for k, v in output.metrics.items() if isinstance(v, int | float)}
    metrics["wall_seconds"] = time.perf_counter() - started
    trainer.save_model(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    return metrics, Path(last).name if last else None


def _history(trainer: Any) -> list[dict[str, float]]:
    return [
        {k: float(v) for k, v in entry.items() if isinstance(v, int | float)}
        for entry in trainer.state.log_history
        if "loss" in entry
    ]


def sft_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """Conversational prompt/completion: trl masks the prompt, so only the answer is learned."""
    return [
        {
            "prompt": [{"role": "user", "content": row["instruction"]}],
            "completion": [{"role": "assistant", "content": row["answer"]}],
        }
        for row in rows
    ]


def dpo_rows(rows: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "prompt": [{"role": "user", "content": row["instruction"]}],
            "chosen": [{"role": "assistant", "content": row["chosen"]}],
            "rejected": [{"role": "assistant", "content": row["rejected"]}],
        }
        for row in rows
    ]


def train_sft(
    options: TrainingOptions,
    train: Sequence[dict[str, Any]],
    test: Sequence[dict[str, Any]],
    *,
    adapter_dir: Path,
    checkpoint_dir: Path,
    on_log: LogFn | None = None,
) -> TrainingResult:
    """LoRA SFT of ``options.base_model`` on instruction rows; the adapter is saved to ``adapter_dir``."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import SFTConfig, SFTTrainer

    if not train:
        raise ValueError("SFT needs at least one training sample")
    set_seed(options.seed)
    model, tokenizer, peft_config = _load_policy(options.base_model, options)
    args = SFTConfig(**_common_args(options.sft, options, checkpoint_dir), completion_only_loss=True, packing=False)
    trainer = SFTTrainer(
        model=model,
        args=args,
        train_dataset=Dataset.from_list(sft_rows(train)),
        eval_dataset=Dataset.from_list(sft_rows(test)) if test else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=_callback(on_log),
    )
    return _train(trainer, tokenizer, checkpoint_dir, adapter_dir, evaluate=bool(test), tokens=_sft_tokens)


def train_dpo(
    options: TrainingOptions,
    sft_adapter: Path,
    train: Sequence[dict[str, Any]],
    test: Sequence[dict[str, Any]],
    *,
    adapter_dir: Path,
    checkpoint_dir: Path,
    on_log: LogFn | None = None,
) -> TrainingResult:
    """DPO LoRA on the SFT model (``sft_adapter`` merged into the base); the reference is the SFT model."""
    from datasets import Dataset
    from transformers import set_seed
    from trl import DPOConfig, DPOTrainer

    if not train:
        raise ValueError("DPO needs at least one training pair")
    set_seed(options.seed)
    model, tokenizer, peft_config = _load_policy(options.base_model, options, adapters=[sft_adapter])
    args = DPOConfig(**_common_args(options.dpo, options, checkpoint_dir), beta=options.dpo.beta)
    train_set = Dataset.from_list(dpo_rows(train))
    trainer = DPOTrainer(
        model=model,
        ref_model=None,
        args=args,
        train_dataset=train_set,
        eval_dataset=Dataset.from_list(dpo_rows(test)) if test else None,
        processing_class=tokenizer,
        peft_config=peft_config,
        callbacks=_callback(on_log),
    )
    return _train(trainer, tokenizer, checkpoint_dir, adapter_dir, evaluate=bool(test), tokens=_dpo_tokens)


def _train(
    trainer: Any,
    tokenizer: Any,
    checkpoint_dir: Path,
    adapter_dir: Path,
    *,
    evaluate: bool,
    tokens: Callable[[Any, list[dict[str, float]]], float],
) -> TrainingResult:
    metrics, resumed = _run(trainer, checkpoint_dir, adapter_dir, tokenizer)
    history = _history(trainer)
    metrics["train_tokens"] = tokens(trainer, history)
    runtime = metrics.get("train_runtime", 0.0)
    metrics["tokens_per_second"] = metrics["train_tokens"] / runtime if runtime else 0.0
    evaluation = _evaluate(trainer) if evaluate else {}
    return TrainingResult(adapter_dir, history, metrics, resumed, _backend(), evaluation)


def _sft_tokens(trainer: Any, history: list[dict[str, float]]) -> float:
    """trl counts the (non-padding) tokens it trained on."""
    return max((entry.get("num_tokens", 0.0) for entry in history), default=0.0)


def _dpo_tokens(trainer: Any, history: list[dict[str, float]]) -> float:
    """Tokens the policy read: mean (prompt + chosen + rejected) length x samples seen."""
    data = trainer.train_dataset
    columns = [c for c in ("prompt_ids", "chosen_ids", "rejected_ids") if c in data.column_names]
    if not columns or not len(data):
        return 0.0
    mean = sum(sum(len(x) for x in data[c]) for c in columns) / len(data)
    args = trainer.args
    samples = trainer.state.global_step * args.per_device_train_batch_size * args.gradient_accumulation_steps
    return float(mean * samples)


def _evaluate(trainer: Any) -> dict[str, float]:
    return {k: float(v) for k, v in trainer.evaluate().items() if isinstance(v, int | float)}


def _backend() -> str:
    return "unsloth" if use_unsloth() else ("transformers-cuda" if cuda_available() else "transformers-cpu")


def merge_adapters(base_model: str, adapters: Sequence[Path], output_dir: Path, *, dtype: str = "bfloat16") -> Path:
    """Fold each LoRA (in order) into the base weights and save a plain model with its tokenizer."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch.float32)
    for adapter in adapters:
        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    tokenizer = AutoTokenizer.from_pretrained(adapters[-1] if adapters else base_model)
    output_dir.mkdir(parents=True, exist_ok=True)
    model.to(getattr(torch, dtype)).save_pretrained(str(output_dir))
    tokenizer.save_pretrained(str(output_dir))
    return output_dir


def smoke_generate(model_dir: Path, prompt: str, max_new_tokens: int = 24) -> str:
    """Load a saved model from disk and generate: proof that the folder is a working model."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    inputs = tokenizer.apply_chat_template(
        [{"role": "user", "content": prompt}], add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.inference_mode():
        # "It generates" means text: no immediate end of turn, no control tokens (<|im_start|>, <unk>) as output.
        control = [i for i in tokenizer.all_special_ids if i != tokenizer.eos_token_id]
        output = model.generate(
            **inputs,
            max_new_tokens=max_new_tokens,
            min_new_tokens=min(8, max_new_tokens),
            do_sample=False,
            no_repeat_ngram_size=3,  # greedy decoding of a small model loops; a smoke test wants words
            **({"suppress_tokens": control} if control else {}),
        )
    text: str = tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True)
    return text


def clear_checkpoints(checkpoint_dir: Path) -> None:
    shutil.rmtree(checkpoint_dir, ignore_errors=True)


def write_json(path: Path, payload: object) -> None:
    path.write_text(json.dumps(payload, indent=2, sort_keys=True, default=str))
