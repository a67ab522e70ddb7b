"""Where a client's settings come from when the caller does not pass them.

The same places a boto3 user expects, in the same order: the argument, the environment
(``AWS_REGION``, ``AWS_DEFAULT_REGION``, ``AWS_MAX_ATTEMPTS``, ``AWS_USE_FIPS_ENDPOINT``,
``AWS_USE_DUALSTACK_ENDPOINT``), then the profile's section of the shared config file. The
config file is parsed here with ``configparser`` rather than through botocore, so a client
with explicit settings never pays for importing botocore.
"""

from __future__ import annotations

import configparser
import os
from collections.abc import Mapping
from dataclasses import dataclass

from .._protocol.retry import DEFAULT_MAX_ATTEMPTS
from ..errors import ParamValidationError

__all__ = ["ProfileConfig", "load_profile_config", "resolve_settings"]


@dataclass(frozen=True, slots=True)
class ProfileConfig:
    """The settings of one profile of the shared config file that this client reads."""

    region: str | None = None
    max_attempts: str | None = None
    use_fips_endpoint: str | None = None
    use_dualstack_endpoint: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """Everything resolved that shapes requests, before any I/O."""

    region: str
    max_attempts: int
    use_fips: bool
    use_dualstack: bool


def load_profile_config(env: Mapping[str, str], profile_name: str | None) -> ProfileConfig:
    """Read the profile's section of ``AWS_CONFIG_FILE`` (default ``~/.aws/config``)."""
    path = os.path.expanduser(env.get("AWS_CONFIG_FILE") or "~/.aws/config")
    profile = profile_name or env.get("AWS_PROFILE") or env.get("AWS_DEFAULT_PROFILE") or "default"
    parser = configparser.RawConfigParser()
    try:
        parser.read(path, encoding="utf-8")
    except (configparser.Error, OSError, UnicodeDecodeError):
        return ProfileConfig()
    for section in (f"profile {profile}", profile):
        if parser.has_section(section):
            values = parser[section]
            return ProfileConfig(
                region=values.get("region") or None,
                max_attempts=values.get("max_attempts") or None,
                use_fips_endpoint=values.get("use_fips_endpoint") or None,
                use_dualstack_endpoint=values.get("use_dualstack_endpoint") or None,
            )
    return ProfileConfig()


def _flag(name: str, explicit: bool, env_value: str | None, file_value: str | None) -> bool:
    if explicit:
        return True
    raw = env_value if env_value is not None else file_value
    if raw is None:
        return False
    lowered = raw.strip().lower()
    if lowered not in ("true", "false"):
        raise ParamValidationError(f"{name} must be 'true' or 'false', got {raw!r}", param=name)
    return lowered == "true"


def _max_attempts(explicit: int | None, env_value: str | None, file_value: str | None) -> int:
    if explicit is not None:
        value: object = explicit
        source = "max_attempts"
    elif env_value is not None:
        value, source = env_value, "AWS_MAX_ATTEMPTS"
    elif file_value is not None:
        value, source = file_value, "max_attempts (config file)"
    else:
        return DEFAULT_MAX_ATTEMPTS
    if isinstance(value, str):
        try:
            value = int(value)
        except ValueError:
            raise ParamValidationError(
                f"{source} must be a whole number, got {value!r}", param="max_attempts"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ParamValidationError(
            f"{source} must be an int of at least 1 (total attempts), got {value!r}",
            param="max_attempts",
        )
    return value


def resolve_settings(
    *,
    region_name: str | None,
    profile_name: str | None,
    max_attempts: int | None,
    use_fips_endpoint: bool,
    use_dualstack_endpoint: bool,
    env: Mapping[str, str],
) -> Settings:
    """Resolve region, attempts and endpoint flags; no region at all is an error."""
    region = region_name or env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION")
    needs_file = (
        region is None
        or (max_attempts is None and "AWS_MAX_ATTEMPTS" not in env)
        or (not use_fips_endpoint and "AWS_USE_FIPS_ENDPOINT" not in env)
        or (not use_dualstack_endpoint and "AWS_USE_DUALSTACK_ENDPOINT" not in env)
    )
    profile = load_profile_config(env, profile_name) if needs_file else ProfileConfig()
    region = region or profile.region
    if not region:
        raise ParamValidationError(
            "No region: pass region_name=, set AWS_REGION or AWS_DEFAULT_REGION, "
            "or set region in the profile's config",
            param="region_name",
        )
    return Settings(
        region=region,
        max_attempts=_max_attempts(max_attempts, env.get("AWS_MAX_ATTEMPTS"), profile.max_attempts),
        use_fips=_flag(
            "use_fips_endpoint",
            use_fips_endpoint,
            env.get("AWS_USE_FIPS_ENDPOINT"),
            profile.use_fips_endpoint,
        ),
        use_dualstack=_flag(
            "use_dualstack_endpoint",
            use_dualstack_endpoint,
            env.get("AWS_USE_DUALSTACK_ENDPOINT"),
            profile.use_dualstack_endpoint,
        ),
    )
