"""Serving the app to a crowd: health and readiness probes, Prometheus metrics, the drain on
SIGTERM, and the replica launcher behind HAProxy. Only the web app imports this; it may
import the core and the backends, never the page; `import llmstream` never loads it."""
