"""Durable storage: paths, the event-line codec, append-only histories, timer markers, locks."""
