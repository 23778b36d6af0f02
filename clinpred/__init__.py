"""clinpred: how much clinical signal does a text-embedding model capture?"""

__version__ = "0.1.0"
