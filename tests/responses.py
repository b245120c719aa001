"""What a client sees of a response, checked the same way by every test: the one error shape, a set-up
step's status, the events of a streamed answer; and the header that carries a credential."""

from __future__ import annotations

import json


def bearer(credential: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {credential}"}


def assert_error(response, status: int, code: str | None = None) -> dict:  # type: ignore[no-untyped-def]
    """Every error has the one shape; returns its `error` object."""
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "code", "param"}, error
    assert isinstance(error["message"], str) and error["message"]
    if code is not None:
        assert error["code"] == code, error
    return error


def assert_status(response, status: int = 200):  # type: ignore[no-untyped-def]
    """A set-up step's response, once it has the status the step needs: a test fails where its set-up
    did, with the body, not later on a puzzling assertion."""
    assert response.status_code == status, response.text
    return response


def sse_events(response) -> list[str]:  # type: ignore[no-untyped-def]
    """The data of each server-sent event in a streamed answer (every frame must be `data: ...`)."""
    frames = [frame for frame in response.text.split("\n\n") if frame]
    assert all(frame.startswith("data: ") for frame in frames), frames
    return [frame.removeprefix("data: ") for frame in frames]


def sse_chunks(response) -> list[dict]:  # type: ignore[no-untyped-def]
    """The JSON chunks of a streamed answer, without the closing `[DONE]`."""
    return [json.loads(event) for event in sse_events(response) if event != "[DONE]"]
