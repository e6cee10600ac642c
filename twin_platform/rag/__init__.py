"""Retrieval-augmented generation: search, fusion and (with the RAG API) prompts."""
