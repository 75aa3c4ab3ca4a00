// The function identity's role assignments: data-plane roles only, each at the narrowest scope
// the app can use, none on the control plane. docs/security.md says why each one exists.

@description('Object id of the Function App system-assigned identity.')
param principalId string

param hostStorageName string
param dataStorageName string
param dataContainers array

@description('The WORM audit container of the data account: the identity may add and read blobs there, nothing else.')
param auditContainer string
param cosmosAccountName string
param cosmosDatabaseName string
@description('The credentials vault: LWA credentials, refresh tokens, carrier secrets, the order-reference and archive keys.')
param keyVaultName string

@description('The key epochs\' vault: only the weekly KEKs the app makes and destroys.')
param keyEpochVaultName string

@description('The LWA client secret\'s name: the one secret of the credentials vault the app may write.')
param lwaClientSecretSecretName string

@description('Assign the writer role on the LWA client secret (it must exist: deploy again once it is set).')
param lwaSecretWriter bool = false

param appInsightsName string

// Built-in role definition ids (identical in every tenant).
var roles = {
  storageBlobDataOwner: 'b7e6dc6d-f1e8-4753-8033-0f276bb0955b'
  storageBlobDataContributor: 'ba92f5b4-2d11-453d-a403-e96b0029c9fe'
  storageQueueDataContributor: '974c5e8b-45b9-4653-ba55-5f855dd0fb88'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
  keyVaultSecretsUser: '4633458b-17de-408a-b874-0445c86b69e6'
  monitoringMetricsPublisher: '3913510d-42f4-4e42-8a64-420c390055eb'
}

// Cosmos DB Built-in Data Contributor (a Cosmos data-plane role, not an Azure RBAC role).
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

resource hostStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: hostStorageName
}

resource dataStorage 'Microsoft.Storage/storageAccounts@2023-05-01' existing = {
  name: dataStorageName
}

resource dataBlobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' existing = {
  parent: dataStorage
  name: 'default'
}

resource dataContainerResources 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = [
  for c in dataContainers: {
    parent: dataBlobService
    name: c
  }
]

resource auditContainerResource 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' existing = {
  parent: dataBlobService
  name: auditContainer
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource lwaClientSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' existing = {
  parent: vault
  name: lwaClientSecretSecretName
}

resource epochVault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyEpochVaultName
}

resource appInsights 'Microsoft.Insights/components@2020-02-02' existing = {
  name: appInsightsName
}

// The Functions host keeps leases, timer schedules and the deployment package in its own account.
resource hostBlobOwner 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(hostStorage.id, principalId, roles.storageBlobDataOwner)
  scope: hostStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataOwner)
  }
}

// Queue triggers read, delete and poison messages; stages enqueue the next step.
resource dataQueueContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(dataStorage.id, principalId, roles.storageQueueDataContributor)
  scope: dataStorage
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageQueueDataContributor)
  }
}

// Labels and invoices: write, read and delete blobs, per container.
resource dataBlobContributor 'Microsoft.Authorization/roleAssignments@2022-04-01' = [
  for (c, i) in dataContainers: {
    name: guid(dataContainerResources[i].id, principalId, roles.storageBlobDataContributor)
    scope: dataContainerResources[i]
    properties: {
      principalId: principalId
      principalType: 'ServicePrincipal'
      roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.storageBlobDataContributor)
    }
  }
]

// Audit trail blobs: add and read, never overwrite or delete. Put Blob of a new blob needs only
// blobs/add/action; overwriting needs blobs/write and deleting blobs/delete, which this role
// lacks (learn.microsoft.com/rest/api/storageservices/authorize-with-azure-active-directory,
// permissions per operation). The container's immutability policy refuses both anyway, to every
// role, while a blob is inside its retention period.
resource auditAppenderRole 'Microsoft.Authorization/roleDefinitions@2022-04-01' = {
  name: guid(resourceGroup().id, 'fulfilment-audit-appender')
  properties: {
    roleName: 'Fulfilment audit appender (${uniqueString(resourceGroup().id)})'
    description: 'Add and read blobs in the fulfilment app\'s audit container; no overwrite, no delete.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/add/action'
          'Microsoft.Storage/storageAccounts/blobServices/containers/blobs/read'
        ]
        notDataActions: []
      }
    ]
  }
}

resource auditAppender 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(auditContainerResource.id, principalId, 'fulfilment-audit-appender')
  scope: auditContainerResource
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    // Role definitions live at subscription level whatever scope deploys them.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', auditAppenderRole.name)
  }
}

// The order store: read and write items in the one database.
resource cosmosData 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = {
  parent: cosmos
  name: guid(cosmos.id, principalId, cosmosDataContributor)
  properties: {
    principalId: principalId
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}'
  }
}

// Key epochs: create, read, delete and purge the KEKs, in their own vault, which holds nothing else.
resource epochVaultSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(epochVault.id, principalId, roles.keyVaultSecretsOfficer)
  scope: epochVault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

// The credentials vault: read only. It holds only what the app reads (the LWA credentials, each
// seller's refresh token, the carriers' secrets, the order-reference and invoice archive keys).
resource vaultSecretsReader 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(vault.id, principalId, roles.keyVaultSecretsUser)
  scope: vault
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsUser)
  }
}

// The one secret the app writes: a new version of the LWA client secret when Amazon rotates it
// (LWA_ROTATION=auto). A custom role with only what the app does on that secret: read it, and
// Set Secret (a new version). No update (properties), delete, backup, restore, recover or purge,
// which the built-in Secrets Officer would also allow. The data-action names are Key Vault's
// (github.com/Azure/KeyVault-AccessPolicyToRBAC-CompareTool, Tool/AcessPolicyRBACMapping.csv:
// Set is setSecret/action plus update/action; Get is getSecret/action; List readMetadata/action).
resource lwaSecretWriterDefinition 'Microsoft.Authorization/roleDefinitions@2022-04-01' = if (lwaSecretWriter) {
  name: guid(resourceGroup().id, 'fulfilment-lwa-secret-writer')
  properties: {
    roleName: 'Fulfilment LWA secret writer (${uniqueString(resourceGroup().id)})'
    description: 'Read the fulfilment app\'s LWA client secret and set a new version of it; nothing else.'
    type: 'CustomRole'
    assignableScopes: [
      resourceGroup().id
    ]
    permissions: [
      {
        actions: []
        notActions: []
        dataActions: [
          'Microsoft.KeyVault/vaults/secrets/getSecret/action'
          'Microsoft.KeyVault/vaults/secrets/readMetadata/action'
          'Microsoft.KeyVault/vaults/secrets/setSecret/action'
        ]
        notDataActions: []
      }
    ]
  }
}

resource lwaSecretWriterRole 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (lwaSecretWriter) {
  name: guid(lwaClientSecret.id, principalId, 'fulfilment-lwa-secret-writer')
  scope: lwaClientSecret
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    // Role definitions live at subscription level whatever scope deploys them.
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', lwaSecretWriterDefinition.name)
  }
}

// Telemetry to Application Insights with local auth off (Entra ID-signed ingestion).
resource telemetryPublisher 'Microsoft.Authorization/roleAssignments@2022-04-01' = {
  name: guid(appInsights.id, principalId, roles.monitoringMetricsPublisher)
  scope: appInsights
  properties: {
    principalId: principalId
    principalType: 'ServicePrincipal'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.monitoringMetricsPublisher)
  }
}
