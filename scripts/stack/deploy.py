#!/usr/bin/env python3
"""Deploys template.yaml to the AWS emulator as `sam deploy` does: each function's zip
and the template go to a bucket, then CloudFormation creates the stack from the
template's URL with the parameters given. It then adds what the emulator leaves out
(docs/deployment.md, "Emulator gaps") and returns the stack's outputs and resources.

Used by e2e.py, which starts what the parameters point at first.
"""
import json
import os
import re
import sys
import time

import boto3

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
import cfn_template  # noqa: E402

STACK = "pisync"
BUCKET = "pisync-deploy"
REGION = "eu-west-1"
ROOT = os.path.join(os.path.dirname(__file__), "..", "..")


def client(service, endpoint):
    return boto3.client(
        service,
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id="test",
        aws_secret_access_key="test",
    )


def package(template, zips_dir, s3):
    """Uploads each function's zip and points its CodeUri at it (what `sam package` does)."""
    s3.create_bucket(Bucket=BUCKET, CreateBucketConfiguration={"LocationConstraint": REGION})
    for resource in template["Resources"].values():
        # Fn::ForEach entries are lists; the functions are plain resources.
        if not isinstance(resource, dict) or resource.get("Type") != "AWS::Serverless::Function":
            continue
        binary = resource["Metadata"]["BuildProperties"]["Binary"]
        key = f"{binary}.zip"
        with open(os.path.join(zips_dir, binary, "bootstrap.zip"), "rb") as f:
            s3.put_object(Bucket=BUCKET, Key=key, Body=f.read())
        resource["Properties"]["CodeUri"] = {"Bucket": BUCKET, "Key": key}
    s3.put_object(Bucket=BUCKET, Key="template.json", Body=json.dumps(template).encode())


def create_stack(cfn, endpoint, parameters):
    cfn.create_stack(
        StackName=STACK,
        TemplateURL=f"{endpoint}/{BUCKET}/template.json",
        Parameters=[{"ParameterKey": k, "ParameterValue": v} for k, v in parameters.items()],
        Capabilities=["CAPABILITY_IAM", "CAPABILITY_AUTO_EXPAND"],
    )
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        stack = cfn.describe_stacks(StackName=STACK)["Stacks"][0]
        status = stack["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            break
        time.sleep(1)
    if status != "CREATE_COMPLETE":
        for event in cfn.describe_stack_events(StackName=STACK)["StackEvents"]:
            if event.get("ResourceStatus", "").endswith("FAILED"):
                print(f"  {event['LogicalResourceId']}: {event.get('ResourceStatusReason')}", file=sys.stderr)
        raise SystemExit(f"stack {STACK}: {status}")
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


class Resolver:
    """Evaluates the intrinsic functions the API definition SAM generated contains
    (Ref, Fn::Sub, Fn::If over the template's conditions, Fn::Equals, Fn::Not) with
    the stack's parameters and resources, as CloudFormation does when it creates it."""

    def __init__(self, template, parameters, resources, region, account):
        self.conditions = template.get("Conditions", {})
        self.names = dict(resources)
        for name, spec in template.get("Parameters", {}).items():
            self.names[name] = parameters.get(name, str(spec.get("Default", "")))
        self.names.update({"AWS::Region": region, "AWS::Partition": "aws", "AWS::AccountId": account,
                           "AWS::URLSuffix": "amazonaws.com", "AWS::NoValue": None})

    def name(self, reference):
        # `${X.Arn}` appears only in the routes' integration URIs: X is a function.
        if reference.endswith(".Arn"):
            return f"arn:aws:lambda:{self.names['AWS::Region']}:{self.names['AWS::AccountId']}:function:" \
                + self.names[reference[: -len(".Arn")]]
        return self.names[reference]

    def holds(self, condition):
        return bool(self.value(self.conditions[condition]))

    def value(self, v):
        if isinstance(v, list):
            return [self.value(x) for x in v]
        if not isinstance(v, dict):
            return v
        if set(v) == {"Ref"}:
            return self.name(v["Ref"])
        if set(v) == {"Fn::Sub"}:
            return re.sub(r"\$\{([^}]+)\}", lambda m: self.name(m.group(1)), v["Fn::Sub"])
        if set(v) == {"Fn::If"}:
            condition, then, otherwise = v["Fn::If"]
            return self.value(then if self.holds(condition) else otherwise)
        if set(v) == {"Fn::Equals"}:
            a, b = self.value(v["Fn::Equals"])
            return str(a) == str(b)
        if set(v) == {"Fn::Not"}:
            return not self.value(v["Fn::Not"][0])
        return {k: self.value(x) for k, x in v.items()}


def add_routes(cfn, apigw, parameters, resources):
    """Emulator gap: the HTTP API is created without the routes and authorizer of the
    definition SAM generated. They are added here from that definition (the processed
    template), exactly as it states them: one Lambda proxy integration per route
    (payload 2.0), the JWT authorizer on every route that names it."""
    processed = cfn.get_template(StackName=STACK, TemplateStage="Processed")["TemplateBody"]
    if isinstance(processed, str):
        processed = json.loads(processed)
    api_id = resources["HttpApi"]
    definition = processed["Resources"]["HttpApi"]["Properties"]["Body"]
    resolve = Resolver(processed, parameters, resources, REGION, "000000000000")
    authorizers = {}
    for name, scheme in definition["components"]["securitySchemes"].items():
        spec = resolve.value(scheme["x-amazon-apigateway-authorizer"])
        jwt = spec["jwtConfiguration"]
        authorizers[name] = apigw.create_authorizer(
            ApiId=api_id,
            Name=name,
            AuthorizerType="JWT",
            IdentitySource=[spec["identitySource"]],
            JwtConfiguration={"Issuer": jwt["issuer"], "Audience": jwt["audience"]},
        )["AuthorizerId"]
    routes = 0
    for path, methods in definition["paths"].items():
        for method, operation in methods.items():
            integration = resolve.value(operation["x-amazon-apigateway-integration"])
            function_arn = integration["uri"].split("/functions/", 1)[1].rsplit("/invocations", 1)[0]
            integration_id = apigw.create_integration(
                ApiId=api_id,
                IntegrationType="AWS_PROXY",
                IntegrationUri=function_arn,
                PayloadFormatVersion=integration["payloadFormatVersion"],
            )["IntegrationId"]
            (scheme,) = [name for requirement in operation.get("security", [{}]) for name in requirement] or ["NONE"]
            auth = {}
            if scheme != "NONE":
                auth = {"AuthorizationType": "JWT", "AuthorizerId": authorizers[scheme]}
            apigw.create_route(
                ApiId=api_id,
                RouteKey=f"{method.upper()} {path}",
                Target=f"integrations/{integration_id}",
                **auth,
            )
            routes += 1
    print(f"emulator gap: added {routes} routes and {len(authorizers)} authorizer to API {api_id}")


def take_named_queries(template):
    """Emulator gap: CloudFormation here has no AWS::Athena::NamedQuery. They are taken
    out of the template and created through the Athena API once the stack exists."""
    resources = template["Resources"]
    named = {k: v for k, v in resources.items() if isinstance(v, dict) and v.get("Type") == "AWS::Athena::NamedQuery"}
    for name in named:
        del resources[name]
    return named


def add_named_queries(athena, named, resources):
    for spec in named.values():
        p = spec["Properties"]
        athena.create_named_query(
            Name=p["Name"],
            Description=p["Description"],
            Database=resources[p["Database"]["Ref"]],
            WorkGroup=resources[p["WorkGroup"]["Ref"]],
            QueryString=p["QueryString"],
        )
    print(f"emulator gap: added {len(named)} Athena named queries")


def deploy(endpoint, zips_dir, parameters):
    """Creates the stack; its outputs, and each resource's physical id by logical id."""
    template = cfn_template.load(os.path.join(ROOT, "template.yaml"))
    named = take_named_queries(template)
    package(template, zips_dir, client("s3", endpoint))
    cfn = client("cloudformation", endpoint)
    outputs = create_stack(cfn, endpoint, parameters)
    resources = {
        r["LogicalResourceId"]: r.get("PhysicalResourceId")
        for r in cfn.describe_stack_resources(StackName=STACK)["StackResources"]
    }
    print(f"stack {STACK}: CREATE_COMPLETE, {len(resources)} resources")
    add_routes(cfn, client("apigatewayv2", endpoint), parameters, resources)
    add_named_queries(client("athena", endpoint), named, resources)
    return outputs, resources
