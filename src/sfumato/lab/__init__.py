"""The lab: a small text-to-image generator trained here, judges, and the poisoning experiment.

Built in layers: :mod:`sfumato.lab.data` (datasets and captions), :mod:`sfumato.lab.text` (the
all-MiniLM-L6-v2 text encoder) and :mod:`sfumato.lab.latents` (cached image latents) come first.
"""
