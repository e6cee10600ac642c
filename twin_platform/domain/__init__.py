"""Domain layer: pydantic models and pure rules. No I/O, no imports from other layers."""
