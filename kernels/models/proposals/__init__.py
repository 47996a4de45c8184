"""Promptable segmenters for class-agnostic mask proposals: SAM 3's tracker head or original SAM.

Both answer point prompts with three masks and their predicted IoU; the mask-level
comparators' proposal generator (:mod:`s2c_batch.kernels.comparators.mask_level.amg`) prompts them.
"""
