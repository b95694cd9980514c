"""Features: definitions, vocabularies, aggregates, per-customer sequences and padded batches."""
