"""Validates a JSON document against the vendored CSAF 2.0 schemas, offline.

usage: validate_schema.py SCHEMA_DIR (csaf|provider) DOCUMENT
Exit 0 when valid; 1 with the errors on stderr otherwise.
"""
import json
import pathlib
import sys

import jsonschema
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7, DRAFT202012

schema_dir = pathlib.Path(sys.argv[1])
kind = sys.argv[2]
doc = json.loads(pathlib.Path(sys.argv[3]).read_text())


def load(name):
    return json.loads((schema_dir / name).read_text())


resources = []
# CSAF refers to the FIRST CVSS schemas by their URLs without the "?date" query their own ids
# carry, so they are registered under the URL CSAF uses (and their ids dropped).
for name, uri in [
    ("cvss-v2.0.json", "https://www.first.org/cvss/cvss-v2.0.json"),
    ("cvss-v3.0.json", "https://www.first.org/cvss/cvss-v3.0.json"),
    ("cvss-v3.1.json", "https://www.first.org/cvss/cvss-v3.1.json"),
]:
    body = load(name)
    body.pop("$id", None)
    body.pop("id", None)
    resources.append((uri, Resource.from_contents(body, default_specification=DRAFT7)))
# The provider schema takes its publisher definition from the CSAF schema, by the CSAF $id.
csaf = load("csaf_json_schema.json")
resources.append((csaf["$id"], Resource.from_contents(csaf, default_specification=DRAFT202012)))
registry = Registry().with_resources(resources)

schema = {"csaf": csaf, "provider": load("provider_json_schema.json")}[kind]
cls = jsonschema.validators.validator_for(schema)
validator = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
for e in errors:
    print(f"{'/'.join(str(p) for p in e.path)}: {e.message[:300]}", file=sys.stderr)
sys.exit(1 if errors else 0)
