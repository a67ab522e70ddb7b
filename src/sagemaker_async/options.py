"""The InvokeEndpointAsync options as data, for front ends that build on the client.

``INVOKE_FIELDS`` describes every header parameter (keyword, header, wire type, the model's
constraint, command-line flag, whether a manifest or a batch may set it), in the model's
order; ``OPTION_FIELDS`` is the same without ``input_location`` (the payload's location,
positional in ``invoke_endpoint_async``). ``validate_invoke`` checks a whole call without
sending it. The command line and the batch manifest are built from these, so they can
never drift from the client.
"""

from ._protocol.params import (
    INVOKE_FIELDS,
    MAX_INLINE_BODY,
    OPTION_FIELDS,
    InvokeField,
    InvokeOptions,
    InvokeParams,
    validate_invoke,
)

__all__ = [
    "INVOKE_FIELDS",
    "MAX_INLINE_BODY",
    "OPTION_FIELDS",
    "InvokeField",
    "InvokeOptions",
    "InvokeParams",
    "validate_invoke",
]
