"""Reads a CloudFormation template written in YAML with its short-form tags (`!Ref`,
`!GetAtt`, `!Sub`, ...) into plain data in the long form (`{"Ref": ...}`,
`{"Fn::GetAtt": [...]}`), as the JSON form of a template spells them."""
import yaml


class _Tagged(yaml.SafeLoader):
    pass


def _tag(loader, suffix, node):
    name = "Ref" if suffix == "Ref" else "Fn::" + suffix
    if isinstance(node, yaml.ScalarNode):
        value = loader.construct_scalar(node)
        if suffix == "GetAtt":
            # `!GetAtt Table.StreamArn` is `["Table", "StreamArn"]` in the long form.
            value = value.split(".", 1)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    return {name: value}


_Tagged.add_multi_constructor("!", _tag)


def load(path):
    with open(path) as f:
        return yaml.load(f, Loader=_Tagged)
