"""Offline importers: a folder of files, the LLM Engineer's Handbook warehouse export."""
