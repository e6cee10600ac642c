"""LoRA fine-tuning of the twin: SFT on instructions, DPO on preferences, then one merged model."""
