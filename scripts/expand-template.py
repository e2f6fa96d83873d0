#!/usr/bin/env python3
"""Writes template.yaml with its Fn::ForEach loops expanded (as the
AWS::LanguageExtensions transform does) to the path given, for checkov, which does not
expand them itself. Only what the template uses is supported: a loop over a literal
list, `${Name}` in keys and in Fn::Sub strings, and `Ref: {Fn::Sub: ...}`."""
import sys

import yaml

import cfn_template


def substitute(value, name, item):
    if isinstance(value, str):
        return value.replace("${%s}" % name, item)
    if isinstance(value, list):
        return [substitute(v, name, item) for v in value]
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            v = substitute(v, name, item)
            if k == "Ref" and isinstance(v, dict) and set(v) == {"Fn::Sub"} and "${" not in v["Fn::Sub"]:
                v = v["Fn::Sub"]
            out[substitute(k, name, item)] = v
        return out
    return value


def expand(resources):
    out = {}
    for key, value in resources.items():
        if key.startswith("Fn::ForEach::"):
            name, items, body = value
            for item in items:
                out.update(substitute(body, name, item))
        else:
            out[key] = value
    return out


def main():
    source, target = sys.argv[1], sys.argv[2]
    template = cfn_template.load(source)
    template["Resources"] = expand(template["Resources"])
    transform = template.get("Transform")
    if isinstance(transform, list):
        template["Transform"] = [t for t in transform if t != "AWS::LanguageExtensions"]
    with open(target, "w") as f:
        yaml.safe_dump(template, f, sort_keys=False)


if __name__ == "__main__":
    main()
