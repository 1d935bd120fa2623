"""Stream codecs: bytes to values, and `<think>` text apart from the answer.

Pure and incremental: a codec is fed whatever a network read brought, however it was split,
and keeps only what it must. It does no I/O and imports nothing else of llmstream (the
contract in pyproject.toml checks it); the backends turn its `DecodeError` into a sentence.
"""
