"""The web console at /console: static pages and ES modules, a client of the platform's public API.

It sits at the top floor and imports nothing of the platform's below it but what serves files: every
thing it shows or changes goes through the API, with the signed-in user's token, so it gets the same
authentication, limits and audit as any other client. Nothing imports it but the app factory.
"""
