// Microsoft Sentinel on the Log Analytics workspace, and the scheduled analytics rules. Each
// rule's query lives in infra/rules/<id>.kql; its runbook is docs/security.md
// "Incident response runbooks" under the same id.
//
// Incidents group a rule's alerts by their entities (matchingMethod AllEntities), so each such rule
// maps the entity columns its query projects (Microsoft Sentinel entity types and identifiers:
// Account by AadUserId, the Entra object id; AzureResource by ResourceId). pipeline-silent reports
// sources that sent nothing, so it has no entity to map: its alerts group into one incident
// (AnyAlert). tests/unit/test_infra.py and tests/unit/test_kusto_analysis.py check the mappings
// against the queries.

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

output ruleIds array = [for rule in rules: rule.id]
