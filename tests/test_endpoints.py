"""Endpoint resolution, checked against botocore (the oracle) for every region it knows.

Every region listed in botocore's partitions.json or endpoints.json, plus unknown regions
that each partition's pattern must catch, is resolved with FIPS and dual-stack on and off:
through a real botocore client's own rule-set resolver (so its client-level logic, such as
the older endpoint table and S3's us-east-1 default, is included) and through ours. botocore
is imported by these tests only; the last test checks the module under test never does.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import re
import subprocess
import sys
from collections.abc import Callable

import botocore.config
import botocore.exceptions
import botocore.loaders
import botocore.regions
import botocore.session
import botocore.utils
import hypothesis
import pytest
from botocore.client import BaseClient
from botocore.endpoint_provider import EndpointProvider
from botocore.regions import EndpointResolverBuiltins
from hypothesis import strategies as st

from sagemaker_async._protocol import endpoints as _endpoints
from sagemaker_async._protocol.endpoints import (
    RUNTIME_ENDPOINT_ENV_VAR,
    S3_ENDPOINT_ENV_VAR,
    check_custom_endpoint_flags,
    configured_endpoint_url,
    resolve_runtime_url,
    resolve_s3_host,
    resolve_sqs_url,
)
from sagemaker_async.errors import ParamValidationError

BUCKET = "my-bucket"  # virtual-hostable: botocore puts it in the host name
FLAGS = ((False, False), (False, True), (True, False), (True, True))
UNKNOWN_REGIONS = (
    "us-gov-east-9",
    "cn-south-9",
    "eusc-de-east-9",
    "us-iso-west-9",
    "us-isob-west-9",
    "eu-isoe-west-9",
    "us-isof-east-9",
    "xx-new-1",  # matches no pattern: botocore's default partition, aws
    "us-east-9",
    "us-gov-9",  # a GovCloud look-alike: only aws's pattern matches it
    "local",
    "US-EAST-1",  # patterns are case-sensitive: botocore lands in aws by default
)
INVALID_REGIONS = (
    "",
    "us-east-1/../x",
    "us-east-1.",
    "us_east_1",
    "-us-east-1",
    "us-east-1-",
    "123",
    "a" * 64,
    "ús-east-1",
    "us-east-\u0661",  # an Arabic-Indic digit: \d would accept it
    "us-east-1\n",
    "us east 1",
)
FIPS_PSEUDO_REGIONS = ("us-east-1-fips", "fips-us-east-1", "fips-us-gov-west-1", "us-fips-east-1")
_LOADER = botocore.loaders.Loader()


def _botocore_regions() -> list[str]:
    regions: set[str] = set()
    for data_name in ("partitions", "endpoints"):
        for partition in _LOADER.load_data(data_name)["partitions"]:
            regions.update(partition["regions"])
    return sorted(regions)


KNOWN_REGIONS = _botocore_regions()
ALL_REGIONS = sorted(set(KNOWN_REGIONS) | set(UNKNOWN_REGIONS))

# One operation per service whose endpoint depends on nothing but the client's settings
# (and, for S3, the bucket).
RUNTIME = "sagemaker-runtime"
_PROBES: dict[str, tuple[str, dict[str, str]]] = {
    RUNTIME: ("InvokeEndpointAsync", {}),
    "s3": ("HeadObject", {"Bucket": BUCKET, "Key": "k"}),
    "sqs": ("ReceiveMessage", {"QueueUrl": "https://sqs.us-east-1.amazonaws.com/1/q"}),
}
# What botocore raises when it refuses a region or a flag (ValueError: "Invalid endpoint").
_BOTOCORE_REFUSALS = (botocore.exceptions.BotoCoreError, ValueError)


@functools.cache
def _session() -> botocore.session.Session:
    # Created inside the first test that needs it, so under conftest's AWS_* isolation.
    return botocore.session.Session()


Flags = tuple[bool, bool]
Answer = str | Exception


@functools.cache
def _legacy_table() -> botocore.regions.EndpointResolver:
    """botocore's older endpoint table, which client creation consults before the rule set."""
    return botocore.regions.EndpointResolver(_LOADER.load_data("endpoints"), uses_builtin_data=True)


def _new_client(service: str, region: str, flags: Flags) -> BaseClient:
    use_fips, use_dualstack = flags
    return _session().create_client(
        service,
        region_name=region,
        config=botocore.config.Config(
            use_fips_endpoint=use_fips, use_dualstack_endpoint=use_dualstack
        ),
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )


def _probe(client: BaseClient, service: str) -> str:
    """The URL the client's own rule-set resolver gives our probe request."""
    operation_name, call_args = _PROBES[service]
    operation = client.meta.service_model.operation_model(operation_name)
    resolver = client._ruleset_resolver  # type: ignore[attr-defined]  # private: tests only
    return str(resolver.construct_endpoint(operation, call_args, {}).url)


def _probe_with_flags(client: BaseClient, service: str, region: str, flags: Flags) -> str:
    use_fips, use_dualstack = flags
    # Raises where creating a client with these flags would (EndpointVariantError).
    _legacy_table().construct_endpoint(
        client.meta.service_model.endpoint_prefix,
        region,
        use_dualstack_endpoint=use_dualstack,
        use_fips_endpoint=use_fips,
    )

    def set_flags(builtins: dict[str, object], **_: object) -> None:
        builtins[EndpointResolverBuiltins.AWS_USE_FIPS.value] = use_fips
        builtins[EndpointResolverBuiltins.AWS_USE_DUALSTACK.value] = use_dualstack

    event = f"before-endpoint-resolution.{client.meta.service_model.service_id.hyphenize()}"
    client.meta.events.register(event, set_flags)
    try:
        return _probe(client, service)
    finally:
        client.meta.events.unregister(event, set_flags)


@functools.cache
def botocore_urls(service: str, region: str) -> dict[Flags, Answer]:
    """botocore's URL for each FIPS/dual-stack combination, or the exception it refuses with.

    One client per region rather than per combination (a client costs up to 20 ms, and there
    are hundreds of combinations): the flags reach the client's rule-set resolver through
    botocore's own per-call hook, ``before-endpoint-resolution``, and the refusal that client
    creation bases on them comes from the same older table creation asks. The direct route,
    one client per combination, is checked against this one in
    test_shortcut_matches_clients_created_with_the_flags.
    """
    try:
        client = _new_client(service, region, (False, False))
    except _BOTOCORE_REFUSALS as exc:
        return dict.fromkeys(FLAGS, exc)
    answers: dict[Flags, Answer] = {}
    try:
        for flags in FLAGS:
            try:
                answers[flags] = _probe_with_flags(client, service, region, flags)
            except _BOTOCORE_REFUSALS as exc:
                answers[flags] = exc
    finally:
        client.close()
    return answers


def botocore_url_direct(service: str, region: str, flags: Flags) -> Answer:
    """botocore's answer the slow, obvious way: a client created with the flags."""
    try:
        client = _new_client(service, region, flags)
    except _BOTOCORE_REFUSALS as exc:
        return exc
    try:
        return _probe(client, service)
    except _BOTOCORE_REFUSALS as exc:
        return exc
    finally:
        client.close()


def _param_for_refusal(exc: Exception) -> str:
    """Which of our parameters botocore's refusal is about, judged from its message."""
    text = str(exc).lower()
    if "dualstack" in text or "dual-stack" in text:
        return "use_dualstack_endpoint"
    if "fips" in text:
        return "use_fips_endpoint"
    return "region_name"


# ---------------------------------------------------------------------------------------
# The partition table against botocore's data


def test_partition_table_matches_botocores_partitions_json() -> None:
    theirs = _LOADER.load_data("partitions")["partitions"]
    assert [p.name for p in _endpoints._PARTITIONS] == [p["id"] for p in theirs]
    for ours, their in zip(_endpoints._PARTITIONS, theirs, strict=True):
        outputs = their["outputs"]
        unmatched = {r for r in their["regions"] if not re.match(their["regionRegex"], r)}
        assert ours.region_regex.pattern == their["regionRegex"], ours.name
        assert ours.extra_regions == unmatched, ours.name
        assert ours.dns_suffix == outputs["dnsSuffix"], ours.name
        assert ours.dualstack_dns_suffix == outputs["dualStackDnsSuffix"], ours.name
        assert ours.supports_fips is outputs["supportsFIPS"], ours.name
        assert ours.supports_dualstack is outputs["supportsDualStack"], ours.name


def test_every_known_region_is_covered() -> None:
    # Guards the parametrization: an empty or tiny list would make the comparisons vacuous.
    assert len(KNOWN_REGIONS) >= 50
    assert {"us-east-1", "us-gov-west-1", "cn-north-1", "eusc-de-east-1", "aws-global"} <= set(
        KNOWN_REGIONS
    )


# ---------------------------------------------------------------------------------------
# Every region x FIPS x dual-stack, against botocore


def _ours(resolve: Callable[..., str], region: str, use_fips: bool, use_dualstack: bool) -> str:
    """Our answer, with a refusal spelled as the parameter it names."""
    try:
        return resolve(region, use_fips=use_fips, use_dualstack=use_dualstack)
    except ParamValidationError as exc:
        return f"refused: {exc.param}"


def _spelled(service: str, url: Answer) -> str:
    """botocore's answer spelled like ours; for S3, the host left once the bucket is off."""
    if isinstance(url, Exception):
        return f"refused: {_param_for_refusal(url)}"
    if service == "s3":
        prefix = f"https://{BUCKET}."
        assert url.startswith(prefix), url  # virtual-hosted, as we build it
        return url.removeprefix(prefix)
    return url


# One test per region, all four flag combinations in it: a mismatch report shows the whole
# row, and the file stays quick (a test item costs more than a comparison).
@pytest.mark.parametrize("region", ALL_REGIONS)
def test_runtime_url_matches_botocore(region: str) -> None:
    ours = {flags: _ours(resolve_runtime_url, region, *flags) for flags in FLAGS}
    theirs = {f: _spelled(RUNTIME, url) for f, url in botocore_urls(RUNTIME, region).items()}
    assert ours == theirs


@pytest.mark.parametrize("region", ALL_REGIONS)
def test_s3_host_matches_botocore(region: str) -> None:
    ours = {flags: _ours(resolve_s3_host, region, *flags) for flags in FLAGS}
    theirs = {f: _spelled("s3", url) for f, url in botocore_urls("s3", region).items()}
    assert ours == theirs


@pytest.mark.parametrize("region", ALL_REGIONS)
def test_sqs_url_matches_botocore(region: str) -> None:
    ours = {flags: _ours(resolve_sqs_url, region, *flags) for flags in FLAGS}
    theirs = {f: _spelled("sqs", url) for f, url in botocore_urls("sqs", region).items()}
    assert ours == theirs


# The special cases, and a region of each kind botocore refuses flags for.
SHORTCUT_SAMPLE = (
    "us-east-1",
    "aws-global",
    "us-gov-west-1",
    "cn-north-1",
    "us-iso-east-1",
    "eu-isoe-west-1",
    "us-isof-south-1",
    "aws-iso-e-global",
)


@pytest.mark.parametrize("service", _PROBES)
@pytest.mark.parametrize("region", SHORTCUT_SAMPLE)
def test_shortcut_matches_clients_created_with_the_flags(service: str, region: str) -> None:
    flagged = FLAGS[1:]  # without flags, the shortcut is the direct route
    shortcut = botocore_urls(service, region)
    assert {f: _spelled(service, shortcut[f]) for f in flagged} == {
        f: _spelled(service, botocore_url_direct(service, region, f)) for f in flagged
    }


def test_botocore_does_refuse_some_combinations() -> None:
    # The comparisons above would pass vacuously if botocore never refused: pin that it does.
    refused_runtime = {
        (region, fips, dualstack)
        for region in ("eu-isoe-west-1", "us-isof-south-1", "cn-north-1")
        for fips, dualstack in FLAGS
        if isinstance(botocore_urls(RUNTIME, region)[fips, dualstack], Exception)
    }
    assert refused_runtime == {
        ("eu-isoe-west-1", False, True),
        ("eu-isoe-west-1", True, True),
        ("us-isof-south-1", False, True),
        ("us-isof-south-1", True, True),
    }
    assert isinstance(botocore_urls("s3", "cn-north-1")[True, False], Exception)


# ---------------------------------------------------------------------------------------
# Literal examples: the shapes documented in wire-format.md, readable without botocore


@pytest.mark.parametrize(
    ("region", "use_fips", "use_dualstack", "url"),
    [
        ("us-east-1", False, False, "https://runtime.sagemaker.us-east-1.amazonaws.com"),
        ("us-east-1", True, False, "https://runtime-fips.sagemaker.us-east-1.amazonaws.com"),
        ("us-east-1", False, True, "https://runtime.sagemaker.us-east-1.api.aws"),
        ("us-east-1", True, True, "https://runtime.sagemaker-fips.us-east-1.api.aws"),
        ("us-gov-west-1", True, False, "https://runtime.sagemaker.us-gov-west-1.amazonaws.com"),
        ("us-gov-west-1", True, True, "https://runtime.sagemaker-fips.us-gov-west-1.api.aws"),
        ("cn-north-1", False, False, "https://runtime.sagemaker.cn-north-1.amazonaws.com.cn"),
        (
            "cn-north-1",
            True,
            False,
            "https://runtime.sagemaker-fips.cn-north-1.amazonaws.com.cn",
        ),
        (
            "cn-north-1",
            False,
            True,
            "https://runtime.sagemaker.cn-north-1.api.amazonwebservices.com.cn",
        ),
        (
            "eusc-de-east-1",
            True,
            False,
            "https://runtime.sagemaker-fips.eusc-de-east-1.amazonaws.eu",
        ),
        ("us-iso-east-1", False, True, "https://runtime.sagemaker.us-iso-east-1.api.aws.ic.gov"),
        ("us-isob-east-1", False, False, "https://runtime.sagemaker.us-isob-east-1.sc2s.sgov.gov"),
        ("xx-new-1", True, False, "https://runtime-fips.sagemaker.xx-new-1.amazonaws.com"),
    ],
)
def test_runtime_url_examples(region: str, use_fips: bool, use_dualstack: bool, url: str) -> None:
    assert resolve_runtime_url(region, use_fips=use_fips, use_dualstack=use_dualstack) == url


@pytest.mark.parametrize(
    ("region", "use_fips", "use_dualstack", "host"),
    [
        ("us-west-2", False, False, "s3.us-west-2.amazonaws.com"),
        ("us-east-1", False, False, "s3.amazonaws.com"),  # botocore's legacy global default
        ("us-east-1", True, True, "s3-fips.dualstack.us-east-1.amazonaws.com"),
        ("aws-global", False, True, "s3.dualstack.us-east-1.amazonaws.com"),
        ("us-gov-west-1", True, False, "s3-fips.us-gov-west-1.amazonaws.com"),
        ("eu-west-1", False, True, "s3.dualstack.eu-west-1.amazonaws.com"),
        ("cn-north-1", False, False, "s3.cn-north-1.amazonaws.com.cn"),
        ("cn-north-1", False, True, "s3.dualstack.cn-north-1.amazonaws.com.cn"),
    ],
)
def test_s3_host_examples(region: str, use_fips: bool, use_dualstack: bool, host: str) -> None:
    assert resolve_s3_host(region, use_fips=use_fips, use_dualstack=use_dualstack) == host


def test_refusals_name_the_flag_and_say_what_to_do() -> None:
    with pytest.raises(ParamValidationError, match="use_dualstack_endpoint=False") as caught:
        resolve_runtime_url("eu-isoe-west-1", use_dualstack=True)
    assert caught.value.param == "use_dualstack_endpoint"
    with pytest.raises(ParamValidationError, match="use_fips_endpoint=False") as caught:
        resolve_s3_host("cn-northwest-1", use_fips=True)
    assert caught.value.param == "use_fips_endpoint"


@pytest.mark.parametrize(
    ("changes", "flags", "param"),
    [
        ({"supports_fips": False}, {"use_fips": True}, "use_fips_endpoint"),
        ({"supports_fips": False}, {"use_fips": True, "use_dualstack": True}, "use_fips_endpoint"),
        ({"supports_dualstack": False}, {"use_dualstack": True}, "use_dualstack_endpoint"),
    ],
)
def test_rule_set_partition_checks(
    changes: dict[str, bool], flags: dict[str, bool], param: str
) -> None:
    # No partition lacks FIPS or dual-stack today, so the rule set's checks are exercised on
    # a partition altered the way a future partitions.json could alter it.
    partition = dataclasses.replace(_endpoints._PARTITIONS[0], **changes)  # type: ignore[arg-type]
    kwargs = {"use_fips": False, "use_dualstack": False, **flags}
    with pytest.raises(ParamValidationError) as caught:
        _endpoints._check_partition_supports(partition, "us-east-1", **kwargs)
    assert caught.value.param == param
    _endpoints._check_partition_supports(
        partition, "us-east-1", use_fips=False, use_dualstack=False
    )


# ---------------------------------------------------------------------------------------
# Region names


@pytest.mark.parametrize("region", INVALID_REGIONS)
def test_invalid_regions_are_refused_before_building_a_url(region: str) -> None:
    for resolve in (resolve_runtime_url, resolve_s3_host):
        with pytest.raises(ParamValidationError, match="Invalid region_name") as caught:
            resolve(region)
        assert caught.value.param == "region_name"
    for service in _PROBES:
        assert isinstance(botocore_urls(service, region)[False, False], Exception)


_HOST_LABEL = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")


@hypothesis.settings(max_examples=100, deadline=None)
@hypothesis.given(
    st.one_of(
        st.text(max_size=70),
        st.from_regex(r"[a-z]{2,4}-[a-z]{1,9}-[0-9]{1,2}", fullmatch=True),
    ),
    st.booleans(),
    st.booleans(),
)
def test_any_string_gives_a_clean_host_or_a_refusal(
    region: str, use_fips: bool, use_dualstack: bool
) -> None:
    # Whatever the caller passes, nothing but DNS labels reaches the URL: no path, no port,
    # no second host smuggled in through the region.
    for resolve, prefix in ((resolve_runtime_url, "https://"), (resolve_s3_host, "")):
        try:
            endpoint = resolve(region, use_fips=use_fips, use_dualstack=use_dualstack)
        except ParamValidationError:
            continue
        host = endpoint.removeprefix(prefix)
        assert all(_HOST_LABEL.fullmatch(label) for label in host.split("."))
        assert region in host.split(".") or region in {"us-east-1", "aws-global"}  # S3's


@pytest.mark.parametrize("region", ["a" * 63, "a", "us-east-1"])
def test_longest_and_shortest_labels_are_regions(region: str) -> None:
    assert resolve_runtime_url(region) == botocore_urls(RUNTIME, region)[False, False]


@pytest.mark.parametrize("region", [None, 1, b"us-east-1"])
def test_non_string_region_is_refused(region: object) -> None:
    with pytest.raises(ParamValidationError) as caught:
        resolve_runtime_url(region)  # type: ignore[arg-type]
    assert caught.value.param == "region_name"


@pytest.mark.parametrize("region", FIPS_PSEUDO_REGIONS)
def test_fips_pseudo_regions_are_refused_with_botocores_rewrite(region: str) -> None:
    # botocore rewrites "us-east-1-fips" to us-east-1 + FIPS with a warning; we ask the caller
    # to say so, because the rewritten region is also the one requests are signed for.
    bare = region.replace("fips-", "").replace("-fips", "")
    with pytest.raises(ParamValidationError, match="use_fips_endpoint=True") as caught:
        resolve_runtime_url(region)
    assert caught.value.param == "region_name"
    assert f"region_name={bare!r}" in str(caught.value)
    assert botocore_url_direct(RUNTIME, region, (False, False)) == resolve_runtime_url(
        bare, use_fips=True
    )
    with pytest.raises(ParamValidationError):
        resolve_s3_host(region)


# ---------------------------------------------------------------------------------------
# Custom endpoints


def test_explicit_endpoint_wins_over_the_environment() -> None:
    env = {RUNTIME_ENDPOINT_ENV_VAR: "http://service:1", "AWS_ENDPOINT_URL": "http://global:2"}
    assert (
        configured_endpoint_url("http://explicit:3", env, RUNTIME_ENDPOINT_ENV_VAR)
        == "http://explicit:3"
    )


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, None),
        ({"AWS_ENDPOINT_URL": "http://global:2"}, "http://global:2"),
        ({RUNTIME_ENDPOINT_ENV_VAR: "http://service:1"}, "http://service:1"),
        (
            {RUNTIME_ENDPOINT_ENV_VAR: "http://service:1", "AWS_ENDPOINT_URL": "http://global:2"},
            "http://service:1",
        ),
        ({RUNTIME_ENDPOINT_ENV_VAR: "", "AWS_ENDPOINT_URL": "http://global:2"}, "http://global:2"),
        ({"AWS_ENDPOINT_URL": ""}, None),
        ({S3_ENDPOINT_ENV_VAR: "http://s3:9"}, None),  # another service's variable
    ],
)
def test_environment_precedence(env: dict[str, str], expected: str | None) -> None:
    assert configured_endpoint_url(None, env, RUNTIME_ENDPOINT_ENV_VAR) == expected


@pytest.mark.parametrize("value", ["true", "TRUE", "True"])
def test_ignore_configured_endpoint_urls_ignores_the_environment_only(value: str) -> None:
    env = {
        "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": value,
        S3_ENDPOINT_ENV_VAR: "http://s3:9",
        "AWS_ENDPOINT_URL": "http://global:2",
    }
    assert configured_endpoint_url(None, env, S3_ENDPOINT_ENV_VAR) is None
    assert configured_endpoint_url("http://explicit:3", env, S3_ENDPOINT_ENV_VAR) == (
        "http://explicit:3"
    )


@pytest.mark.parametrize("value", ["false", "1", "yes", "", " true"])
def test_other_ignore_values_do_not_ignore(value: str) -> None:
    # botocore's ensure_boolean: only "true", in any case, is true.
    env = {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": value, "AWS_ENDPOINT_URL": "http://global:2"}
    assert configured_endpoint_url(None, env, S3_ENDPOINT_ENV_VAR) == "http://global:2"


ENV_SCENARIOS = [
    pytest.param(None, {}, id="nothing"),
    pytest.param("http://explicit:3", {}, id="explicit"),
    pytest.param(None, {"AWS_ENDPOINT_URL": "http://global:2"}, id="global"),
    pytest.param(None, {"SERVICE": "http://service:1"}, id="service"),
    pytest.param(
        None, {"SERVICE": "http://service:1", "AWS_ENDPOINT_URL": "http://global:2"}, id="both"
    ),
    pytest.param(
        "http://explicit:3",
        {"SERVICE": "http://service:1", "AWS_ENDPOINT_URL": "http://global:2"},
        id="explicit-and-env",
    ),
    pytest.param(
        None,
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "true", "AWS_ENDPOINT_URL": "http://global:2"},
        id="ignored",
    ),
    pytest.param(
        "http://explicit:3",
        {"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS": "True", "SERVICE": "http://service:1"},
        id="ignored-but-explicit",
    ),
    pytest.param(None, {"AWS_ENDPOINT_URL": "http://global:2/"}, id="trailing-slash"),
]


@pytest.mark.parametrize(
    ("service", "env_var", "aws_host"),
    [
        (
            "sagemaker-runtime",
            RUNTIME_ENDPOINT_ENV_VAR,
            "runtime.sagemaker.us-west-2.amazonaws.com",
        ),
        ("s3", S3_ENDPOINT_ENV_VAR, "s3.us-west-2.amazonaws.com"),
    ],
)
@pytest.mark.parametrize(("explicit", "env"), ENV_SCENARIOS)
def test_custom_endpoint_precedence_matches_botocore(
    monkeypatch: pytest.MonkeyPatch,
    service: str,
    env_var: str,
    aws_host: str,
    explicit: str | None,
    env: dict[str, str],
) -> None:
    real_env = {env_var if name == "SERVICE" else name: value for name, value in env.items()}
    for name, value in real_env.items():
        monkeypatch.setenv(name, value)
    client = _session().create_client(
        service,
        region_name="us-west-2",
        endpoint_url=explicit,
        aws_access_key_id="x",
        aws_secret_access_key="y",
    )
    try:
        theirs = client.meta.endpoint_url.rstrip("/")
    finally:
        client.close()
    ours = configured_endpoint_url(explicit, os.environ, env_var) or f"https://{aws_host}"
    assert ours == theirs


@pytest.mark.parametrize(
    ("url", "normalized"),
    [
        ("http://127.0.0.1:5000/", "http://127.0.0.1:5000"),
        ("http://localhost:4566", "http://localhost:4566"),
        ("https://example.com/prefix/", "https://example.com/prefix"),
        ("http://[::1]:8080/", "http://[::1]:8080"),
        ("HTTPS://S3.Example.COM", "HTTPS://S3.Example.COM"),
        ("http://localhost.:5000", "http://localhost.:5000"),
    ],
)
def test_valid_endpoint_urls_lose_only_the_trailing_slash(url: str, normalized: str) -> None:
    assert configured_endpoint_url(url, {}, S3_ENDPOINT_ENV_VAR) == normalized
    # We never accept what botocore would refuse.
    assert botocore.utils.is_valid_endpoint_url(url) or botocore.utils.is_valid_ipv6_endpoint_url(
        url
    )


INVALID_URLS = [
    "",
    "localhost:5000",
    "127.0.0.1:5000",
    "ftp://example.com",
    "http://",
    "http:///path",
    "http://host:99999",
    "http://host:port",
    "http://ho st",
    "http://host\n",
    "http://host\t/x",
    "http://host?x=1",
    "http://host/#frag",
    "http://-bad.example.com",
    "http://under_score:5000",
    "http://[::1",
    "http://[not-ipv6]:80",
    "http://ex\u00e4mple.com",
    "http://" + "a" * 64 + ".com",
]


@pytest.mark.parametrize("url", INVALID_URLS)
def test_invalid_endpoint_urls_are_refused(url: str) -> None:
    with pytest.raises(ParamValidationError, match="not a usable endpoint URL") as caught:
        configured_endpoint_url(url, {}, RUNTIME_ENDPOINT_ENV_VAR)
    assert caught.value.param == "endpoint_url"


def test_invalid_endpoint_url_from_the_environment_names_the_variable() -> None:
    env = {S3_ENDPOINT_ENV_VAR: "ftp://example.com"}
    with pytest.raises(ParamValidationError, match=S3_ENDPOINT_ENV_VAR) as caught:
        configured_endpoint_url(None, env, S3_ENDPOINT_ENV_VAR, param="s3_endpoint_url")
    assert caught.value.param == "s3_endpoint_url"


@pytest.mark.parametrize(
    "url",
    [
        "http://user:s3cr3t@example.com",
        "http://user:s3cr3t@example.com:99999",  # malformed as well
        "ftp://user:s3cr3t@example.com",
        "http://user:s3cr3t @example.com",
    ],
)
def test_credentials_in_an_endpoint_url_are_refused_and_never_echoed(url: str) -> None:
    with pytest.raises(ParamValidationError) as caught:
        configured_endpoint_url(url, {}, S3_ENDPOINT_ENV_VAR)
    assert "s3cr3t" not in str(caught.value)


def test_non_string_endpoint_url_is_refused() -> None:
    with pytest.raises(ParamValidationError) as caught:
        configured_endpoint_url(b"http://x", {}, S3_ENDPOINT_ENV_VAR)  # type: ignore[arg-type]
    assert caught.value.param == "endpoint_url"


@functools.cache
def _runtime_rule_set() -> EndpointProvider:
    return EndpointProvider(
        ruleset_data=_LOADER.load_service_model("sagemaker-runtime", "endpoint-rule-set-1"),
        partition_data=_LOADER.load_data("partitions"),
    )


@pytest.mark.parametrize(
    ("use_fips", "use_dualstack"), [(True, False), (False, True), (True, True)]
)
def test_custom_endpoint_with_fips_or_dualstack_is_refused_in_botocores_words(
    use_fips: bool, use_dualstack: bool
) -> None:
    url = "http://127.0.0.1:5000"
    with pytest.raises(botocore.exceptions.EndpointResolutionError) as theirs:
        _runtime_rule_set().resolve_endpoint(
            Endpoint=url, UseFIPS=use_fips, UseDualStack=use_dualstack
        )
    with pytest.raises(ParamValidationError) as ours:
        check_custom_endpoint_flags(
            url, use_fips=use_fips, use_dualstack=use_dualstack, param="endpoint_url"
        )
    assert str(theirs.value) in str(ours.value)
    assert ours.value.param == "endpoint_url"


@pytest.mark.parametrize(("use_fips", "use_dualstack"), FLAGS)
def test_flags_without_a_custom_endpoint_are_fine(use_fips: bool, use_dualstack: bool) -> None:
    check_custom_endpoint_flags(None, use_fips=use_fips, use_dualstack=use_dualstack, param="x")


def test_custom_endpoint_without_flags_is_fine() -> None:
    check_custom_endpoint_flags(
        "http://127.0.0.1:5000", use_fips=False, use_dualstack=False, param="s3_endpoint_url"
    )


# ---------------------------------------------------------------------------------------
# The module stays light


def test_importing_the_module_does_not_import_botocore() -> None:
    code = (
        "import sys, sagemaker_async._protocol.endpoints; "
        "print(sorted(m for m in sys.modules if m.partition('.')[0] == 'botocore'))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"
