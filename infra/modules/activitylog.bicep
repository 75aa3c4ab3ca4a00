// The subscription's Activity log (control-plane operations: who created, changed or deleted what,
// role assignments included) to the Log Analytics workspace, where it lands in AzureActivity and
// Sentinel's role-assignment-outside-deployment rule reads it. A subscription-level diagnostic
// setting: main.bicep deploys this module at subscription scope, so the deploying account needs
// Microsoft.Insights/diagnosticSettings/write on the subscription (Monitoring Contributor there;
// docs/deploy.md). One such setting per subscription and workspace is enough; if the
// subscription already sends its Activity log to this workspace, set deploySubscriptionActivityLog
// to false.

targetScope = 'subscription'

@description('Resource id of the Log Analytics workspace.')
param workspaceId string

@description('Name of the diagnostic setting (unique per subscription).')
param settingName string = 'activity-log-to-sentinel'

resource activityLog 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: settingName
  properties: {
    workspaceId: workspaceId
    // Every Activity log category; Administrative carries the role assignments.
    logs: [
      {
        category: 'Administrative'
        enabled: true
      }
      {
        category: 'Security'
        enabled: true
      }
      {
        category: 'ServiceHealth'
        enabled: true
      }
      {
        category: 'Alert'
        enabled: true
      }
      {
        category: 'Recommendation'
        enabled: true
      }
      {
        category: 'Policy'
        enabled: true
      }
      {
        category: 'Autoscale'
        enabled: true
      }
      {
        category: 'ResourceHealth'
        enabled: true
      }
    ]
  }
}

output id string = activityLog.id
