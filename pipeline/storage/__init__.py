"""Clients of object storage, built per process from the secret-free ``storage`` section.

S3 through obstore, Google Cloud Storage through gcsfs (its JSON API) and obstore (a
``HEAD``); the retry policy they share. May import ``pipeline.config`` and
``pipeline.errors`` only.
"""
