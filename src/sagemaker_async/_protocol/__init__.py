"""The pure layer: what goes on the wire and what comes back, with no I/O and no clock.

Parameters and their validation (:mod:`.params`), endpoints (:mod:`.endpoints`), SigV4
(:mod:`.sigv4`), requests as values (:mod:`.requests`), the InvokeEndpointAsync, S3,
multipart and SQS wire formats (:mod:`.invoke`, :mod:`.s3`, :mod:`.s3_multipart`,
:mod:`.sqs`), notification bodies (:mod:`.notifications`), which of two result objects is
fresh (:mod:`.freshness`) and the retry decisions (:mod:`.retry`). Every function here is
a function of its arguments, so the wire is tested against botocore byte for byte without
a socket. Nothing here imports ``sagemaker_async._io`` (``scripts/check_layers.py``).

Empty on purpose: importing one module of the layer does not import the others.
"""
