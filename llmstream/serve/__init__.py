"""Serving the app to a crowd: probes and metrics on every process (more to come: the drain,
replicas behind HAProxy). Only the app imports this; `import llmstream` never does."""
