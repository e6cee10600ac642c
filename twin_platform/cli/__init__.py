"""The ``twin`` command-line interface (an entry point: it wires adapters into logic)."""
