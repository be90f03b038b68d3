"""A job's shape (`jobqueue.models.SHAPE_SQL`) hashes every field of the job that the shape's test
against a worker reads (`dispatch.matching.shape_matches_worker`): jobs of one shape are eligible on
exactly the same workers, which is what lets an offer decide once per shape."""

from __future__ import annotations

import re

from dispatch.matching import customer_served, shape_matches_worker
from jobqueue.models import SHAPE_SQL


def _job_fields(sql: str) -> set[str]:
    return set(re.findall(r"\bj\.(\w+)", sql))


def test_the_shape_hashes_every_job_field_the_shape_test_reads():
    read = _job_fields(shape_matches_worker())
    assert read == {
        "type",
        "required_capabilities",
        "required_models",
        "required_gpu_memory_gb",
        "required_pool",
        "requires_dedicated_worker",
        "tenant_id",
        "customer_id",
    }
    hashed = set(re.findall(r"\b([a-z_]+)\b", SHAPE_SQL))
    assert read <= hashed, read - hashed


def test_what_each_job_s_customer_decides_is_left_out_of_the_shape_test():
    assert _job_fields(customer_served()) == {"tenant_id", "customer_id"}
    # ... and in the shape only for a job that needs a worker dedicated to its customer.
    assert re.search(r"CASE WHEN requires_dedicated_worker\s+THEN tenant_id", SHAPE_SQL)
