"""Authentication and authorization: who is calling (an API key or a JWT access token, resolved to a
Principal; API keys cached per process for a second), password login with throttling, refresh-token
rotation and logout, and the FastAPI dependencies that put them in front of routes (`dependencies.py`).

It stands on tenants (whose rows hold users, keys and refresh tokens) and ratelimit (the login throttle
counts on its limiters), and tells the audit log who acted.
"""
