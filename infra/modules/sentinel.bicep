// Microsoft Sentinel on the Log Analytics workspace, the scheduled analytics rules, and what
// happens when one opens an incident. Each rule's query lives in infra/rules/<id>.kql; its runbook
// is docs/security.md "Incident response runbooks" under the same id.
//
// Response: one automation rule per analytics rule runs when that rule's incident is created. It
// assigns the owner of the rule's team (security or operations), labels the incident with its rule
// and, unless the rule only informs, notify:<team> (an Azure Monitor log alert turns that label
// into an e-mail through the team's action group: infra/modules/notifications.bicep), adds the
// runbook's steps as incident tasks, and, for rules whose incidents may involve personal data
// (personalData), runs the PII playbook (infra/modules/playbook.bicep), which starts the 24-hour
// clock for the notice to Amazon.
//
// Incidents group a rule's alerts by their entities (matchingMethod AllEntities), so each such rule
// maps the entity columns its query projects (Microsoft Sentinel entity types and identifiers:
// Account by AadUserId, the Entra object id; AzureResource by ResourceId). pipeline-silent reports
// sources that sent nothing, so it has no entity to map: its alerts group into one incident
// (AnyAlert). tests/unit/test_infra.py and tests/unit/test_kusto_analysis.py check the mappings
// against the queries.
//
// Fields of a rule besides the analytics rule's own: team (who owns its incidents), personalData
// (its incidents may involve buyer data: run the PII playbook), page (notify the team's action
// group; false for rules that only inform).

@description('The Log Analytics workspace that Sentinel watches.')
param workspaceName string

@description('Object ids allowed to touch Key Vault and Cosmos DB data: the function identity and the operators.')
param expectedPrincipals array

param runbookUrl string = 'docs/security.md#incident-response-runbooks'

@description('Entra object id of the user who owns security incidents; empty leaves them unassigned.')
param securityOwnerObjectId string = ''

@description('Entra object id of the user who owns operational incidents; empty leaves them unassigned.')
param operationsOwnerObjectId string = ''

@description('Resource id of the PII incident playbook (Logic App).')
param playbookId string

@description('Entra object ids of the break-glass (emergency access) accounts, for the break-glass-sign-in rule.')
param breakGlassAccountIds array = []

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource onboarding 'Microsoft.SecurityInsights/onboardingStates@2024-03-01' = {
  name: 'default'
  scope: workspace
  properties: {}
}

var rules = [
  {
    id: 'pii-in-traces'
    title: 'PII pattern in application traces (redaction failure)'
    severity: 'High'
    tactics: [
      'Collection'
      'Exfiltration'
    ]
    team: 'security'
    personalData: true
    page: true
    frequency: 'PT15M'
    period: 'PT15M'
    query: loadTextContent('../rules/pii-in-traces.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'pipeline-silent'
    title: 'Fulfilment pipeline silent (no heartbeat)'
    severity: 'Medium'
    tactics: [
      'Impact'
      'DefenseEvasion'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT30M'
    period: 'PT2H'
    query: loadTextContent('../rules/pipeline-silent.kql')
    grouping: 'AnyAlert'
    entities: []
  }
  {
    id: 'purge-lateness'
    title: 'Buyer data purged more than 1 hour late'
    severity: 'High'
    tactics: [
      'Collection'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT1H'
    period: 'PT1H'
    query: loadTextContent('../rules/purge-lateness.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'privacy-request-overdue'
    title: 'Privacy request open for more than 24 hours'
    severity: 'Medium'
    tactics: [
      'Collection'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT1H'
    period: 'P14D'
    query: loadTextContent('../rules/privacy-request-overdue.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'poison-queue-growth'
    title: 'Messages accumulating in poison queues'
    severity: 'Medium'
    tactics: [
      'Impact'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT15M'
    period: 'PT1H'
    query: loadTextContent('../rules/poison-queue-growth.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'AppResourceId'
          }
        ]
      }
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'StorageResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'spapi-throttling-storm'
    title: 'Selling Partner API throttling storm'
    severity: 'Low'
    tactics: [
      'Impact'
    ]
    team: 'operations'
    personalData: false
    page: false
    frequency: 'PT15M'
    period: 'PT1H'
    query: loadTextContent('../rules/spapi-throttling-storm.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'unexpected-principal'
    title: 'Key Vault or Cosmos DB accessed by an unexpected principal'
    severity: 'High'
    tactics: [
      'CredentialAccess'
      'Discovery'
    ]
    team: 'security'
    personalData: true
    page: true
    frequency: 'PT15M'
    period: 'PT15M'
    query: replace(loadTextContent('../rules/unexpected-principal.kql'), '__EXPECTED_PRINCIPALS__', string(expectedPrincipals))
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'AadUserId'
            columnName: 'Principal'
          }
        ]
      }
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'unusual-data-read'
    title: 'Unusual data-read volume'
    severity: 'High'
    tactics: [
      'Exfiltration'
      'Collection'
    ]
    team: 'security'
    personalData: true
    page: true
    frequency: 'PT1H'
    period: 'P14D'
    query: loadTextContent('../rules/unusual-data-read.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'AadUserId'
            columnName: 'Principal'
          }
        ]
      }
    ]
  }
  {
    id: 'break-glass-sign-in'
    title: 'Break-glass account sign-in'
    severity: 'High'
    tactics: [
      'InitialAccess'
      'PrivilegeEscalation'
    ]
    team: 'security'
    personalData: false
    page: true
    frequency: 'PT15M'
    // 14 days so the Watchlist rows (refreshed every 12 days) are inside the query period.
    period: 'P14D'
    query: loadTextContent('../rules/break-glass-sign-in.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'AadUserId'
            columnName: 'UserId'
          }
        ]
      }
    ]
  }
  {
    id: 'role-assignment-outside-deployment'
    title: 'Role assignment made outside a deployment'
    severity: 'Medium'
    tactics: [
      'Persistence'
      'PrivilegeEscalation'
    ]
    team: 'security'
    personalData: false
    page: true
    frequency: 'PT1H'
    period: 'P1D'
    query: loadTextContent('../rules/role-assignment-outside-deployment.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'Account'
        fieldMappings: [
          {
            identifier: 'AadUserId'
            columnName: 'CallerObjectId'
          }
        ]
      }
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'notifications-drain-failing'
    title: 'Amazon notifications not reaching the pipeline (SQS drain failing or dead-lettering)'
    severity: 'Medium'
    tactics: [
      'Impact'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT15M'
    period: 'PT15M'
    query: loadTextContent('../rules/notifications-drain-failing.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'lwa-secret-rotation'
    title: 'LWA client secret not rotated (rotation failed, manual rotation due, or expiry within 7 days)'
    severity: 'High'
    tactics: [
      'Impact'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT1H'
    period: 'P1D'
    query: loadTextContent('../rules/lwa-secret-rotation.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'orders-not-shipping'
    title: 'Orders past their ship-by date unshipped'
    severity: 'Medium'
    tactics: [
      'Impact'
    ]
    team: 'operations'
    personalData: false
    page: true
    frequency: 'PT1H'
    period: 'PT1H'
    query: loadTextContent('../rules/orders-not-shipping.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
  {
    id: 'integrity-failure'
    title: 'Sealed buyer data failed its integrity check (tampering)'
    severity: 'High'
    tactics: [
      'Impact'
      'DefenseEvasion'
    ]
    team: 'security'
    personalData: false
    page: true
    frequency: 'PT15M'
    period: 'PT15M'
    query: loadTextContent('../rules/integrity-failure.kql')
    grouping: 'AllEntities'
    entities: [
      {
        entityType: 'AzureResource'
        fieldMappings: [
          {
            identifier: 'ResourceId'
            columnName: 'ResourceId'
          }
        ]
      }
    ]
  }
]


// Incident tasks per rule, in the order of `rules`: the steps of the rule's runbook in
// docs/security.md, as automation-rule actions (orders 2.., after the owner; the playbook runs last).
// Written out as actions because Bicep has no nested loops (tests/unit/test_infra_response.py
// checks each list against the runbook).
var taskActions = [
  // pii-in-traces
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Find the records and confirm real buyer data or a false match'
          description: 'Run the rule query for the window; read Operations and Pattern; look at the matching AppTraces/AppExceptions records.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Purge the records from the workspace'
          description: 'Log Analytics data purge API on AppTraces or AppExceptions, filtered on the time window and operation; note the purge operation id in a comment.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Fix the leaking code path and deploy'
          description: 'shared/telemetry/redaction.py or the telemetry call, with a test that reproduces the leak.'
        }
      }
      {
        order: 5
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Decide within 4 h whether Amazon data may have been exposed'
          description: 'Buyer PII or Amazon information that may have left our control makes this a security incident involving Amazon data: notify Amazon within 24 h of discovery (policy clause 9). Record the decision and its reasons in a comment.'
        }
      }
      {
        order: 6
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Notify Amazon by the deadline, then tag the incident notified-amazon'
          description: 'If Amazon data may have been exposed: send the report (the playbook drafted it in the comments; docs/security.md Report to Amazon) to security@amazon.com before the deadline the playbook recorded (detection + 24 h). Then add the tag notified-amazon, or a comment starting Notified Amazon, with the date and the message reference: that stops the reminders.'
        }
      }
  ]
  // pipeline-silent
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Check the Function App, its last deployment and FunctionAppLogs'
          description: 'Source names the silent timer (poll_orders, track_deliveries, purge_expired, drain_notifications).'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Check the identity role assignments and Key Vault / Cosmos DB availability'
          description: 'A lost role assignment or an unreachable private endpoint silences every timer.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'If purge_expired stays down past a retention deadline, follow purge-lateness'
          description: 'The 7-day deletion promise is at risk while purge_expired is silent.'
        }
      }
  ]
  // purge-lateness
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Find why the purge was late or failed'
          description: 'WorstLatenessS, FailedRuns, OrdersFailed, Invocations; look for purge_expired failures, Cosmos DB throttling, Key Vault errors.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Fix the cause and confirm the backlog drains'
          description: 'Watch the next purge_expired runs until no late or failed run remains.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Record a policy breach past 7 days; past 30 days treat it as an Amazon notice'
          description: 'Lateness beyond 7 days is a policy breach to record; beyond Amazon 30 days it is an incident to report to Amazon within 24 h.'
        }
      }
  ]
  // privacy-request-overdue
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Find the queue message and its request'
          description: 'MessageId is the invocation_id of the attempts and of the poison record; read requestId and type from privacy-requests-poison or the queue.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Complete the request with the ops CLI and send the confirmation'
          description: 'The audit trail has the request steps; our own target is 24 h.'
        }
      }
  ]
  // poison-queue-growth
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Read the reason codes and fix the cause'
          description: 'Reasons holds the poison records reason_code values.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Replay the poison messages with the ops CLI, or discard the obsolete ones'
          description: 'Messages carry refs only; no data exposure.'
        }
      }
  ]
  // spapi-throttling-storm
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Check whether another tool shares the seller quota'
          description: 'Compare the throttled operation with the apps rate budget; WaitS and MaxInvocationWaitS sum the Retry-After delays.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Lower the timer frequency or maximumInstanceCount if the app is the cause'
          description: 'Redeploy with the new parameters.'
        }
      }
  ]
  // unexpected-principal
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Identify the principal, its operations and addresses'
          description: 'Entra ID sign-in and audit logs (SigninLogs, AuditLogs) for the Principal object id.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'If not a known operator: disable it, revoke sessions and role assignments'
          description: 'Then rotate every secret it could read: LWA client secret, refresh tokens, carrier credentials, the current KEK epoch.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'If a legitimate operator: add the object id to operatorPrincipalIds and redeploy'
          description: 'Close as benign with the reason.'
        }
      }
      {
        order: 5
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Decide within 4 h whether Amazon data may have been exposed'
          description: 'Buyer PII or Amazon information that may have left our control makes this a security incident involving Amazon data: notify Amazon within 24 h of discovery (policy clause 9). Record the decision and its reasons in a comment.'
        }
      }
      {
        order: 6
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Notify Amazon by the deadline, then tag the incident notified-amazon'
          description: 'If Amazon data may have been exposed: send the report (the playbook drafted it in the comments; docs/security.md Report to Amazon) to security@amazon.com before the deadline the playbook recorded (detection + 24 h). Then add the tag notified-amazon, or a comment starting Notified Amazon, with the date and the message reference: that stops the reminders.'
        }
      }
  ]
  // unusual-data-read
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Identify the principal and what it read'
          description: 'If it is the app, correlate with a backlog or a bug.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Otherwise contain and rotate as for unexpected-principal'
          description: 'Disable the principal, revoke sessions and role assignments, rotate the secrets it could read.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Decide within 4 h whether Amazon data may have been exposed'
          description: 'Buyer PII or Amazon information that may have left our control makes this a security incident involving Amazon data: notify Amazon within 24 h of discovery (policy clause 9). Record the decision and its reasons in a comment.'
        }
      }
      {
        order: 5
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Notify Amazon by the deadline, then tag the incident notified-amazon'
          description: 'If Amazon data may have been exposed: send the report (the playbook drafted it in the comments; docs/security.md Report to Amazon) to security@amazon.com before the deadline the playbook recorded (detection + 24 h). Then add the tag notified-amazon, or a comment starting Notified Amazon, with the date and the message reference: that stops the reminders.'
        }
      }
  ]
  // break-glass-sign-in
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Confirm with the account custodians that the use was planned'
          description: 'Who opened the safe, when, and why; an unplanned sign-in is a compromised emergency account.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'If unplanned: reset the password, revoke sessions, review what the account changed'
          description: 'AuditLogs and AzureActivity for the account object id since FirstSeen.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Return the credentials to the safe and record the use'
          description: 'A new long random password, sealed; note the reason in a comment.'
        }
      }
      {
        order: 5
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Decide within 4 h whether Amazon data may have been exposed'
          description: 'Buyer PII or Amazon information that may have left our control makes this a security incident involving Amazon data: notify Amazon within 24 h of discovery (policy clause 9). Record the decision and its reasons in a comment.'
        }
      }
  ]
  // role-assignment-outside-deployment
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Identify who assigned which role to whom, and why'
          description: 'CallerObjectId, Roles (role definition ids), Assignees; ask the caller.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Remove the assignment unless a reviewed change request covers it'
          description: 'Access for people goes through PIM for Groups; lasting grants go into the Bicep and a deployment.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Decide within 4 h whether Amazon data may have been exposed'
          description: 'Buyer PII or Amazon information that may have left our control makes this a security incident involving Amazon data: notify Amazon within 24 h of discovery (policy clause 9). Record the decision and its reasons in a comment.'
        }
      }
  ]
  // notifications-drain-failing
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Read the reason codes and the dead-letter count'
          description: 'Reasons: sqs_refused or sts_refused is the AWS side (queue policy, role trust, OIDC provider, audience); sqs_unavailable or sts_unavailable is AWS unreachable; entra_token_unavailable is the managed identity; notification_enqueue_failed is the Azure queue. DeadLettered counts messages in the sellers SQS dead-letter queues.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Fix the cause and watch the next drain_notifications runs succeed'
          description: 'docs/deploy.md Amazons notifications has the trust (issuer, audience, subject) to compare; the 5-minute poll keeps ingesting orders meanwhile.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Move dead-lettered messages back to the seller queue, or let them expire'
          description: 'AWS console or aws sqs start-message-move-task from the dead-letter queue; a body too large for an Azure queue message stays undeliverable and expires after 7 days (the poll has the order).'
        }
      }
  ]
  // lwa-secret-rotation
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Read the reason codes and the days left before the LWA secret expires'
          description: 'ManualWarnings: LWA_ROTATION=manual, a person must rotate the secret (docs/security.md, Rotating by hand). Reasons: lwa_rotation_failed is rotateApplicationClientSecret (Amazon refused or unreachable; 400 means no rotation queue registered in the Developer Console); lwa_secret_not_writable is Key Vault refusing the app the write on the LWA secret (Amazon was not asked); lwa_secret_not_stored is Key Vault; lwa_client_mismatch is a notification for another LWA client. MinDaysLeft is the time left.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Fix the cause, then let the next warning rotate or rotate by hand'
          description: 'In manual mode, or before expiry if no new secret comes: generate a new secret in the Developer Console and store it as a new version of the LWA secret in Key Vault (no restart is needed). In auto mode Amazon repeats the expiry warning and the app rotates again.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Check that SP-API calls succeed on the new secret'
          description: 'The audit trail lwa-client-secret has lwa_secret_stored; poll_orders and ingest_notification succeed; ops preflight is green.'
        }
      }
  ]
  // orders-not-shipping
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'List the orders past their ship-by date and why each is held'
          description: 'Query the orders container as docs/operations.md Orders past their ship-by date shows; ship_by_passed means shipping kept failing for a transient cause until the ship-by date.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Fix the cause, then ship each order or ask Amazon to extend or cancel it'
          description: 'A carrier or Amazon outage, an address, a shipping rule; a ready order is sent again by the redrive, one with a person needs its label bought by hand and confirmed in Seller Central, or cancelling.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'If PurgedUnshipped is non-zero, record the lost orders'
          description: 'Orders purged unshipped were forgotten at their deadline as the policy requires; record them and the cause for the seller (refs are in the audit log).'
        }
      }
  ]
  // integrity-failure
  [
      {
        order: 2
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Find the flagged orders and what wrote to them'
          description: 'Orders are the order_ref values (attention integrity_failure); read the Cosmos DB data-plane logs and AzureActivity for writes to those documents outside the function identity.'
        }
      }
      {
        order: 3
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Contain the writer and rotate as for unexpected-principal'
          description: 'Disable the principal, revoke sessions and role assignments, rotate the secrets it could read; a replaced KEK version in Key Vault is the same incident.'
        }
      }
      {
        order: 4
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Decide within 4 h whether Amazon data may have been exposed'
          description: 'Buyer PII or Amazon information that may have left our control makes this a security incident involving Amazon data: notify Amazon within 24 h of discovery (policy clause 9). Record the decision and its reasons in a comment.'
        }
      }
      {
        order: 5
        actionType: 'AddIncidentTask'
        actionConfiguration: {
          title: 'Settle each flagged order by hand; its data is deleted on schedule'
          description: 'Ship or invoice from Seller Central if still due; the order keeps its deadline and purge_expired deletes it; privacy requests on it were answered that its data could not be read.'
        }
      }
  ]
]

resource alertRules 'Microsoft.SecurityInsights/alertRules@2023-02-01' = [
  for rule in rules: {
    name: guid(workspace.id, rule.id)
    scope: workspace
    kind: 'Scheduled'
    dependsOn: [
      onboarding
    ]
    properties: {
      displayName: rule.title
      description: 'Runbook: ${runbookUrl} (${rule.id}).'
      enabled: true
      severity: rule.severity
      tactics: rule.tactics
      query: rule.query
      entityMappings: empty(rule.entities) ? null : rule.entities
      queryFrequency: rule.frequency
      queryPeriod: rule.period
      triggerOperator: 'GreaterThan'
      triggerThreshold: 0
      suppressionEnabled: false
      suppressionDuration: 'PT1H'
      eventGroupingSettings: {
        aggregationKind: 'SingleAlert'
      }
      incidentConfiguration: {
        createIncident: true
        groupingConfiguration: {
          enabled: true
          reopenClosedIncident: false
          lookbackDuration: 'PT24H'
          matchingMethod: rule.grouping
        }
      }
    }
  }
]


// Break-glass accounts, by Entra object id (the watchlist's SearchKey), for break-glass-sign-in.
// Edit the list here (breakGlassAccountIds) or in Sentinel's Watchlist page.
resource breakGlassWatchlist 'Microsoft.SecurityInsights/watchlists@2024-03-01' = if (!empty(breakGlassAccountIds)) {
  name: 'break-glass-accounts'
  scope: workspace
  dependsOn: [
    onboarding
  ]
  properties: {
    displayName: 'Break-glass accounts'
    description: 'Emergency access accounts; any sign-in raises an incident.'
    provider: 'infra/modules/sentinel.bicep'
    source: 'Local file'
    watchlistAlias: 'break-glass-accounts'
    itemsSearchKey: 'ObjectId'
    contentType: 'text/csv'
    numberOfLinesToSkip: 0
    rawContent: 'ObjectId\n${join(breakGlassAccountIds, '\n')}'
  }
}

var owners = {
  security: securityOwnerObjectId
  operations: operationsOwnerObjectId
}

// The first action of every rule's automation: owner and labels.
var ownerActions = [
  for rule in rules: {
    order: 1
    actionType: 'ModifyProperties'
    actionConfiguration: {
      owner: empty(owners[rule.team]) ? null : {
        objectId: owners[rule.team]
        ownerType: 'User'
      }
      labels: (rule.page) ? [
        {
          labelName: 'rule:${rule.id}'
        }
        {
          labelName: 'team:${rule.team}'
        }
        {
          labelName: 'notify:${rule.team}'
        }
      ] : [
        {
          labelName: 'rule:${rule.id}'
        }
        {
          labelName: 'team:${rule.team}'
        }
      ]
    }
  }
]

// The last action for rules whose incidents may involve personal data.
var playbookActions = [
  {
    order: 50
    actionType: 'RunPlaybook'
    actionConfiguration: {
      logicAppResourceId: playbookId
      tenantId: subscription().tenantId
    }
  }
]

resource automationRules 'Microsoft.SecurityInsights/automationRules@2024-03-01' = [
  for (rule, i) in rules: {
    name: guid(workspace.id, rule.id, 'automation')
    scope: workspace
    properties: {
      displayName: 'Respond to ${rule.id}: owner, labels, runbook tasks${rule.personalData ? ', PII playbook' : ''}'
      order: i + 1
      triggeringLogic: {
        isEnabled: true
        triggersOn: 'Incidents'
        triggersWhen: 'Created'
        conditions: [
          {
            conditionType: 'Property'
            conditionProperties: {
              propertyName: 'IncidentRelatedAnalyticRuleIds'
              operator: 'Contains'
              propertyValues: [
                alertRules[i].id
              ]
            }
          }
        ]
      }
      actions: concat([ownerActions[i]], taskActions[i], (rule.personalData) ? playbookActions : [])
    }
  }
]

output ruleIds array = [for rule in rules: rule.id]
output personalDataRuleIds array = [for rule in rules: rule.personalData ? rule.id : '']
