"""The backends: Ollama, any OpenAI-compatible server and the embedded engine, behind one
small protocol (`protocol.py`), and the catalog that routes each model to one of them.

They use the codecs and the core (settings, errors, options); they never import the web
page, the serving layer or the lessons (the contract in pyproject.toml checks it). This
`__init__` stays empty so that importing one backend loads only what it needs.
"""
