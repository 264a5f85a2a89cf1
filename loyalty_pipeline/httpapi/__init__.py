"""What every HTTP client of the pipeline shares: the one retry policy (retrying.py: a shared rate limit,
429 + Retry-After, 5xx and transport errors with backoff and jitter, a deadline), the one secret
scrubber through which every answer enters (scrub.py: the parsed body and the excerpt of an answer),
the one rule for an API root a credential goes to (urls.py), and how such a client is opened
(session.py: credentials in headers, no redirects). The ShopiMind client (outbound/shopimind/client.py)
and the platform API pulls (ingest/pull/client.py) build on them; each keeps what is its API's own (its
error messages, what a refusal means).
"""
