// Who hears about an incident, and how: two action groups (e-mail; the recipients are
// parameters) and the log alerts that feed them from Sentinel's incident table.
//
//   security on-call    incidents of the security rules (label notify:security, added by their
//                       automation rules) and every mark of the PII playbook: the 24-hour clock
//                       started, the reminders at 12 h and 20 h, the deadline passed
//                       (amazon-clock:started, amazon-reminder:12h, amazon-reminder:20h,
//                       amazon-deadline:passed);
//   operations          incidents of the operational rules pipeline-silent, purge-lateness,
//                       poison-queue-growth and privacy-request-overdue (label notify:operations).
//
// Sentinel has no action that calls an action group, and neither has a Logic App, so each alert
// below reads SecurityIncident (one row per incident change, labels included) and fires once per
// incident and label: its dimensions are the incident number and the label, the condition holds
// for 30 minutes after the label first reached the workspace, and the alert is stateful
// (autoMitigate), so it fires when the label appears, resolves 30 minutes later and never fires
// for that label again. The e-mail carries the incident number, the stage, the rule's title and
// the deadline: references, no personal data.

param location string
param prefix string
param tags object = {}

@description('Resource id of the Log Analytics workspace Sentinel runs on.')
param workspaceId string

@description('E-mail addresses of the security on-call (PII incidents, the 24-hour clock to notify Amazon).')
@minLength(1)
param securityEmails array

@description('E-mail addresses of the operations on-call (pipeline-silent, purge-lateness, poison-queue-growth, privacy-request-overdue).')
@minLength(1)
param operationsEmails array

resource securityGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${prefix}-security-oncall'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'sec-oncall'
    enabled: true
    emailReceivers: [
      for (address, i) in securityEmails: {
        name: 'security-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

resource operationsGroup 'Microsoft.Insights/actionGroups@2023-01-01' = {
  name: '${prefix}-operations-oncall'
  location: 'Global'
  tags: tags
  properties: {
    groupShortName: 'ops-oncall'
    enabled: true
    emailReceivers: [
      for (address, i) in operationsEmails: {
        name: 'operations-${i}'
        emailAddress: address
        useCommonAlertSchema: true
      }
    ]
  }
}

var everyValue = [
  {
    name: 'IncidentNumber'
    operator: 'Include'
    values: [
      '*'
    ]
  }
  {
    name: 'Stage'
    operator: 'Include'
    values: [
      '*'
    ]
  }
  {
    name: 'Title'
    operator: 'Include'
    values: [
      '*'
    ]
  }
  {
    name: 'DeadlineUtc'
    operator: 'Include'
    values: [
      '*'
    ]
  }
]

resource securityNotice 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${prefix}-security-incident-notice'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Security incident: notify the on-call (incident, 24 h clock, reminders)'
    description: 'One notification per Sentinel incident and stage. Runbook: docs/security.md "Incident response runbooks"; the report draft and the deadline are in the incident comments.'
    severity: 1
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    // The query reads two days of incident changes to find when each label first appeared.
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    skipQueryValidation: true
    // SecurityIncident comes with Sentinel's onboarding in the same deployment; validating the
    // query at creation could race it. Microsoft's Kusto analyzer checks it in the tests instead.
    skipQueryValidation: true
    criteria: {
      allOf: [
        {
          query: '''
SecurityIncident
| where TimeGenerated > ago(2d)
| extend Ingested = ingestion_time()
| mv-expand Label = Labels
| extend Stage = tostring(Label.labelName)
| where Stage in ("notify:security", "amazon-clock:started", "amazon-reminder:12h", "amazon-reminder:20h", "amazon-deadline:passed")
| summarize FirstIngested = min(Ingested), arg_max(TimeGenerated, Status, Title, CreatedTime) by IncidentNumber, Stage
| where Status != "Closed" and FirstIngested > ago(30m)
| project IncidentNumber = tostring(IncidentNumber), Stage, Title, DeadlineUtc = format_datetime(CreatedTime + 24h, "yyyy-MM-dd HH:mm")
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: everyValue
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        securityGroup.id
      ]
    }
  }
}

resource operationsNotice 'Microsoft.Insights/scheduledQueryRules@2023-12-01' = {
  name: '${prefix}-operations-incident-notice'
  location: location
  tags: tags
  kind: 'LogAlert'
  properties: {
    displayName: 'Operational incident: notify operations'
    description: 'One notification per Sentinel incident of pipeline-silent, purge-lateness, poison-queue-growth or privacy-request-overdue. Runbook: docs/security.md "Incident response runbooks".'
    severity: 2
    enabled: true
    scopes: [
      workspaceId
    ]
    evaluationFrequency: 'PT5M'
    windowSize: 'PT5M'
    overrideQueryTimeRange: 'P2D'
    autoMitigate: true
    criteria: {
      allOf: [
        {
          query: '''
SecurityIncident
| where TimeGenerated > ago(2d)
| extend Ingested = ingestion_time()
| mv-expand Label = Labels
| extend Stage = tostring(Label.labelName)
| where Stage == "notify:operations"
| summarize FirstIngested = min(Ingested), arg_max(TimeGenerated, Status, Title, CreatedTime) by IncidentNumber, Stage
| where Status != "Closed" and FirstIngested > ago(30m)
| project IncidentNumber = tostring(IncidentNumber), Stage, Title, DeadlineUtc = "n/a"
'''
          timeAggregation: 'Count'
          operator: 'GreaterThan'
          threshold: 0
          dimensions: everyValue
          failingPeriods: {
            numberOfEvaluationPeriods: 1
            minFailingPeriodsToAlert: 1
          }
        }
      ]
    }
    actions: {
      actionGroups: [
        operationsGroup.id
      ]
    }
  }
}

output securityActionGroupId string = securityGroup.id
output operationsActionGroupId string = operationsGroup.id
