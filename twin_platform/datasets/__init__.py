"""Training data from the author's own text: passages, back-translated instructions, preference pairs."""
