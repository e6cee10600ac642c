"""LLM clients: TGI (huggingface_hub), any OpenAI-compatible endpoint (openai), local transformers."""
