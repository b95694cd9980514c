"""The real-time scoring service (``journeyformer serve``): the HTTP app (:mod:`.app`), the
per-customer state (:mod:`.state`, :mod:`.features`) and its stores (:mod:`.store`), the stream
consumer (:mod:`.stream`) and triggers (:mod:`.triggers`), assembled by :mod:`.job`.

Scores equal ``journeyformer predict``'s for the same events and as_of (the same validation,
features and scoring loop). Imports no torch (docs/service.md).
"""
