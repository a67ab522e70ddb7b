"""The benchmark: sagemaker-async against aiobotocore, boto3 and a raw-asyncio limit.

Run ``bash bench/setup_venv.sh && bench/.venv/bin/python -m bench.run`` (see bench/run.py).
"""
