"""Serving's /openapi.json is a valid OpenAPI 3.0 document (checked by openapi-spec-validator),
so client generators and API gateways accept it as served."""
from openapi_spec_validator import validate

from serving.http_api import openapi_document
from streamrec.settings import Settings


def test_the_served_document_passes_the_openapi_validator():
    doc = openapi_document(Settings())
    validate(doc)
    answer = doc["paths"]["/recommendations"]["get"]["responses"]["200"]["content"]["application/json"]["schema"]
    assert answer["properties"]["state_time"]["nullable"] is True   # OpenAPI 3.0 spells null this way
