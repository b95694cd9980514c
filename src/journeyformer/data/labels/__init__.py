"""Labels at a cutoff: lifecycle rules and summaries, training samples and splits, exposure samples."""
