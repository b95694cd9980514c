"""Tasks: one class per prediction task, and the registry every layer loops over.

No torch at import time (losses and post-processing import it when they run).
"""
