"""Feature stage: cleaning, chunking and embedding raw documents into the retrieval index."""
