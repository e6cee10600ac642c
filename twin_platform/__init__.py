"""twin_platform."""
