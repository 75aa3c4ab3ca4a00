// The Function App on Flex Consumption: Python 3.11, system-assigned managed identity (the only
// credential it has), HTTPS only, TLS 1.2, FTP and basic publishing credentials off. The app
// settings carry endpoints, Key Vault secret names and tuning, never a secret value. The app joins
// the VNet (infra/modules/network.bicep): the private DNS zones linked to it resolve Storage,
// Cosmos DB and Key Vault to their private endpoints, so that traffic stays on the VNet. Calls to
// the internet (SP-API, carriers, Entra ID) leave as the platform routes them; routing those
// through the VNet too (vnetRouteAllEnabled) would need a NAT gateway for egress, which this
// template does not add.

param location string
param prefix string
param tags object = {}

@description('Runtime storage account (AzureWebJobsStorage and the deployment package).')
param hostStorageName string
param hostStorageBlobEndpoint string

@description('Data storage endpoints (queues and blobs the app reads and writes).')
param dataBlobEndpoint string
param dataQueueEndpoint string

param cosmosEndpoint string
param cosmosDatabaseName string
param keyVaultUri string

@description('The key epochs\' own vault (KEY_EPOCH_VAULT_URL).')
param keyEpochVaultUri string
param appInsightsConnectionString string

@description('Subnet the app joins (delegated to Microsoft.App/environments).')
param virtualNetworkSubnetId string

@description('App settings of the app itself (name -> value), see docs/deploy.md.')
param appSettings object

@description('Most instances Flex Consumption may scale out to; caps SP-API and carrier concurrency.')
@minValue(1)
@maxValue(1000)
param maximumInstanceCount int = 10

var deploymentContainer = 'app-package'

var platformSettings = {
  AzureWebJobsStorage__accountName: hostStorageName
  // Identity-based connection named STORAGE used by the queue triggers and the app's clients.
  STORAGE__blobServiceUri: dataBlobEndpoint
  STORAGE__queueServiceUri: dataQueueEndpoint
  STORAGE__credential: 'managedidentity'
  COSMOS_ENDPOINT: cosmosEndpoint
  COSMOS_DATABASE: cosmosDatabaseName
  KEY_VAULT_URL: keyVaultUri
  KEY_EPOCH_VAULT_URL: keyEpochVaultUri
  APPLICATIONINSIGHTS_CONNECTION_STRING: appInsightsConnectionString
  // Application Insights has local auth off: the exporter signs with the managed identity.
  APPLICATIONINSIGHTS_AUTHENTICATION_STRING: 'Authorization=AAD'
}

var allSettings = union(appSettings, platformSettings)

resource plan 'Microsoft.Web/serverfarms@2024-04-01' = {
  // checkov:skip=CKV_AZURE_225: Zone redundancy is not needed: a lost zone delays orders (queues keep them), it loses none.
  name: '${prefix}-plan'
  location: location
  tags: tags
  kind: 'functionapp'
  sku: {
    tier: 'FlexConsumption'
    name: 'FC1'
  }
  properties: {
    reserved: true
  }
}

resource site 'Microsoft.Web/sites@2024-04-01' = {
  // checkov:skip=CKV_AZURE_222: Inbound only: the app has no HTTP trigger, and the deployment endpoint (SCM, Entra ID only, basic auth off) stays reachable so the seller's CI can publish; all data traffic is outbound over the VNet, see docs/security.md "Network".
  // checkov:skip=CKV_AZURE_17: No HTTP triggers (timers and queues only), so no client to authenticate by certificate.
  // checkov:skip=CKV_AZURE_212: Flex Consumption scales from zero per function; queues hold work while an instance starts.
  // checkov:skip=CKV_AZURE_213: No HTTP endpoint to probe; liveness is the heartbeat Sentinel rule (pipeline-silent).
  name: '${prefix}-func'
  location: location
  tags: tags
  kind: 'functionapp,linux'
  identity: {
    type: 'SystemAssigned'
  }
  properties: {
    serverFarmId: plan.id
    virtualNetworkSubnetId: virtualNetworkSubnetId
    httpsOnly: true
    clientCertEnabled: false
    siteConfig: {
      minTlsVersion: '1.2'
      scmMinTlsVersion: '1.2'
      ftpsState: 'Disabled'
      http20Enabled: true
      appSettings: [
        for s in items(allSettings): {
          name: s.key
          value: s.value
        }
      ]
    }
    functionAppConfig: {
      deployment: {
        storage: {
          type: 'blobContainer'
          value: '${hostStorageBlobEndpoint}${deploymentContainer}'
          authentication: {
            type: 'SystemAssignedIdentity'
          }
        }
      }
      scaleAndConcurrency: {
        maximumInstanceCount: maximumInstanceCount
        // The smallest size: the pipeline's peak RSS is under 200 MB with the stand-ins included
        // (docs/performance.md, "Instance memory"); each GB-s is billed at this size.
        instanceMemoryMB: 512
      }
      runtime: {
        name: 'python'
        version: '3.11'
      }
    }
  }
}

resource ftpPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'ftp'
  properties: {
    allow: false
  }
}

resource scmPublishing 'Microsoft.Web/sites/basicPublishingCredentialsPolicies@2024-04-01' = {
  parent: site
  name: 'scm'
  properties: {
    allow: false
  }
}

// No diagnostic setting: FunctionAppLogs would repeat what the app and the host already send to
// Application Insights (AppTraces, AppRequests in the same workspace), and no rule reads the
// site's metrics (they stay in Azure Monitor Metrics). docs/performance.md.

output id string = site.id
output name string = site.name
output principalId string = site.identity.principalId
output deploymentContainer string = deploymentContainer
