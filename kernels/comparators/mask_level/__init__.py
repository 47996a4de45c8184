"""The paper's mask-level systems: AnyChange, Inst-CEG, DynamicEarth, UCD-SCM.

They decide change on object masks (the identifier's instances or class-agnostic
proposals, :mod:`.amg`) with the mask maths of :mod:`.masks` and :mod:`.latent_match`,
one tile pair at a time (:mod:`.evidence`); :mod:`.base` is the configured comparator
every method module implements. Pure torch; the models come from
:mod:`s2c_batch.kernels.models`.
"""
