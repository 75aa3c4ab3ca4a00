"""The local AWS of `make run` and the integration tests: moto's server (PyPI `moto[server]`) on
127.0.0.1 and a free port, started and stopped by its process id like Azurite (local/emulators.py).

It serves SQS, STS and IAM. `AwsEmulator.deploy_notifications(...)` creates a seller's stack from
the real template, infra/aws/notifications.yaml: a small interpreter of the intrinsic functions the
template uses (Ref, Fn::GetAtt, Fn::Sub, Fn::If, Fn::Equals) makes the same boto3 calls
CloudFormation would, so the queues, the dead-letter redrive, the queue policy, the IAM OIDC
provider and the role exist locally exactly as the template declares them (moto's own
CloudFormation does not know AWS::IAM::OIDCProvider or AWS::SQS::QueuePolicy). moto does not
enforce IAM, so what the role may do is checked on the template itself
(tests/unit/test_infra_aws.py); here the app's real path runs over the wire: STS
AssumeRoleWithWebIdentity, then ReceiveMessage / DeleteMessageBatch with the credentials it gave.

Only the stand-ins sign with the emulator's placeholder keys ("Amazon" sending notifications, a
test looking into a queue); the app never holds an AWS key, locally either.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import re
import subprocess
import sys
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from local.emulators import ROOT, _wait_for_port, free_port, stop_pids

TEMPLATE = ROOT / "infra" / "aws" / "notifications.yaml"
REGION = "eu-west-1"
ACCOUNT = "123456789012"  # moto's default account
# moto accepts any signature; these placeholders are not credentials of anything.
PLACEHOLDER_KEY_ID = "testing"
PLACEHOLDER_SECRET = "testing"  # noqa: S105  # pragma: allowlist secret
# The local trust: a made-up tenant and managed identity, and the audience the app asks for.
LOCAL_TENANT = "00000000-0000-4000-8000-00000000a0a0"
LOCAL_IDENTITY = "00000000-0000-4000-8000-00000000b0b0"
LOCAL_AUDIENCE = "api://mfn-fulfilment-aws-local"


@dataclass
class AwsEmulator:
    port: int
    pids: list[int]

    def __post_init__(self) -> None:
        self._clients: dict[str, Any] = {}

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def client(self, service: str) -> Any:
        """A boto3 client of the emulator, signed with the placeholder keys (stand-ins only)."""
        import boto3

        for name in ("boto3", "botocore"):  # they log message bodies at DEBUG, the run's level
            logging.getLogger(name).setLevel(logging.WARNING)
        if service not in self._clients:
            self._clients[service] = boto3.session.Session().client(
                service,
                region_name=REGION,
                endpoint_url=self.endpoint,
                aws_access_key_id=PLACEHOLDER_KEY_ID,
                aws_secret_access_key=PLACEHOLDER_SECRET,
            )
        return self._clients[service]

    def app_settings(self, stacks: Mapping[str, Mapping[str, str]]) -> dict[str, str]:
        """The app settings that point the bridge at the emulator, for the deployed stacks."""
        entries: dict[str, Any] = {}
        for stack in stacks.values():
            entries.update(json.loads(stack["NotificationQueuesEntry"]))
        return {
            "NOTIFICATION_QUEUES": json.dumps(entries),
            "AWS_WEB_IDENTITY_AUDIENCE": LOCAL_AUDIENCE,
            "AWS_ENDPOINT": self.endpoint,
            "DRAIN_NOTIFICATIONS_WAIT_SECONDS": "0",
        }

    def deploy_notifications(
        self,
        seller_id: str,
        *,
        existing_provider_arn: str | None = None,
        overrides: Mapping[str, str] | None = None,
    ) -> dict[str, str]:
        """Create one seller's stack from infra/aws/notifications.yaml; returns its outputs. An
        account holds one IAM OIDC provider per issuer: as docs/deploy.md says, a later seller's
        stack reuses the one that exists (None: look it up)."""
        if existing_provider_arn is None:
            existing_provider_arn = self.oidc_provider_arn()
        parameters = {
            "SellerId": seller_id,
            "EntraTenantId": LOCAL_TENANT,
            "ManagedIdentityObjectId": LOCAL_IDENTITY,
            "Audience": LOCAL_AUDIENCE,
            "ExistingOidcProviderArn": existing_provider_arn,
            **dict(overrides or {}),
        }
        return Stack(self, load_template(), parameters, f"mfn-notifications-{seller_id}").deploy()

    def oidc_provider_arn(self, tenant: str = LOCAL_TENANT) -> str:
        """The account's IAM OIDC provider for Entra ID's issuer of `tenant`, or ""."""
        iam = self.client("iam")
        for provider in iam.list_open_id_connect_providers()["OpenIDConnectProviderList"]:
            arn = str(provider["Arn"])
            if arn.endswith(f"/sts.windows.net/{tenant}/"):
                return arn
        return ""

    def queue_depth(self, queue_arn: str) -> dict[str, int]:
        sqs = self.client("sqs")
        answer = sqs.get_queue_attributes(
            QueueUrl=queue_url(self.endpoint, queue_arn),
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )
        attributes = answer["Attributes"]
        return {
            "visible": int(attributes["ApproximateNumberOfMessages"]),
            "inFlight": int(attributes["ApproximateNumberOfMessagesNotVisible"]),
        }

    def send(self, queue_arn: str, body: str) -> None:
        self.client("sqs").send_message(QueueUrl=queue_url(self.endpoint, queue_arn), MessageBody=body)


def queue_url(endpoint: str, queue_arn: str) -> str:
    _, _, _, _, account, name = queue_arn.split(":", 5)
    return f"{endpoint}/{account}/{name}"


# ---- the template, deployed the way CloudFormation would ---------------------------------------


def load_template(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template with its short-form intrinsic functions (!Ref, !Sub ...) as their long form."""
    from cfnlint.decode import cfn_yaml

    template: dict[str, Any] = json.loads(json.dumps(cfn_yaml.load(str(path))))
    return template


_SUB = re.compile(r"\$\{([^}!]+)\}")


class Stack:
    """Resolves the template's intrinsic functions and creates its resources in moto."""

    def __init__(
        self, aws: AwsEmulator, template: Mapping[str, Any], parameters: Mapping[str, str], name: str
    ):
        self.aws = aws
        self.template = template
        self.name = name
        declared = template.get("Parameters", {})
        missing = [p for p, spec in declared.items() if p not in parameters and "Default" not in spec]
        if missing:
            raise ValueError(f"parameters without a value: {missing}")
        self.parameters = {p: str(parameters.get(p, spec.get("Default", ""))) for p, spec in declared.items()}
        self.pseudo = {"AWS::Partition": "aws", "AWS::Region": REGION, "AWS::AccountId": ACCOUNT}
        self.conditions = {
            name: bool(self.value(expression)) for name, expression in template.get("Conditions", {}).items()
        }
        self.physical: dict[str, str] = {}
        self.attributes: dict[str, dict[str, str]] = {}

    # ---- intrinsic functions ----------------------------------------------------------------

    def ref(self, name: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        if name in self.pseudo:
            return self.pseudo[name]
        return self.physical[name]

    def value(self, node: Any) -> Any:
        if isinstance(node, list):
            return [self.value(item) for item in node]
        if not isinstance(node, dict):
            return node
        if set(node) == {"Ref"}:
            return self.ref(node["Ref"])
        if set(node) == {"Fn::GetAtt"}:
            resource, attribute = node["Fn::GetAtt"]
            return self.attributes[resource][attribute]
        if set(node) == {"Fn::Equals"}:
            left, right = self.value(node["Fn::Equals"])
            return left == right
        if set(node) == {"Fn::If"}:
            condition, then, otherwise = node["Fn::If"]
            return self.value(then if self.conditions[condition] else otherwise)
        if set(node) == {"Fn::Sub"}:
            spec = node["Fn::Sub"]
            text, variables = (spec, {}) if isinstance(spec, str) else (spec[0], self.value(spec[1]))
            return _SUB.sub(lambda m: self._substitute(m.group(1), variables), text)
        return {key: self.value(item) for key, item in node.items()}

    def _substitute(self, name: str, variables: Mapping[str, Any]) -> str:
        if name in variables:
            return str(variables[name])
        if "." in name and name.split(".", 1)[0] in self.attributes:
            resource, attribute = name.split(".", 1)
            return self.attributes[resource][attribute]
        return self.ref(name)

    # ---- resources --------------------------------------------------------------------------

    def deploy(self) -> dict[str, str]:
        pending = {
            name: resource
            for name, resource in self.template["Resources"].items()
            if self.conditions.get(resource.get("Condition", ""), True)
        }
        while pending:
            ready = [name for name, resource in pending.items() if self._resolvable(resource)]
            if not ready:
                raise ValueError(f"unresolvable resources: {sorted(pending)}")
            for name in ready:
                self._create(name, pending.pop(name))
        return {name: str(self.value(output["Value"])) for name, output in self.template["Outputs"].items()}

    def _resolvable(self, resource: Mapping[str, Any]) -> bool:
        try:
            self.value(resource.get("Properties", {}))
        except KeyError:
            return False
        return True

    def _create(self, name: str, resource: Mapping[str, Any]) -> None:
        kind = resource["Type"]
        props = self.value(resource.get("Properties", {}))
        if kind == "AWS::SQS::Queue":
            self._queue(name, props)
        elif kind == "AWS::SQS::QueuePolicy":
            sqs = self.aws.client("sqs")
            for url in props["Queues"]:
                sqs.set_queue_attributes(
                    QueueUrl=url, Attributes={"Policy": json.dumps(props["PolicyDocument"])}
                )
            self.physical[name] = f"{self.name}-{name}"
        elif kind == "AWS::IAM::OIDCProvider":
            answer = self.aws.client("iam").create_open_id_connect_provider(
                Url=props["Url"], ClientIDList=props.get("ClientIdList", []), ThumbprintList=[]
            )
            self.physical[name] = answer["OpenIDConnectProviderArn"]
        elif kind == "AWS::IAM::Role":
            self._role(name, props)
        else:
            raise ValueError(f"{kind} is not a resource type this interpreter creates")

    def _queue(self, name: str, props: Mapping[str, Any]) -> None:
        attributes = {
            key: json.dumps(value)
            if isinstance(value, dict)
            else str(value).lower()
            if isinstance(value, bool)
            else str(value)
            for key, value in props.items()
            if key not in ("QueueName", "Tags")
        }
        sqs = self.aws.client("sqs")
        url = sqs.create_queue(QueueName=props["QueueName"], Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        self.physical[name] = url
        self.attributes[name] = {"Arn": arn, "QueueName": props["QueueName"], "QueueUrl": url}

    def _role(self, name: str, props: Mapping[str, Any]) -> None:
        iam = self.aws.client("iam")
        trust = props["AssumeRolePolicyDocument"]
        role_name = f"{self.name}-{name}-{uuid.uuid4().hex[:8]}"[:64]
        answer = iam.create_role(
            RoleName=role_name,
            AssumeRolePolicyDocument=trust if isinstance(trust, str) else json.dumps(trust),
            MaxSessionDuration=int(props.get("MaxSessionDuration", 3600)),
            Description=str(props.get("Description", "")),
        )
        for policy in props.get("Policies", []):
            iam.put_role_policy(
                RoleName=role_name,
                PolicyName=policy["PolicyName"],
                PolicyDocument=json.dumps(policy["PolicyDocument"]),
            )
        self.physical[name] = role_name
        self.attributes[name] = {"Arn": answer["Role"]["Arn"], "RoleId": answer["Role"]["RoleId"]}


# ---- start / stop -----------------------------------------------------------------------------


def start(log_dir: Path | None = None) -> AwsEmulator:
    port = free_port()
    log_dir = log_dir or ROOT / ".run"
    log_dir.mkdir(parents=True, exist_ok=True)
    proc = subprocess.Popen(  # noqa: S603 - fixed argv: this interpreter and the pinned moto
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=open(log_dir / "moto.log", "wb"),  # noqa: SIM115 - owned by the child
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_for_port(port, proc, "moto server")
    except BaseException:
        stop_pids([proc.pid])
        raise
    return AwsEmulator(port, [proc.pid])


def stop(emulator: AwsEmulator) -> None:
    stop_pids(emulator.pids)


@contextmanager
def running(log_dir: Path | None = None) -> Iterator[AwsEmulator]:
    emulator = start(log_dir)
    try:
        yield emulator
    finally:
        stop(emulator)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Start or stop the local AWS (moto's server).")
    parser.add_argument("verb", choices=["start", "stop"])
    parser.add_argument("--state", type=Path, default=ROOT / ".run" / "aws-emulator.json")
    parser.add_argument("--seller", action="append", default=[], help="deploy this seller's stack")
    args = parser.parse_args(argv)
    if args.verb == "start":
        emulator = start()
        args.state.parent.mkdir(parents=True, exist_ok=True)
        args.state.write_text(json.dumps(asdict(emulator)))
        stacks = {seller: emulator.deploy_notifications(seller) for seller in args.seller}
        sys.stdout.write(
            json.dumps({"endpoint": emulator.endpoint, **emulator.app_settings(stacks)}, indent=2) + "\n"
        )
    elif args.state.exists():
        with contextlib.suppress(ValueError, KeyError):
            stop_pids(json.loads(args.state.read_text())["pids"])
        args.state.unlink()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
