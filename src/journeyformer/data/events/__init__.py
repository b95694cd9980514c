"""Events: read, normalise, validate, order, the default as_of, customer partitions and exposure logs."""
