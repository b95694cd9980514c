"""The synthetic worlds: journeys (the default data), purchases, catalogue and campaigns."""
