"""The table of InvokeEndpointAsync options drives every layer: each test here reads the
table, never a list of names, so a new entry is checked everywhere without editing them.

Validation, the request headers, the client's signatures, the batch client's protocol, the
CLI's flags (``invoke-endpoint-async`` and ``batch``) and the manifest keys all come from
``INVOKE_FIELDS``; the botocore model is the oracle for the table itself.
"""

from __future__ import annotations

import inspect
import json
import typing
from pathlib import Path
from typing import Any

import httpx
import pytest

from helpers import ENDPOINT, INPUT, accepted, make_client, new_router
from sagemaker_async import AsyncInferenceClient, ParamValidationError
from sagemaker_async._protocol.invoke import invoke_headers
from sagemaker_async.cli._batch import BatchClient
from sagemaker_async.cli._errors import UsageError
from sagemaker_async.cli._manifest import ITEM_OPTIONS, load_manifest
from sagemaker_async.cli._parser import build_parser
from sagemaker_async.options import (
    INVOKE_FIELDS,
    OPTION_FIELDS,
    InvokeField,
    InvokeOptions,
    InvokeParams,
    validate_invoke,
)


def model_members() -> dict[str, Any]:
    import botocore.session

    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointAsync").input_shape
    assert shape is not None
    return dict(shape.members)


def valid_value(option: InvokeField) -> str | int:
    """A value the model accepts, at the option's upper limit."""
    if option.wire_type == "integer":
        return option.max
    if option.name == "input_location":
        return "s3://b/" + "k" * (option.max - len("s3://b/"))
    return "a" * option.max


def every_option() -> dict[str, str | int]:
    return {option.name: valid_value(option) for option in OPTION_FIELDS}


# -- the table against the model ----------------------------------------------------------


def test_the_table_is_the_models_headers_in_the_models_order() -> None:
    members = model_members()
    headers = [
        (name, shape.serialization["name"])
        for name, shape in members.items()
        if shape.serialization.get("location") == "header"
    ]
    assert [(f.member, f.header) for f in INVOKE_FIELDS] == headers


@pytest.mark.parametrize("option", INVOKE_FIELDS, ids=lambda f: f.name)
def test_each_entry_carries_the_models_type_limits_and_sensitivity(option: InvokeField) -> None:
    shape = model_members()[option.member]
    assert option.wire_type == shape.type_name
    assert (option.min, option.max) == (shape.metadata.get("min", 0), shape.metadata["max"])
    assert option.sensitive == bool(shape.metadata.get("sensitive"))
    assert option.cli_flag == "--" + "-".join(part.lower() for part in _words(option.member)), (
        "the AWS CLI's flag is the member in kebab-case"
    )


def _words(member: str) -> list[str]:
    """``S3OutputPathExtension`` → S3 Output Path Extension; ``RequestTTLSeconds`` → ..."""
    import re

    return re.findall(r"[A-Z0-9]+(?=[A-Z][a-z]|$)|[A-Z0-9]?[a-z0-9]+|[A-Z0-9]+", member)


def test_the_typed_dict_is_the_table() -> None:
    hints = typing.get_type_hints(InvokeOptions)
    assert list(hints) == [f.name for f in OPTION_FIELDS]
    for option in OPTION_FIELDS:
        wire = int if option.wire_type == "integer" else str
        assert hints[option.name] == (wire | None), option.name


# -- validation and headers ------------------------------------------------------------------


@pytest.mark.parametrize("option", OPTION_FIELDS, ids=lambda f: f.name)
def test_each_option_is_validated_by_its_entry(option: InvokeField) -> None:
    too_far: object = option.max + 1 if option.wire_type == "integer" else "a" * (option.max + 1)
    with pytest.raises(ParamValidationError) as info:
        validate_invoke(ENDPOINT, INPUT, **{option.name: too_far})  # type: ignore[arg-type]
    assert info.value.param == option.name
    wrong_type: object = "1" if option.wire_type == "integer" else 1
    with pytest.raises(ParamValidationError):
        InvokeParams(ENDPOINT, INPUT, None, {option.name: wrong_type})  # type: ignore[dict-item]


def test_an_invalid_params_object_cannot_be_built() -> None:
    with pytest.raises(ParamValidationError):
        InvokeParams("bad name", INPUT)
    with pytest.raises(ParamValidationError):
        InvokeParams(ENDPOINT, None, None)
    with pytest.raises(TypeError, match="colour"):
        InvokeParams(ENDPOINT, INPUT, None, {"colour": "blue"})


def test_every_option_becomes_its_header_in_table_order() -> None:
    params = validate_invoke(ENDPOINT, INPUT, **every_option())  # type: ignore[arg-type]
    sent = invoke_headers(params)
    assert [name for name, _ in sent] == [f.header for f in INVOKE_FIELDS]
    for option, (_, value) in zip(INVOKE_FIELDS, sent, strict=True):
        expected = INPUT if option.name == "input_location" else valid_value(option)
        assert value == str(expected)
        assert getattr(params, option.name) == expected


def test_repr_hides_every_sensitive_option() -> None:
    secrets = {f.name: f"secret-{f.name}" for f in OPTION_FIELDS if f.sensitive}
    assert secrets
    params = validate_invoke(ENDPOINT, INPUT, **secrets)  # type: ignore[arg-type]
    for secret in secrets.values():
        assert secret not in repr(params)


# -- signatures ------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["invoke_endpoint_async", "submit"])
def test_the_client_spells_out_every_option_keyword_only(method: str) -> None:
    parameters = inspect.signature(getattr(AsyncInferenceClient, method)).parameters
    for option in OPTION_FIELDS:
        assert parameters[option.name].kind is inspect.Parameter.KEYWORD_ONLY
        assert parameters[option.name].default is None
    assert not any(p.kind is p.VAR_KEYWORD for p in parameters.values())


def test_the_batch_protocol_takes_the_same_options() -> None:
    annotation = inspect.signature(BatchClient.invoke_endpoint_async).parameters["options"]
    assert "InvokeOptions" in str(annotation.annotation)


async def test_every_option_reaches_the_wire_from_the_client() -> None:
    router = new_router()
    route = router.post(url__regex=r".*/async-invocations$").mock(return_value=accepted())
    client, _ = make_client(router)
    async with client:
        await client.invoke_endpoint_async(ENDPOINT, INPUT, **every_option())  # type: ignore[arg-type]
    request: httpx.Request = route.calls.last.request
    for option in INVOKE_FIELDS:
        assert option.header.lower() in request.headers


async def test_an_unknown_keyword_is_a_type_error_before_any_io() -> None:
    router = new_router()
    client, _ = make_client(router)
    async with client:
        with pytest.raises(TypeError, match="colour"):
            await client.invoke_endpoint_async(ENDPOINT, INPUT, colour="blue")  # type: ignore[call-arg]
    assert not router.calls


# -- the command line and the manifest --------------------------------------------------------


def test_invoke_endpoint_async_has_a_flag_per_entry() -> None:
    argv = ["invoke-endpoint-async", "--endpoint-name", ENDPOINT]
    for option in INVOKE_FIELDS:
        argv += [option.cli_flag, str(valid_value(option))]
    args = build_parser().parse_args(argv)
    for option in INVOKE_FIELDS:
        assert getattr(args, option.name) == valid_value(option)


def test_batch_takes_the_entries_marked_as_batch_defaults() -> None:
    base = ["batch", "--endpoint-name", ENDPOINT, "--manifest", "m", "--record", "r"]
    parser = build_parser()
    # (--input-location would abbreviate batch's own --input-location-prefix.)
    for option in OPTION_FIELDS:
        argv = [*base, option.cli_flag, str(valid_value(option))]
        if option.batch_default:
            assert getattr(parser.parse_args(argv), option.name) == valid_value(option)
        else:
            with pytest.raises(SystemExit):
                parser.parse_args(argv)


def test_a_manifest_line_may_set_the_entries_marked_for_it(tmp_path: Path) -> None:
    assert {f.name for f in INVOKE_FIELDS if f.manifest} == ITEM_OPTIONS
    (tmp_path / "in.json").write_bytes(b"{}")
    options = {f.name: valid_value(f) for f in OPTION_FIELDS if f.manifest}
    manifest = tmp_path / "manifest.jsonl"
    manifest.write_text(json.dumps({"input": "in.json", **options}) + "\n")
    [item] = load_manifest(
        str(manifest), endpoint_name=ENDPOINT, defaults={}, upload_prefix=None, inline_limit=10
    )
    assert dict(item.options) == options
    for option in OPTION_FIELDS:
        if option.manifest:
            bad = {"input": "in.json", option.name: option.max + 1}
            if option.wire_type == "string":
                bad[option.name] = "a" * (option.max + 1)
            manifest.write_text(json.dumps(bad) + "\n")
            with pytest.raises(UsageError, match=option.name):
                load_manifest(
                    str(manifest),
                    endpoint_name=ENDPOINT,
                    defaults={},
                    upload_prefix=None,
                    inline_limit=10,
                )


def test_values_found_valid_are_remembered_but_never_a_sensitive_one() -> None:
    """The per-field memory of valid strings (a set lookup instead of a regex) is bounded,
    holds no secret, and never lets an invalid value through."""
    for option in OPTION_FIELDS:
        if option.wire_type != "string":
            continue
        value = f"zz{option.name[:8]}"
        validate_invoke(ENDPOINT, INPUT, **{option.name: value})  # type: ignore[arg-type]
        assert (value in option._valid) is not option.sensitive, option.name
    for _ in range(2):
        with pytest.raises(ParamValidationError):
            validate_invoke(ENDPOINT, INPUT, filename="a.b.c")
        with pytest.raises(ParamValidationError):
            validate_invoke("bad name", INPUT)
    first = next(f for f in OPTION_FIELDS if f.name == "content_type")
    for n in range(3000):
        first.check(f"type/{n}")
    assert len(first._valid) <= 1024
