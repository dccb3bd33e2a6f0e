"""The Python side of tests/interop.rs: real third-party SBOM tools run on medsec's files.

usage:
  interop.py cdx-validate SCHEMA_DIR FILE...  validate CycloneDX 1.5 JSON files two ways: with
      cyclonedx-python-lib's JsonStrictValidator, and with python-jsonschema against the
      vendored bom-1.5.schema.json in SCHEMA_DIR. Prints {file: {"cyclonedx-python-lib":
      [errors], "schema": [errors]}} as JSON.
  interop.py cdx-load FILE...  deserialize each file with cyclonedx-python-lib's Bom.from_json
      and print {file: {"components": n, "purls": [...]}} as JSON (nested components counted).
  interop.py pyspdxtools ARGS...  run the pyspdxtools CLI (spdx-tools) with ARGS, in this
      interpreter, so it is the same installation as the imports checked here.

Exit status 3, with the pip command on stderr, when a package is missing, so the Rust test can
fail with that advice instead of an import traceback.
"""
import json
import pathlib
import sys

PIP = "pip install 'cyclonedx-python-lib[json-validation]' spdx-tools"


def need(modules):
    import importlib

    for m in modules:
        try:
            importlib.import_module(m)
        except ImportError as e:
            print(f"MISSING PYTHON PACKAGE ({e}); run: {PIP}", file=sys.stderr)
            sys.exit(3)


def cdx_validate(schema_dir, files):
    need(["cyclonedx.validation.json", "jsonschema", "referencing"])
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator
    import jsonschema
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT7

    schema_dir = pathlib.Path(schema_dir)
    load = lambda n: json.loads((schema_dir / n).read_text())
    # bom-1.5.schema.json refers to its helper schemas by relative names, which resolve against
    # its $id under http://cyclonedx.org/schema/; serve them from the vendored copies (offline).
    registry = Registry().with_resources(
        (f"http://cyclonedx.org/schema/{n}", Resource.from_contents(load(n), default_specification=DRAFT7))
        for n in ["spdx.schema.json", "jsf-0.82.schema.json"]
    )
    schema = load("bom-1.5.schema.json")
    cls = jsonschema.validators.validator_for(schema)
    vendored = cls(schema, registry=registry, format_checker=cls.FORMAT_CHECKER)
    strict = JsonStrictValidator(SchemaVersion.V1_5)
    out = {}
    for f in files:
        text = pathlib.Path(f).read_text()
        lib_errors = strict.validate_str(text, all_errors=True) or []
        schema_errors = vendored.iter_errors(json.loads(text))
        out[f] = {
            "cyclonedx-python-lib": [str(e)[:500] for e in lib_errors],
            "schema": [f"{'/'.join(map(str, e.absolute_path))}: {e.message[:400]}" for e in schema_errors],
        }
    print(json.dumps(out))


def cdx_load(files):
    need(["cyclonedx.model.bom"])
    from cyclonedx.model.bom import Bom

    def walk(components):
        for c in components:
            yield c
            yield from walk(c.components)

    out = {}
    for f in files:
        bom = Bom.from_json(json.loads(pathlib.Path(f).read_text()))
        cs = list(walk(bom.components))
        out[f] = {
            "components": len(cs),
            "purls": sorted(str(c.purl) for c in cs if c.purl is not None),
            "metadata_component": bom.metadata.component.name if bom.metadata.component else None,
        }
    print(json.dumps(out))


def pyspdxtools(args):
    need(["spdx_tools.spdx.clitools.pyspdxtools"])
    from spdx_tools.spdx.clitools.pyspdxtools import main

    main(args=args, prog_name="pyspdxtools")


if __name__ == "__main__":
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "cdx-validate":
        cdx_validate(rest[0], rest[1:])
    elif cmd == "cdx-load":
        cdx_load(rest)
    elif cmd == "pyspdxtools":
        pyspdxtools(rest)
    else:
        sys.exit(f"unknown command {cmd}")
