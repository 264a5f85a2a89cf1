"""What every HTTP client of the pipeline shares: the one retry policy (retrying.py: a shared rate limit,
429 + Retry-After, 5xx and transport errors with backoff and jitter, a deadline) and the one secret
scrubber (scrub.py). The ShopiMind client (outbound/shopimind/client.py) and the platform API pulls
(ingest/pull/client.py) build on them; each keeps what is its API's own (its error messages, what a
refusal means).
"""
