"""Wire fixtures: our requests byte for byte against botocore's, scenario by scenario.

Each folder of fixtures/invoke/ (written by scripts/regen_fixtures.py from botocore itself)
holds a call, the request botocore sent for it and a canned response. Here each call is
replayed through our client on the respx seam with the same keys and clock, and:

(a) the request must equal botocore's: method, URL, body, and every header in order,
    ``Authorization`` included; ``User-Agent`` and ``amz-sdk-invocation-id`` differ by
    design and only their shape is checked; ``Host`` (which botocore's HTTP layer adds
    when sending) must be the URL's;
(b) the response must parse to what botocore made of it (the invocation, or the error's
    code, message, status and request id, as the contract's class);
(c) the capture is re-run against the installed botocore and must equal the files, so the
    fixtures cannot drift from the real SDK.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import uuid
from typing import Any

import httpx
import pytest

import sagemaker_async
import wire_fixture_files as fixture_files
from helpers import FIXED_TIME, SleepRecorder, new_router
from sagemaker_async import AsyncInferenceClient, AsyncInvocation, ServiceError, __version__
from sagemaker_async._io.runtime import Runtime
from sagemaker_async._protocol.freshness import parse_http_date
from wire_fixture_files import BY_DESIGN, ROOT, body_bytes, load_script, scenario_names

FIXTURES = ROOT / "fixtures" / "invoke"


regen = load_script("regen_fixtures")
SCENARIO_NAMES = scenario_names(FIXTURES)
read = functools.partial(fixture_files.read, FIXTURES)
canned_response = functools.partial(fixture_files.canned_response, FIXTURES)

# botocore's member names → our keyword arguments.
KWARGS = {
    "EndpointName": "endpoint_name",
    "InputLocation": "input_location",
    "Body": "body",
    "ContentType": "content_type",
    "Accept": "accept",
    "CustomAttributes": "custom_attributes",
    "InferenceId": "inference_id",
    "S3OutputPathExtension": "s3_output_path_extension",
    "Filename": "filename",
    "RequestTTLSeconds": "request_ttl_seconds",
    "InvocationTimeoutSeconds": "invocation_timeout_seconds",
}


def call_kwargs(call: dict[str, Any]) -> dict[str, Any]:
    return {
        KWARGS[key]: body_bytes(value) if key == "Body" else value for key, value in call.items()
    }


async def replay(name: str) -> tuple[list[httpx.Request], AsyncInvocation | ServiceError]:
    """Our client, the scenario's settings and call; the requests sent and the outcome."""
    scenario = read(name, "scenario.json")
    expected = read(name, "request.json")
    router = new_router()
    route = router.post(expected["url"]).mock(side_effect=lambda _: canned_response(name))
    client = AsyncInferenceClient(
        **scenario["client"],
        transport=httpx.MockTransport(router.async_handler),
        _runtime=Runtime(clock=lambda: FIXED_TIME, sleep=SleepRecorder()),
    )
    outcome: AsyncInvocation | ServiceError
    async with client:
        try:
            outcome = await client.invoke_endpoint_async(**call_kwargs(scenario["call"]))
        except ServiceError as error:
            outcome = error
    router.assert_all_called()
    return [call.request for call in route.calls], outcome


def test_every_scenario_has_its_folder_and_nothing_else() -> None:
    assert sorted(scenario.name for scenario in regen.SCENARIOS) == SCENARIO_NAMES
    for name in SCENARIO_NAMES:
        files = sorted(p.name for p in (FIXTURES / name).iterdir())
        assert files == ["request.json", "response.json", "scenario.json"]


@pytest.mark.parametrize("name", SCENARIO_NAMES)
async def test_request_is_botocores_byte_for_byte(name: str) -> None:
    expected = read(name, "request.json")
    requests, _ = await replay(name)
    ours = requests[0]

    assert ours.method == expected["method"]
    assert str(ours.url) == expected["url"]
    assert ours.content == body_bytes(expected["body"])

    raw = [(n.decode("ascii"), v) for n, v in ours.headers.raw]
    host = [v for n, v in raw if n.lower() == "host"]
    assert host == [httpx.URL(expected["url"]).netloc]
    ours_headers = [(n, v) for n, v in raw if n.lower() != "host"]
    theirs = [(n, v.encode("utf-8")) for n, v in expected["headers"]]
    assert [n for n, _ in ours_headers] == [n for n, _ in theirs], "names, case and order"
    assert [(n, v) for n, v in ours_headers if n.lower() not in BY_DESIGN] == [
        (n, v) for n, v in theirs if n.lower() not in BY_DESIGN
    ]
    mine = {n.lower(): v.decode() for n, v in ours_headers}
    assert mine["authorization"] == dict(expected["headers"])["Authorization"]

    # The two that differ by design: their shape.
    assert mine["user-agent"].startswith(f"sagemaker-async/{__version__} python/")
    assert uuid.UUID(mine["amz-sdk-invocation-id"]).version == 4


@pytest.mark.parametrize("name", SCENARIO_NAMES)
async def test_response_parses_as_botocore_read_it(name: str) -> None:
    expect = read(name, "scenario.json")["expect"]
    requests, outcome = await replay(name)
    if "invocation" in expect:
        assert isinstance(outcome, AsyncInvocation)
        # botocore does not model submitted_at: it is the answer's Date header, ours alone.
        response_headers = {n.lower(): v for n, v in read(name, "response.json")["headers"]}
        assert outcome.submitted_at == parse_http_date(response_headers.get("date"))
        assert outcome.submitted_at is not None
        outcome = dataclasses.replace(outcome, submitted_at=None)
        assert outcome == AsyncInvocation(**expect["invocation"])
        assert len(requests) == 1
        return
    error = expect["error"]
    assert isinstance(outcome, ServiceError)
    assert type(outcome) is getattr(sagemaker_async, error["class"])
    assert (outcome.code, outcome.message, outcome.status_code, outcome.request_id) == (
        error["code"],
        error["message"],
        error["status_code"],
        error["request_id"],
    )
    # Retried as botocore's standard mode retries it: every attempt the same but its number.
    retried = error["status_code"] >= 500 or error["class"] == "ThrottlingError"
    assert len(requests) == (3 if retried else 1)
    attempts = [request.headers["amz-sdk-request"] for request in requests]
    assert attempts == [f"attempt={n}; max=3" for n in range(1, len(requests) + 1)]


@pytest.mark.parametrize("scenario", regen.SCENARIOS, ids=lambda s: s.name)
def test_fixtures_still_match_the_installed_botocore(scenario: Any) -> None:
    """If botocore changes what it sends, this fails: run scripts/regen_fixtures.py and
    look at the diff (and then at why our request differs)."""
    for filename, document in regen.capture(scenario).items():
        on_disk = (FIXTURES / scenario.name / filename).read_text(encoding="utf-8")
        assert regen.render(document) == on_disk, f"{scenario.name}/{filename} is stale"


def test_fixtures_use_the_fixed_clock_and_keys() -> None:
    """The fixtures are what the issue asks: fixed clock, AWS's example keys."""
    for name in SCENARIO_NAMES:
        headers = dict(read(name, "request.json")["headers"])
        assert headers["X-Amz-Date"] == "20261126T001821Z"
        assert re.match(
            r"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261126/[a-z0-9-]+/sagemaker/aws4_request, ",
            headers["Authorization"],
        )
    tokens = [n for n in SCENARIO_NAMES if read(n, "scenario.json")["client"]["aws_session_token"]]
    assert tokens == ["session-token"]
