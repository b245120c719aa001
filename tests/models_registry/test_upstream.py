"""The `openai` backend: a model served by another OpenAI-compatible server, reached by base URL.

The upstream here is a second llm-platform (a live uvicorn with a real worker): an OpenAI-compatible
server we can run on this machine.
"""

from __future__ import annotations

import httpx
from fastapi.testclient import TestClient
from pydantic import SecretStr

from llm_platform.app import create_app
from tests.conftest import QUESTION, TINY_MODEL, PlatformHelper
from tests.responses import assert_error, assert_status, bearer, sse_chunks


def test_a_model_behind_an_openai_compatible_upstream(live_api, settings, platform, tenant_a, redis_url):
    with httpx.Client(base_url=live_api) as http:
        upstream = PlatformHelper(http, settings)  # type: ignore[arg-type]
        upstream_tenant = upstream.create_tenant()
        upstream_key = upstream.create_key(upstream_tenant)["key"]
    registered = platform.client.post(
        "/admin/models",
        headers=platform.admin_headers,
        json={
            "name": "remote-tiny",
            "backend": "openai",
            "base_url": f"{live_api}/v1",
            "source": TINY_MODEL,
            "context_length": 512,
        },
    )
    assert registered.status_code == 201, registered.text
    key = bearer(platform.create_key(tenant_a)["key"])
    body = {"messages": QUESTION, "max_tokens": 10, "temperature": 0}

    front_settings = settings.model_copy(
        update={"upstream_api_keys": {"remote-tiny": SecretStr(upstream_key)}}
    )
    with TestClient(create_app(front_settings)) as front:
        direct = assert_status(
            front.post("/v1/chat/completions", headers=key, json=body | {"model": TINY_MODEL})
        ).json()
        remote = front.post("/v1/chat/completions", headers=key, json=body | {"model": "remote-tiny"})
        assert remote.status_code == 200, remote.text
        assert remote.json()["model"] == "remote-tiny"
        assert remote.json()["choices"][0]["message"]["content"] == direct["choices"][0]["message"]["content"]
        assert remote.json()["usage"] == direct["usage"]

        streamed = front.post(
            "/v1/chat/completions",
            headers={**key, "Cache-Control": "no-cache"},  # through the upstream, not our cache
            json=body | {"model": "remote-tiny", "stream": True, "stream_options": {"include_usage": True}},
        )
        assert streamed.status_code == 200, streamed.text
        chunks = sse_chunks(streamed)
        text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
        assert text == direct["choices"][0]["message"]["content"]
        assert chunks[-1]["usage"] == direct["usage"]

        # The upstream refuses a bad request: the client gets a 400 of ours, not the upstream's internals.
        too_long = front.post(
            "/v1/chat/completions",
            headers=key,
            json={
                "model": "remote-tiny",
                "messages": [{"role": "user", "content": "word " * 600}],
                "max_tokens": 5,
            },
        )
        assert_error(too_long, 400, "invalid_request")

    # Without the upstream's key it cannot authenticate there: the model is unavailable, no details leak.
    unauthenticated = platform.client.post(
        "/v1/chat/completions",
        headers={**key, "Cache-Control": "no-cache"},
        json=body | {"model": "remote-tiny"},
    )
    error = assert_error(unauthenticated, 503, "model_unavailable")
    assert live_api not in error["message"]
