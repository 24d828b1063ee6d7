"""Django-free fine-tuning: balanced batches, augmentation, freezing, the training loop,
evaluation and the promotion gate.

Import the submodules directly (``training.loop.train``, ``training.loop.gate``...). This file
imports nothing, so that ``gate`` and ``evaluate`` (numpy only) can be used from the web process
without loading torch.
"""
