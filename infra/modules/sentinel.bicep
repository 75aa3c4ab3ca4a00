// Microsoft Sentinel on the Log Analytics workspace, and the scheduled analytics rules. Each
// rule's query lives in infra/rules/<id>.kql; its runbook is docs/security.md
// "Incident response runbooks" under the same id.

@description('The Log Analytics workspace that Sentinel watches.')
param workspaceName string

@description('Object ids allowed to touch Key Vault and Cosmos DB data: the function identity and the operators.')
param expectedPrincipals array

param runbookUrl string = 'docs/security.md#incident-response-runbooks'

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
    frequency: 'PT15M'
    period: 'PT15M'
    query: loadTextContent('../rules/pii-in-traces.kql')
  }
  {
    id: 'pipeline-silent'
    title: 'Fulfilment pipeline silent (no heartbeat)'
    severity: 'Medium'
    tactics: [
      'Impact'
      'DefenseEvasion'
    ]
    frequency: 'PT30M'
    period: 'PT2H'
    query: loadTextContent('../rules/pipeline-silent.kql')
  }
  {
    id: 'purge-lateness'
    title: 'Buyer data purged more than 1 hour late'
    severity: 'High'
    tactics: [
      'Collection'
    ]
    frequency: 'PT1H'
    period: 'PT1H'
    query: loadTextContent('../rules/purge-lateness.kql')
  }
  {
    id: 'privacy-request-overdue'
    title: 'Privacy request open for more than 24 hours'
    severity: 'Medium'
    tactics: [
      'Collection'
    ]
    frequency: 'PT1H'
    period: 'P14D'
    query: loadTextContent('../rules/privacy-request-overdue.kql')
  }
  {
    id: 'poison-queue-growth'
    title: 'Messages accumulating in poison queues'
    severity: 'Medium'
    tactics: [
      'Impact'
    ]
    frequency: 'PT15M'
    period: 'PT1H'
    query: loadTextContent('../rules/poison-queue-growth.kql')
  }
  {
    id: 'spapi-throttling-storm'
    title: 'Selling Partner API throttling storm'
    severity: 'Low'
    tactics: [
      'Impact'
    ]
    frequency: 'PT15M'
    period: 'PT1H'
    query: loadTextContent('../rules/spapi-throttling-storm.kql')
  }
  {
    id: 'unexpected-principal'
    title: 'Key Vault or Cosmos DB accessed by an unexpected principal'
    severity: 'High'
    tactics: [
      'CredentialAccess'
      'Discovery'
    ]
    frequency: 'PT15M'
    period: 'PT15M'
    query: replace(loadTextContent('../rules/unexpected-principal.kql'), '__EXPECTED_PRINCIPALS__', string(expectedPrincipals))
  }
  {
    id: 'unusual-data-read'
    title: 'Unusual data-read volume'
    severity: 'High'
    tactics: [
      'Exfiltration'
      'Collection'
    ]
    frequency: 'PT1H'
    period: 'P14D'
    query: loadTextContent('../rules/unusual-data-read.kql')
  }
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
          matchingMethod: 'AllEntities'
        }
      }
    }
  }
]

output ruleIds array = [for rule in rules: rule.id]
