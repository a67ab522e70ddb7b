"""The I/O layer, thin on top of :mod:`sagemaker_async._protocol`: it sends, waits and reads.

The HTTP/1.1 engine (:mod:`.http11`), the one signed sender that signs, retries, logs and
sends every request (:mod:`.sender`), credentials and settings (:mod:`.credentials`,
:mod:`.config`), S3 object operations and uploads (:mod:`.s3_objects`, :mod:`.payloads`,
:mod:`.multipart_upload`), result bodies (:mod:`.streams`), waiting for results
(:mod:`.results`, :mod:`.schedule`, :mod:`.listener`), worker threads (:mod:`.threads`)
and the clock and randomness seams (:mod:`.runtime`). The facade
(:mod:`sagemaker_async._client`) sits on top; nothing here imports it.

Empty on purpose: importing one module of the layer does not import the others.
"""
