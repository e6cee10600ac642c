"""Dagster definitions, one folder per subject (loaded by ``twin_platform.definitions``)."""
