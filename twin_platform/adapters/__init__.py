"""Adapters layer: Postgres, the document warehouse backends and other I/O."""
