"""HTTP controllers: retrieval and RAG, the OpenAI-compatible routes, health."""
