"""Temporal contrastive fine-tuning: (note t, note t+1) pairs from fine-tuning patients."""
