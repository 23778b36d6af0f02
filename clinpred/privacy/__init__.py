"""What derives from credentialed notes, and who may learn from it (DESIGN.md rule 6).

``modes``: owner-only file modes for everything derived from a non-synthetic source.
``audit``: the membership-inference audit that every `clinpred finetune` ends with and `clinpred audit`
runs on any fine-tuned model folder: how much a model reveals about who was in its training set. It is
the one step beside a fine-tune that reads evaluation patients (after training is over; only
per-patient scores leave it).
"""
