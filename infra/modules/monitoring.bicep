// Log Analytics (the one place every log lands; Sentinel reads it) and workspace-based
// Application Insights that accepts Entra ID-authenticated telemetry only.

@description('Azure region.')
param location string

@description('Name prefix of every resource.')
param prefix string

@description('Days Log Analytics keeps data; Amazon requires 12 months of logs.')
@minValue(365)
param logRetentionDays int = 365

param tags object = {}

resource workspace 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: '${prefix}-log'
  location: location
  tags: tags
  properties: {
    sku: {
      name: 'PerGB2018'
    }
    retentionInDays: logRetentionDays
    features: {
      // Only Entra ID identities query or ingest; the workspace's shared keys are off.
      disableLocalAuth: true
    }
  }
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' = {
  name: '${prefix}-appi'
  location: location
  tags: tags
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: workspace.id
    IngestionMode: 'LogAnalytics'
    // Telemetry must be signed by the function's managed identity (Monitoring Metrics Publisher):
    // the instrumentation key alone cannot write.
    DisableLocalAuth: true
    RetentionInDays: logRetentionDays
  }
}

resource workspaceDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: workspace
  properties: {
    workspaceId: workspace.id
    // LAQueryLogs: who read the logs. No rule reads it; kept because it is the only record of a
    // person reading order telemetry, and it is a few records a day (docs/performance.md).
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

output workspaceId string = workspace.id
output workspaceName string = workspace.name
output appInsightsName string = appInsights.name
output appInsightsConnectionString string = appInsights.properties.ConnectionString
