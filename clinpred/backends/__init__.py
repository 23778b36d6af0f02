"""Embedding backends: one interface, a registry, and an on-disk cache."""
