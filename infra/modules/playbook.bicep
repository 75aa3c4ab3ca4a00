// The PII incident playbook: a Logic App that Sentinel's automation rules run on every incident
// that may involve buyer data (the rules with personalData: true in infra/modules/sentinel.bicep).
// Its definition is infra/playbooks/pii-incident.workflow.json. On the new incident it
//   1. writes a draft of the report to Amazon (docs/security.md "Report to Amazon", policy clause 9)
//      into the incident's comments, with references and counts only (incident number and link,
//      rule ids, Azure resource ids, numbers of alerts and accounts): no buyer data;
//   2. records the deadline for notifying Amazon, detection + 24 h, in that comment and as the
//      labels amazon-clock:started and amazon-deadline:<UTC time>;
//   3. at 12 h and 20 h after detection (and once more at 24 h) checks whether the incident has
//      the tag notified-amazon or a comment saying "Notified Amazon", or is closed; if not, it
//      comments a reminder and adds the label amazon-reminder:12h, amazon-reminder:20h or
//      amazon-deadline:passed.
// Every label it adds reaches the on-call through the security action group: an Azure Monitor log
// alert on the SecurityIncident table (infra/modules/notifications.bicep) turns each new label into
// one notification, since a Logic App has no action that fires an action group.
//
// It signs in with its system-assigned managed identity: the Sentinel connection that delivers the
// trigger and its calls to the Sentinel REST API (Microsoft Sentinel Responder on the workspace:
// read incidents, write comments and labels). Sentinel itself needs Microsoft Sentinel Automation
// Contributor on this resource group to run it (sentinelAutomationPrincipalId).

param location string
param prefix string
param tags object = {}

@description('The Log Analytics workspace Sentinel runs on.')
param workspaceName string

@description('Object id, in this tenant, of the "Azure Security Insights" service principal (app id 98785600-1bb7-4fb9-b9fa-19afe2c8a360), which runs playbooks for automation rules.')
param sentinelAutomationPrincipalId string

// Built-in role definition ids (identical in every tenant).
var sentinelResponder = '3e150937-b8fe-4cfb-8069-0eaf05ecd056'
var sentinelAutomationContributor = 'f4c81013-99ee-4d62-a7ee-b3f1f648599a'

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' existing = {
  name: workspaceName
}

resource sentinelConnection 'Microsoft.Web/connections@2016-06-01' = {
  name: '${prefix}-sentinel-pii-playbook'
  location: location
  tags: tags
  kind: 'V1'
  properties: {
    displayName: 'Microsoft Sentinel (PII playbook, managed identity)'
    // Alternative: the connection authenticates with the calling Logic App's managed identity.
    parameterValueType: 'Alternative'
    api: {
      id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
    }
  }
}

resource playbook 'Microsoft.Logic/workflows@2019-05-01' = {
  name: '${prefix}-pii-incident-playbook'
  location: location
  tags: tags
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    state: 'Enabled'
    definition: loadJsonContent('../playbooks/pii-incident.workflow.json')
    parameters: {
      '$connections': {
        value: {
          azuresentinel: {
            connectionId: sentinelConnection.id
            connectionName: sentinelConnection.name
            id: subscriptionResourceId('Microsoft.Web/locations/managedApis', location, 'azuresentinel')
            connectionProperties: {
              authentication: {
                type: 'ManagedServiceIdentity'
              }
            }
          }
        }
      }
    }
  }
}

// The playbook reads incidents and writes their comments and labels.
resource playbookResponder 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(workspace.id, playbook.id, sentinelResponder)
  scope: workspace
  properties: {
    principalId: playbook.identity.principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sentinelResponder)
  }
}

// Sentinel may run the playbooks of this resource group from automation rules.
resource sentinelRunsPlaybooks 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(resourceGroup().id, sentinelAutomationPrincipalId, sentinelAutomationContributor)
  properties: {
    principalId: sentinelAutomationPrincipalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', sentinelAutomationContributor)
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: playbook
  properties: {
    workspaceId: workspace.id
    // WorkflowRuntime (AzureDiagnostics): no rule reads it; kept as the record that an incident's
    // notification ran, a few records per incident (docs/performance.md).
    logs: [
      {
        category: 'WorkflowRuntime'
        enabled: true
      }
    ]
  }
}

output id string = playbook.id
output name string = playbook.name
output principalId string = playbook.identity.principalId
