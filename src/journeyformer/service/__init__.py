"""The real-time scoring service (``journeyformer serve``; docs/service.md): the HTTP app, the
per-customer state and its stores, the stream consumer and triggers, assembled by :mod:`.job`.
Scores equal ``journeyformer predict``'s for the same events and as_of. Imports no torch.
"""
