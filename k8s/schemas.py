"""Turn the Kubernetes JSON schemas of the PyPI wheel kubernetes-validate into
standalone files that kubeconform reads from a local schema location.

The wheel's `vX.Y.Z-local[-strict]/<kind>-<group>-<version>.json` files point their
`$ref`s at one shared `/api/_definitions.json`, which kubeconform cannot follow from a
file location. Each schema is written again with the definitions it reaches copied
into its own `$defs` (and its refs made local), as
`<out>/vX.Y.Z-standalone[-strict]/<kind>-<group>-<version>.json`, the layout of
kubeconform's default location.

usage: schemas.py WHEEL OUTDIR VERSION...   (e.g. v1.34.0)
"""

import json
import sys
import zipfile

REF_PREFIX = "/api/_definitions.json#/$defs/"
LOCAL_PREFIX = "#/$defs/"


def rewrite(node, reached):
    """Make every shared ref local; collect the names it reaches."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value[len(REF_PREFIX):]
                reached.add(name)
                out[key] = LOCAL_PREFIX + name
            elif key == "$ref" and isinstance(value, str) and value.startswith(LOCAL_PREFIX):
                # Inside _definitions.json the refs are already local to it.
                reached.add(value[len(LOCAL_PREFIX):])
                out[key] = value
            else:
                out[key] = rewrite(value, reached)
        return out
    if isinstance(node, list):
        return [rewrite(item, reached) for item in node]
    return node


def standalone(schema, definitions):
    reached = set()
    top = rewrite(schema, reached)
    defs, todo = {}, list(reached)
    while todo:
        name = todo.pop()
        if name in defs:
            continue
        if name not in definitions:
            raise SystemExit(f"schemas.py: {name} is referenced but not in _definitions.json")
        more = set()
        defs[name] = rewrite(definitions[name], more)
        todo.extend(more - defs.keys())
    if defs:
        top["$defs"] = defs
    return top


def main(argv):
    if len(argv) < 4:
        raise SystemExit(__doc__)
    wheel, outdir, versions = argv[1], argv[2], argv[3:]
    import os

    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        written = 0
        for version in versions:
            for flavour in ("", "-strict"):
                src = f"kubernetes_validate/kubernetes-json-schema/{version}-local{flavour}/"
                files = [n for n in names if n.startswith(src) and n.endswith(".json")]
                if not files:
                    raise SystemExit(f"schemas.py: no schemas for {version}{flavour} in {wheel}")
                definitions = json.loads(zf.read(src + "_definitions.json"))["$defs"]
                dst = os.path.join(outdir, f"{version}-standalone{flavour}")
                os.makedirs(dst, exist_ok=True)
                for name in files:
                    base = name[len(src):]
                    if base in ("_definitions.json", "all.json") or "/" in base:
                        continue
                    schema = json.loads(zf.read(name))
                    with open(os.path.join(dst, base), "w") as f:
                        json.dump(standalone(schema, definitions), f, separators=(",", ":"))
                    written += 1
    print(f"schemas.py: {written} standalone schemas for {', '.join(versions)} in {outdir}")


if __name__ == "__main__":
    main(sys.argv)
