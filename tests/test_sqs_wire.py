"""SQS wire fixtures: our requests byte for byte against botocore's, scenario by scenario.

Each folder of fixtures/sqs/ (written by scripts/regen_sqs_fixtures.py from botocore)
holds a call, the request botocore sent and a canned response. The call is replayed through
the SQS client that ``client.listen()`` builds, on the respx seam, with the same keys and
clock: the request must equal botocore's (every header in order, ``Authorization``
included; ``User-Agent`` and ``amz-sdk-invocation-id`` differ by design), the response must
parse to what botocore made of it, and the capture re-run against the installed botocore
must equal the files.
"""

from __future__ import annotations

import functools
import uuid
from typing import Any

import httpx
import pytest

import sagemaker_async
import wire_fixture_files as fixture_files
from helpers import FIXED_TIME, SleepRecorder, new_router
from sagemaker_async import AsyncInferenceClient, ServiceError, __version__
from sagemaker_async._io.runtime import Runtime
from sagemaker_async._protocol.sqs import BatchResult, SqsMessage
from wire_fixture_files import BY_DESIGN, ROOT, body_bytes, load_script, scenario_names

FIXTURES = ROOT / "fixtures" / "sqs"


regen = load_script("regen_sqs_fixtures")
SCENARIO_NAMES = scenario_names(FIXTURES)
read = functools.partial(fixture_files.read, FIXTURES)
canned_response = functools.partial(fixture_files.canned_response, FIXTURES)


async def replay(name: str) -> tuple[list[httpx.Request], Any]:
    scenario = read(name, "scenario.json")
    expected = read(name, "request.json")
    router = new_router()
    route = router.post(expected["url"]).mock(side_effect=lambda _: canned_response(name))
    client = AsyncInferenceClient(
        **scenario["client"],
        transport=httpx.MockTransport(router.async_handler),
        _runtime=Runtime(clock=lambda: FIXED_TIME, sleep=SleepRecorder()),
    )
    call = scenario["call"]
    outcome: Any
    async with client:
        queue = client.listen(call["QueueUrl"])._queue
        handles = [entry["ReceiptHandle"] for entry in call.get("Entries", [])]
        try:
            operation = scenario["operation"]
            if operation == "ReceiveMessage":
                outcome = await queue.receive(
                    wait_seconds=call["WaitTimeSeconds"],
                    visibility_timeout=call["VisibilityTimeout"],
                )
            elif operation == "DeleteMessageBatch":
                outcome = await queue.delete(handles)
            elif operation == "ChangeMessageVisibilityBatch":
                outcome = await queue.release(handles)
            else:
                outcome = await queue.attributes()
        except ServiceError as error:
            outcome = error
    router.assert_all_called()
    return [c.request for c in route.calls], outcome


def test_every_scenario_has_its_folder_and_nothing_else() -> None:
    assert sorted(s.name for s in regen.SCENARIOS) == SCENARIO_NAMES
    for name in SCENARIO_NAMES:
        files = sorted(p.name for p in (FIXTURES / name).iterdir())
        assert files == ["request.json", "response.json", "scenario.json"]
    operations = {read(n, "scenario.json")["operation"] for n in SCENARIO_NAMES}
    assert operations == {
        "ReceiveMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibilityBatch",
        "GetQueueAttributes",
    }


@pytest.mark.parametrize("name", SCENARIO_NAMES)
async def test_request_is_botocores_byte_for_byte(name: str) -> None:
    expected = read(name, "request.json")
    requests, _ = await replay(name)
    ours = requests[0]
    assert ours.method == expected["method"]
    assert str(ours.url) == expected["url"]
    assert ours.content == body_bytes(expected["body"])
    raw = [(n.decode("ascii"), v) for n, v in ours.headers.raw]
    assert [v for n, v in raw if n.lower() == "host"] == [httpx.URL(expected["url"]).netloc]
    ours_headers = [(n, v) for n, v in raw if n.lower() != "host"]
    theirs = [(n, v.encode("utf-8")) for n, v in expected["headers"]]
    assert [n for n, _ in ours_headers] == [n for n, _ in theirs], "names, case and order"
    assert [(n, v) for n, v in ours_headers if n.lower() not in BY_DESIGN] == [
        (n, v) for n, v in theirs if n.lower() not in BY_DESIGN
    ]
    mine = {n.lower(): v.decode() for n, v in ours_headers}
    assert mine["user-agent"].startswith(f"sagemaker-async/{__version__} python/")
    assert uuid.UUID(mine["amz-sdk-invocation-id"]).version == 4


@pytest.mark.parametrize("name", SCENARIO_NAMES)
async def test_response_parses_as_botocore_read_it(name: str) -> None:
    expect = read(name, "scenario.json")["expect"]
    requests, outcome = await replay(name)
    if "result" in expect:
        result = expect["result"]
        assert len(requests) == 1
        if "messages" in result:
            assert outcome == [SqsMessage(**m) for m in result["messages"]]
        elif "attributes" in result:
            assert outcome == result["attributes"]
        else:
            assert outcome == BatchResult(
                successful=tuple(result["successful"]),
                failed=tuple(tuple(entry) for entry in result["failed"]),
            )
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
    retried = error["status_code"] >= 500 or error["class"] == "ThrottlingError"
    assert len(requests) == (3 if retried else 1)


@pytest.mark.parametrize("scenario", regen.SCENARIOS, ids=lambda s: s.name)
def test_fixtures_still_match_the_installed_botocore(scenario: Any) -> None:
    for filename, document in regen.capture(scenario).items():
        on_disk = (FIXTURES / scenario.name / filename).read_text(encoding="utf-8")
        assert regen.base.render(document) == on_disk, f"{scenario.name}/{filename} is stale"
