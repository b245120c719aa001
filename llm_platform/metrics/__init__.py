"""The API process's Prometheus metrics: model calls (requests by outcome, tokens, latencies), the
response cache, the limiter, the knowledge base and the worker pool, in a registry of the app's own
(`ApiMetrics`), served at `/metrics` beside the HTTP metrics. A domain low on the floors, so that every
domain above it records into it; it imports nothing of ours but the kernel."""
