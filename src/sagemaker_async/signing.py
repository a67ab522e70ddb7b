"""SigV4 for the front ends: the local endpoint signs its own S3 calls with it.

The same signer the client uses (checked byte for byte against botocore's ``SigV4Auth``
in the tests): ``SigV4Signer(region, service).sign_request(request, credentials,
amz_date=format_amz_date(time.time()), payload_hash=...)`` signs an ``httpx.Request`` in
place. Pure: no clock, no I/O.
"""

from ._protocol.sigv4 import EMPTY_SHA256, FrozenCredentials, SigV4Signer, format_amz_date

__all__ = ["EMPTY_SHA256", "FrozenCredentials", "SigV4Signer", "format_amz_date"]
