"""The Litestar RAG API (an entry point): /v1/rag, /v1/search, /v1/chat/completions, /health, /ready."""
