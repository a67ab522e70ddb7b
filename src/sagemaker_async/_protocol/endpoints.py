"""Where requests go: SageMaker Runtime, S3 and SQS endpoints, resolved without botocore.

botocore finds an endpoint at run time: it imports a quarter of a second of modules, reads
an older endpoint table (endpoints.json, 1.2 MB) and interprets a JSON rule set per service.
For our services the answer boils down to a table of partitions (which regions belong
where, which DNS suffixes they use) and a few special cases:

- SageMaker Runtime has two FIPS host shapes (``runtime-fips.sagemaker.{r}`` in ``aws``,
  ``runtime.sagemaker-fips.{r}`` elsewhere) and GovCloud's FIPS host is the plain one;
- S3 keeps the legacy global host ``s3.amazonaws.com`` for ``us-east-1`` (botocore's default
  ``us_east_1_regional_endpoint=legacy``) and has no FIPS endpoints in China;
- botocore refuses dual-stack where its older table has no dual-stack variant;
- "us-east-1-fips"-style pseudo-regions, which botocore rewrites with a warning, are refused
  with the region and flag to use instead (the rewritten region is also the signing one).

The table and the special cases live here as small constants. None of it is taken on
faith: ``tests/test_endpoints.py`` resolves every region botocore knows, with FIPS and
dual-stack on and off, through botocore itself and compares, so a botocore release that adds
a partition or moves a suffix fails that test and points at the constant to update.

Custom endpoints follow botocore's precedence (argument, ``AWS_ENDPOINT_URL_<SERVICE>``,
``AWS_ENDPOINT_URL``, ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS``) for the environment part; the
shared config file is the caller's business.

Pure: no I/O, no clock, no environment reads (the caller passes the environment in), and no
botocore import.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from urllib.parse import urlsplit

from ..errors import ParamValidationError

__all__ = [
    "RUNTIME_ENDPOINT_ENV_VAR",
    "S3_ENDPOINT_ENV_VAR",
    "SQS_ENDPOINT_ENV_VAR",
    "check_custom_endpoint_flags",
    "configured_endpoint_url",
    "resolve_runtime_url",
    "resolve_s3_host",
    "resolve_sqs_url",
]

RUNTIME_ENDPOINT_ENV_VAR = "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME"
S3_ENDPOINT_ENV_VAR = "AWS_ENDPOINT_URL_S3"
SQS_ENDPOINT_ENV_VAR = "AWS_ENDPOINT_URL_SQS"
_GLOBAL_ENDPOINT_ENV_VAR = "AWS_ENDPOINT_URL"
_IGNORE_CONFIGURED_ENV_VAR = "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS"

_FIPS_PARAM = "use_fips_endpoint"
_DUALSTACK_PARAM = "use_dualstack_endpoint"
_REGION_PARAM = "region_name"


@dataclass(frozen=True, slots=True)
class _Partition:
    """One partition of botocore's ``partitions.json``, and what its older table adds."""

    name: str
    region_regex: re.Pattern[str]
    # Regions partitions.json lists by name that region_regex does not match: the "-global"
    # pseudo-regions. botocore puts a region in the first partition that lists or matches it.
    extra_regions: frozenset[str]
    dns_suffix: str
    dualstack_dns_suffix: str
    supports_fips: bool = True
    supports_dualstack: bool = True
    # False where botocore's older table (endpoints.json, read when a client is created) has
    # no dual-stack variant: botocore then refuses dual-stack for regions matching
    # region_regex. The "-global" pseudo-regions escape that check, in botocore and here.
    legacy_dualstack: bool = True

    def contains(self, region: str) -> bool:
        return region in self.extra_regions or self.region_regex.match(region) is not None


# In partitions.json order: the first match wins, and a region nobody matches is in "aws".
_PARTITIONS: tuple[_Partition, ...] = (
    _Partition(
        name="aws",
        region_regex=re.compile(r"^(us|eu|ap|sa|ca|me|af|il|mx)\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-global"}),
        dns_suffix="amazonaws.com",
        dualstack_dns_suffix="api.aws",
    ),
    _Partition(
        name="aws-cn",
        region_regex=re.compile(r"^cn\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-cn-global"}),
        dns_suffix="amazonaws.com.cn",
        dualstack_dns_suffix="api.amazonwebservices.com.cn",
    ),
    _Partition(
        name="aws-eusc",
        region_regex=re.compile(r"^eusc\-(de)\-\w+\-\d+$"),
        extra_regions=frozenset(),
        dns_suffix="amazonaws.eu",
        dualstack_dns_suffix="api.amazonwebservices.eu",
    ),
    _Partition(
        name="aws-iso",
        region_regex=re.compile(r"^us\-iso\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-iso-global"}),
        dns_suffix="c2s.ic.gov",
        dualstack_dns_suffix="api.aws.ic.gov",
    ),
    _Partition(
        name="aws-iso-b",
        region_regex=re.compile(r"^us\-isob\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-iso-b-global"}),
        dns_suffix="sc2s.sgov.gov",
        dualstack_dns_suffix="api.aws.scloud",
    ),
    _Partition(
        name="aws-iso-e",
        region_regex=re.compile(r"^eu\-isoe\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-iso-e-global"}),
        dns_suffix="cloud.adc-e.uk",
        dualstack_dns_suffix="api.cloud-aws.adc-e.uk",
        legacy_dualstack=False,
    ),
    _Partition(
        name="aws-iso-f",
        region_regex=re.compile(r"^us\-isof\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-iso-f-global"}),
        dns_suffix="csp.hci.ic.gov",
        dualstack_dns_suffix="api.aws.hci.ic.gov",
        legacy_dualstack=False,
    ),
    _Partition(
        name="aws-us-gov",
        region_regex=re.compile(r"^us\-gov\-\w+\-\d+$"),
        extra_regions=frozenset({"aws-us-gov-global"}),
        dns_suffix="amazonaws.com",
        dualstack_dns_suffix="api.aws",
    ),
)

# The SageMaker Runtime rule set names these partitions in its FIPS (not dual-stack) branch;
# every other partition gets "runtime.sagemaker-fips.{region}.{dns_suffix}".
_RUNTIME_FIPS_HOSTS: Mapping[str, str] = MappingProxyType(
    {
        "aws": "runtime-fips.sagemaker.{region}.amazonaws.com",
        "aws-us-gov": "runtime.sagemaker.{region}.amazonaws.com",
    }
)

# SQS's FIPS (not dual-stack) host is the plain one in these partitions.
_SQS_PLAIN_FIPS_PARTITIONS = frozenset({"aws-us-gov"})

# The S3 rule set refuses FIPS in these partitions ("Partition does not support FIPS").
_S3_NO_FIPS_PARTITIONS = frozenset({"aws-cn"})
# Without FIPS or dual-stack, these S3 regions use the partition's global host "s3.{suffix}".
# For us-east-1 that is botocore's default (AWS_S3_US_EAST_1_REGIONAL_ENDPOINT=legacy).
_S3_GLOBAL_HOST_REGIONS = frozenset({"us-east-1", "aws-global"})
# With FIPS or dual-stack, the "aws-global" pseudo-region resolves as us-east-1.
_S3_PSEUDO_REGION_STAND_INS: Mapping[str, str] = MappingProxyType({"aws-global": "us-east-1"})

# botocore's validate_region_name: one DNS label of letters, digits and hyphens, not all
# digits. Unlike botocore, empty is refused here rather than producing a broken URL.
_REGION_RE = re.compile(r"(?![0-9]+\Z)(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
# One DNS label of an endpoint URL's host (botocore's is_valid_endpoint_url).
_HOST_LABEL_RE = re.compile(r"(?!-)[A-Za-z0-9-]{1,63}(?<!-)")
_MAX_HOST_LENGTH = 255


def resolve_runtime_url(region: str, *, use_fips: bool = False, use_dualstack: bool = False) -> str:
    """The SageMaker Runtime endpoint URL for ``region``.

    E.g. ``https://runtime.sagemaker.us-east-1.amazonaws.com``; the host botocore resolves.

    Raises ``ParamValidationError`` (naming ``region_name``, ``use_fips_endpoint`` or
    ``use_dualstack_endpoint``) wherever botocore would refuse.
    """
    region = _validated_region(region)
    partition = _partition_of(region)
    _check_legacy_dualstack(partition, region, use_dualstack=use_dualstack)
    _check_partition_supports(partition, region, use_fips=use_fips, use_dualstack=use_dualstack)
    return "https://" + _runtime_host(
        partition, region, use_fips=use_fips, use_dualstack=use_dualstack
    )


def resolve_s3_host(region: str, *, use_fips: bool = False, use_dualstack: bool = False) -> str:
    """The S3 host for ``region``, without a bucket: e.g. ``s3.us-west-2.amazonaws.com``.

    Virtual-hosted requests go to ``{bucket}.{host}``, the host botocore resolves for a
    virtual-hostable bucket. Raises ``ParamValidationError`` wherever
    botocore would refuse.
    """
    region = _validated_region(region)
    partition = _partition_of(region)
    _check_legacy_dualstack(partition, region, use_dualstack=use_dualstack)
    if use_fips and partition.name in _S3_NO_FIPS_PARTITIONS:
        raise ParamValidationError(
            f"S3 has no FIPS endpoints in partition {partition.name} (region {region!r}): "
            f"set {_FIPS_PARAM}=False.",
            param=_FIPS_PARAM,
        )
    if not use_fips and not use_dualstack and region in _S3_GLOBAL_HOST_REGIONS:
        return f"s3.{partition.dns_suffix}"
    region = _S3_PSEUDO_REGION_STAND_INS.get(region, region)
    service = "s3-fips" if use_fips else "s3"
    dualstack = ".dualstack" if use_dualstack else ""
    return f"{service}{dualstack}.{region}.{partition.dns_suffix}"


def resolve_sqs_url(region: str, *, use_fips: bool = False, use_dualstack: bool = False) -> str:
    """The SQS endpoint URL for ``region``, e.g. ``https://sqs.us-east-1.amazonaws.com``.

    SQS's rule set is the plain one, except that GovCloud's FIPS host is the ordinary host
    (as for SageMaker Runtime). Raises ``ParamValidationError`` wherever botocore would
    refuse.
    """
    region = _validated_region(region)
    partition = _partition_of(region)
    _check_legacy_dualstack(partition, region, use_dualstack=use_dualstack)
    _check_partition_supports(partition, region, use_fips=use_fips, use_dualstack=use_dualstack)
    if use_fips and use_dualstack:
        return f"https://sqs-fips.{region}.{partition.dualstack_dns_suffix}"
    if use_fips:
        service = "sqs" if partition.name in _SQS_PLAIN_FIPS_PARTITIONS else "sqs-fips"
        return f"https://{service}.{region}.{partition.dns_suffix}"
    if use_dualstack:
        return f"https://sqs.{region}.{partition.dualstack_dns_suffix}"
    return f"https://sqs.{region}.{partition.dns_suffix}"


def configured_endpoint_url(
    explicit: str | None,
    env: Mapping[str, str],
    service_env_var: str,
    *,
    param: str = "endpoint_url",
) -> str | None:
    """The custom endpoint URL to use instead of the AWS one, or ``None`` for AWS's.

    Precedence as in botocore: ``explicit``, then ``env[service_env_var]`` (e.g.
    ``AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME``), then ``env["AWS_ENDPOINT_URL"]``; empty variables
    count as unset, and ``AWS_IGNORE_CONFIGURED_ENDPOINT_URLS=true`` (any case) ignores both
    variables but never ``explicit``. The URL must be http(s) with a valid host; a trailing
    slash is dropped. ``param`` names the argument in a ``ParamValidationError``.
    """
    if explicit is not None:
        return _validated_endpoint_url(explicit, source=param, param=param)
    if env.get(_IGNORE_CONFIGURED_ENV_VAR, "").lower() == "true":
        return None
    for name in (service_env_var, _GLOBAL_ENDPOINT_ENV_VAR):
        value = env.get(name)
        if value:
            return _validated_endpoint_url(
                value, source=f"environment variable {name}", param=param
            )
    return None


def check_custom_endpoint_flags(
    url: str | None, *, use_fips: bool, use_dualstack: bool, param: str
) -> None:
    """Refuse FIPS or dual-stack together with a custom endpoint, as botocore's rule set does.

    A custom endpoint is used exactly as given, so a FIPS or dual-stack request for it could
    not be honoured; failing loudly beats silently sending non-FIPS traffic.
    """
    if url is None:
        return
    if use_fips:
        raise ParamValidationError(
            "Invalid Configuration: FIPS and custom endpoint are not supported: "
            f"{param} is {url!r}, so set {_FIPS_PARAM}=False (or drop the custom endpoint).",
            param=param,
        )
    if use_dualstack:
        raise ParamValidationError(
            "Invalid Configuration: Dualstack and custom endpoint are not supported: "
            f"{param} is {url!r}, so set {_DUALSTACK_PARAM}=False (or drop the custom endpoint).",
            param=param,
        )


def _validated_region(region: object) -> str:
    if not isinstance(region, str):
        raise ParamValidationError(
            f"{_REGION_PARAM} must be a string such as 'us-east-1', not {type(region).__name__}.",
            param=_REGION_PARAM,
        )
    if _REGION_RE.fullmatch(region) is None:
        raise ParamValidationError(
            f"Invalid {_REGION_PARAM} {region!r}: a region is one DNS label of 1-63 letters, "
            "digits and hyphens, such as 'us-east-1'.",
            param=_REGION_PARAM,
        )
    if "fips-" in region or "-fips" in region:
        # botocore rewrites such pseudo-regions with a warning; the rewritten region is the
        # one requests must be signed for, so we ask for it instead of guessing.
        bare = region.replace("fips-", "").replace("-fips", "")
        raise ParamValidationError(
            f"{_REGION_PARAM} {region!r} is a FIPS pseudo-region: pass {_REGION_PARAM}={bare!r} "
            f"with {_FIPS_PARAM}=True instead.",
            param=_REGION_PARAM,
        )
    return region


def _partition_of(region: str) -> _Partition:
    for partition in _PARTITIONS:
        if partition.contains(region):
            return partition
    return _PARTITIONS[0]


def _check_legacy_dualstack(partition: _Partition, region: str, *, use_dualstack: bool) -> None:
    if use_dualstack and not partition.legacy_dualstack and partition.region_regex.match(region):
        raise ParamValidationError(
            f"Dual-stack endpoints are not available in partition {partition.name} "
            f"(region {region!r}): set {_DUALSTACK_PARAM}=False.",
            param=_DUALSTACK_PARAM,
        )


def _check_partition_supports(
    partition: _Partition, region: str, *, use_fips: bool, use_dualstack: bool
) -> None:
    # The rule set's own checks, from partitions.json's supportsFIPS / supportsDualStack.
    if use_fips and not partition.supports_fips:
        raise ParamValidationError(
            f"FIPS endpoints are not available in partition {partition.name} "
            f"(region {region!r}): set {_FIPS_PARAM}=False.",
            param=_FIPS_PARAM,
        )
    if use_dualstack and not partition.supports_dualstack:
        raise ParamValidationError(
            f"Dual-stack endpoints are not available in partition {partition.name} "
            f"(region {region!r}): set {_DUALSTACK_PARAM}=False.",
            param=_DUALSTACK_PARAM,
        )


def _runtime_host(
    partition: _Partition, region: str, *, use_fips: bool, use_dualstack: bool
) -> str:
    if use_fips and use_dualstack:
        return f"runtime.sagemaker-fips.{region}.{partition.dualstack_dns_suffix}"
    if use_fips:
        template = _RUNTIME_FIPS_HOSTS.get(
            partition.name, "runtime.sagemaker-fips.{region}.{suffix}"
        )
        return template.format(region=region, suffix=partition.dns_suffix)
    if use_dualstack:
        return f"runtime.sagemaker.{region}.{partition.dualstack_dns_suffix}"
    return f"runtime.sagemaker.{region}.{partition.dns_suffix}"


def _validated_endpoint_url(url: object, *, source: str, param: str) -> str:
    if not isinstance(url, str):
        raise ParamValidationError(
            f"{source} must be a URL string, not {type(url).__name__}.", param=param
        )
    problem = _endpoint_url_problem(url)
    if problem is not None:
        raise ParamValidationError(
            f"{source} is not a usable endpoint URL: {problem}. Expected something like "
            "'https://runtime.sagemaker.us-east-1.amazonaws.com' or 'http://127.0.0.1:5000'.",
            param=param,
        )
    return url.rstrip("/")


def _endpoint_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` as an endpoint, or ``None``; never echoes credentials."""
    shown = "the URL" if "@" in url else repr(url)  # user info may hold a password
    if any(char.isspace() or not char.isprintable() for char in url):
        return f"{shown} contains whitespace or control characters"
    try:
        parts = urlsplit(url)
        _ = parts.port  # raises ValueError for a port that is not a number in range
    except ValueError:
        return f"{shown} is malformed"
    if parts.username is not None or parts.password is not None:
        return "it must not contain credentials (user:password@)"
    if parts.scheme not in ("http", "https"):
        return f"{shown} must start with http:// or https://"
    if parts.query or parts.fragment:
        return f"{shown} must not have a query string or fragment"
    # Brackets mark an IPv6 literal (older Pythons' urlsplit does not check what is inside).
    bracketed = parts.netloc.startswith("[")
    if not parts.hostname or not _is_valid_host(parts.hostname, bracketed=bracketed):
        return f"{shown} has no valid host name or IP address"
    return None


def _is_valid_host(host: str, *, bracketed: bool) -> bool:
    if bracketed:
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            return False
        return True
    name = host.removesuffix(".")
    if len(name) > _MAX_HOST_LENGTH:
        return False
    return all(_HOST_LABEL_RE.fullmatch(label) for label in name.split("."))
