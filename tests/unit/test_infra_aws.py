"""infra/aws/notifications.yaml, the AWS side of Amazon's notifications: cfn-lint (AWS's own
CloudFormation linter) finds nothing; the role may receive and delete on its queue and read the
dead-letter depth, nothing else; the trust is exactly issuer, audience and subject; the queue is
encrypted, keeps a few days and dead-letters; only Amazon's documented principal may send; the
outputs feed the app's settings; docs/deploy.md deploys it with one `aws cloudformation deploy`
whose parameters the template declares, and main.bicep takes what it outputs."""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Any

import pytest

from local.aws_emulator import Stack, load_template
from shared.ingestion import sqs_bridge

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "infra" / "aws" / "notifications.yaml"
AMAZON_NOTIFICATIONS_PRINCIPAL = "arn:aws:iam::437568002678:root"  # Amazon's SQS tutorial
TENANT = "11111111-1111-4111-8111-111111111111"
IDENTITY = "22222222-2222-4222-8222-222222222222"
AUDIENCE = "api://mfn-fulfilment-aws"
PARAMETERS = {
    "SellerId": "A1EXAMPLE",
    "EntraTenantId": TENANT,
    "ManagedIdentityObjectId": IDENTITY,
    "Audience": AUDIENCE,
}


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return load_template(TEMPLATE)


def _resolved(template: dict[str, Any], **parameters: str) -> Stack:
    """The template's values with sample parameters and made-up physical ids (no AWS call)."""
    stack = Stack(None, template, {**PARAMETERS, **parameters}, "mfn-notifications-A1EXAMPLE")  # type: ignore[arg-type]
    prefix = "arn:aws:sqs:eu-west-1:123456789012:"
    stack.physical = {
        "NotificationQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/mfn-notifications-A1EXAMPLE",
        "DeadLetterQueue": "https://sqs.eu-west-1.amazonaws.com/123456789012/mfn-notifications-A1EXAMPLE-dlq",
        "EntraOidcProvider": f"arn:aws:iam::123456789012:oidc-provider/sts.windows.net/{TENANT}/",
        "DrainRole": "mfn-notifications-A1EXAMPLE-DrainRole-ABC",
    }
    stack.attributes = {
        "NotificationQueue": {"Arn": prefix + "mfn-notifications-A1EXAMPLE"},
        "DeadLetterQueue": {"Arn": prefix + "mfn-notifications-A1EXAMPLE-dlq"},
        "DrainRole": {"Arn": "arn:aws:iam::123456789012:role/mfn-notifications-A1EXAMPLE-DrainRole-ABC"},
    }
    return stack


def _properties(stack: Stack, name: str) -> dict[str, Any]:
    properties: dict[str, Any] = stack.value(stack.template["Resources"][name]["Properties"])
    return properties


def test_cfn_lint_finds_nothing(judged: Any) -> None:
    from cfnlint.api import lint

    text = TEMPLATE.read_text(encoding="utf-8")
    matches = lint(text)  # its default rules: errors and warnings
    assert [str(m) for m in matches] == []
    planted = text.replace("VisibilityTimeout: 120", "VisibilityTimeout: 120\n      Visibility: 120", 1)
    assert any("E3002" in str(m) for m in lint(planted))  # the judge does judge
    judged("cfn-lint (AWS CloudFormation Linter)", "infra/aws/notifications.yaml: 0 findings")


def test_the_resources_are_the_queue_its_dead_letter_queue_policy_provider_and_role(
    template: dict[str, Any],
) -> None:
    kinds = {name: r["Type"] for name, r in template["Resources"].items()}
    assert kinds == {
        "DeadLetterQueue": "AWS::SQS::Queue",
        "NotificationQueue": "AWS::SQS::Queue",
        "NotificationQueuePolicy": "AWS::SQS::QueuePolicy",
        "EntraOidcProvider": "AWS::IAM::OIDCProvider",
        "DrainRole": "AWS::IAM::Role",
    }


def test_the_role_may_receive_and_delete_on_its_queue_and_read_the_dead_letter_depth_only(
    template: dict[str, Any],
) -> None:
    stack = _resolved(template)
    role = _properties(stack, "DrainRole")
    assert set(role) <= {"Description", "MaxSessionDuration", "AssumeRolePolicyDocument", "Policies"}
    (policy,) = role["Policies"]
    statements = policy["PolicyDocument"]["Statement"]
    granted = {
        (statement["Effect"], action, statement["Resource"])
        for statement in statements
        for action in ([statement["Action"]] if isinstance(statement["Action"], str) else statement["Action"])
    }
    queue = stack.attributes["NotificationQueue"]["Arn"]
    dead = stack.attributes["DeadLetterQueue"]["Arn"]
    assert granted == {
        ("Allow", "sqs:ReceiveMessage", queue),
        ("Allow", "sqs:DeleteMessage", queue),
        ("Allow", "sqs:GetQueueAttributes", dead),
    }
    assert not any("Condition" in s or "NotAction" in s or "NotResource" in s for s in statements)
    assert role["MaxSessionDuration"] == 3600
    # The drain calls exactly these (DeleteMessageBatch is authorised as sqs:DeleteMessage).
    source = (ROOT / "shared" / "ingestion" / "sqs_bridge.py").read_text(encoding="utf-8")
    called = set(re.findall(r"lambda sqs: sqs\.(\w+)\(", source))
    assert called == {"receive_message", "delete_message_batch", "get_queue_attributes"}


@pytest.mark.parametrize("existing", ["", "arn:aws:iam::123456789012:oidc-provider/sts.windows.net/x/"])
def test_the_trust_is_exactly_issuer_audience_and_subject(template: dict[str, Any], existing: str) -> None:
    stack = _resolved(template, ExistingOidcProviderArn=existing)
    trust = json.loads(_properties(stack, "DrainRole")["AssumeRolePolicyDocument"])
    (statement,) = trust["Statement"]
    provider = existing or stack.physical["EntraOidcProvider"]
    assert statement["Effect"] == "Allow" and statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": provider}
    issuer = f"sts.windows.net/{TENANT}/"
    assert statement["Condition"] == {"StringEquals": {f"{issuer}:aud": AUDIENCE, f"{issuer}:sub": IDENTITY}}
    oidc = template["Resources"]["EntraOidcProvider"]
    assert oidc["Condition"] == "CreateOidcProvider" and stack.conditions["CreateOidcProvider"] == (
        not existing
    )
    provider_props = stack.value(oidc["Properties"])
    assert provider_props == {"Url": f"https://{issuer}", "ClientIdList": [AUDIENCE]}


def test_the_queues_are_encrypted_keep_a_few_days_and_dead_letter(template: dict[str, Any]) -> None:
    stack = _resolved(template)
    queue, dead = _properties(stack, "NotificationQueue"), _properties(stack, "DeadLetterQueue")
    parameters = template["Parameters"]
    for props in (queue, dead):
        assert props["SqsManagedSseEnabled"] is True
        assert int(props["MessageRetentionPeriod"]) <= 7 * 86400
    assert int(parameters["MessageRetentionSeconds"]["Default"]) == 4 * 86400
    assert int(parameters["MessageRetentionSeconds"]["MaxValue"]) == 7 * 86400
    assert int(parameters["DeadLetterRetentionSeconds"]["MaxValue"]) == 7 * 86400
    assert queue["RedrivePolicy"]["deadLetterTargetArn"] == stack.attributes["DeadLetterQueue"]["Arn"]
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) == 30
    assert dead["RedriveAllowPolicy"]["sourceQueueArns"] == [stack.attributes["NotificationQueue"]["Arn"]]
    assert queue["VisibilityTimeout"] == sqs_bridge.RECEIVE_VISIBILITY_S
    # The one checkov skip (SSE-SQS, which its CloudFormation check cannot see) says why.
    for name in ("NotificationQueue", "DeadLetterQueue"):
        (skip,) = template["Resources"][name]["Metadata"]["checkov"]["skip"]
        assert skip["id"] == "CKV_AWS_27" and "SqsManagedSseEnabled" in skip["comment"]


def test_only_amazons_notification_principal_may_send_and_only_over_tls(template: dict[str, Any]) -> None:
    stack = _resolved(template)
    policy = _properties(stack, "NotificationQueuePolicy")
    assert policy["Queues"] == [stack.physical["NotificationQueue"]]
    allow, deny = policy["PolicyDocument"]["Statement"]
    assert allow["Effect"] == "Allow" and allow["Principal"] == {"AWS": AMAZON_NOTIFICATIONS_PRINCIPAL}
    assert sorted(allow["Action"]) == ["sqs:GetQueueAttributes", "sqs:SendMessage"]
    assert allow["Resource"] == stack.attributes["NotificationQueue"]["Arn"] and "Condition" not in allow
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_the_outputs_are_the_apps_settings(template: dict[str, Any]) -> None:
    stack = _resolved(template)
    entry = stack.value(template["Outputs"]["NotificationQueuesEntry"]["Value"])
    env = {"NOTIFICATION_QUEUES": entry, "AWS_WEB_IDENTITY_AUDIENCE": AUDIENCE}
    (queue,) = sqs_bridge.load_bridge_settings(env, ["A1EXAMPLE"]).queues
    assert queue.queue.arn == stack.attributes["NotificationQueue"]["Arn"]
    assert queue.dead_letter.arn == stack.attributes["DeadLetterQueue"]["Arn"]
    assert queue.role_arn == stack.attributes["DrainRole"]["Arn"]


def test_the_deploy_doc_runs_one_cloudformation_deploy_with_declared_parameters(
    template: dict[str, Any],
) -> None:
    deploy = (ROOT / "docs" / "deploy.md").read_text(encoding="utf-8")
    blocks = [
        b for b in re.findall(r"```bash\n(.*?)```", deploy, flags=re.DOTALL) if "cloudformation deploy" in b
    ]
    (block,) = blocks
    words = shlex.split(block.replace("\\\n", " "))
    assert words[:3] == ["aws", "cloudformation", "deploy"]
    assert words[words.index("--template-file") + 1] == "infra/aws/notifications.yaml"
    overrides = words[words.index("--parameter-overrides") + 1 :]
    given = {w.split("=", 1)[0] for w in overrides}
    declared = template["Parameters"]
    required = {name for name, spec in declared.items() if "Default" not in spec}
    assert required <= given <= set(declared)
    assert "entraTenantId" in block and "functionPrincipalId" in block
    from pycep import BicepParser

    main = BicepParser().parse(text=(ROOT / "infra" / "main.bicep").read_text(encoding="utf-8"))
    assert {"entraTenantId", "functionPrincipalId"} <= set(main["outputs"])
    assert {"notificationQueues", "awsWebIdentityAudience", "drainNotificationsSchedule"} <= set(
        main["parameters"]
    )
    settings = main["modules"]["functionApp"]["config"]["params"]["appSettings"]
    assert settings["NOTIFICATION_QUEUES"] == "notificationQueues"
    assert settings["AWS_WEB_IDENTITY_AUDIENCE"] == "awsWebIdentityAudience"
    assert settings["DRAIN_NOTIFICATIONS_SCHEDULE"] == "drainNotificationsSchedule"
