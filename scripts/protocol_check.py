#!/usr/bin/env python3
"""Validates Baton's JSON frames against docs/protocol.schema.json (JSON Schema 2020-12).

    protocol_check.py [--schema FILE] --def event events.jsonl ...   every line is a status event
    protocol_check.py [--schema FILE] tagged.tsv ...                 every line is DEF<TAB>JSON

DEF is a name under the schema's $defs: event, run, cancel, report, result, lease, ack, nack, control,
control.reply, query, query.reply. Prints one line per failure and a summary; exits 1 if any line fails.
Needs the jsonschema module (Debian: python3-jsonschema).
"""
import argparse
import json
import os
import sys
from collections import Counter

import jsonschema

HERE = os.path.dirname(os.path.abspath(__file__))


def validators(schema):
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    made = {}

    def get(name):
        if name not in schema["$defs"]:
            raise KeyError(f"no definition {name!r} in the schema")
        if name not in made:
            made[name] = cls({"$ref": f"#/$defs/{name}", "$defs": schema["$defs"]})
        return made[name]

    return get


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--schema", default=os.path.join(HERE, "..", "docs", "protocol.schema.json"))
    parser.add_argument("--def", dest="definition", help="validate every line against this definition")
    parser.add_argument("files", nargs="+")
    args = parser.parse_args()
    with open(args.schema) as f:
        get = validators(json.load(f))
    checked = Counter()
    failures = 0
    for path in args.files:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                line = line.rstrip("\n")
                if not line:
                    continue
                name, text = (args.definition, line) if args.definition else line.split("\t", 1)
                where = f"{path}:{number} ({name})"
                try:
                    document = json.loads(text)
                except ValueError as error:
                    print(f"{where}: not JSON: {error}")
                    failures += 1
                    continue
                errors = sorted(get(name).iter_errors(document), key=lambda e: list(e.absolute_path))
                for error in errors[:3]:
                    at = "/".join(str(p) for p in error.absolute_path) or "(top)"
                    print(f"{where}: {at}: {error.message[:300]}")
                if errors:
                    failures += 1
                kind = document.get("type", name) if name == "event" and isinstance(document, dict) else name
                checked[kind] += 1
    total = sum(checked.values())
    print(f"checked {total} documents of {len(checked)} kinds, {failures} failed: "
          + ", ".join(f"{k} {v}" for k, v in sorted(checked.items())))
    return 1 if failures or total == 0 else 0


if __name__ == "__main__":
    sys.exit(main())
