// Key Vault for the key-encryption keys, the order-reference key and the seller credentials:
// RBAC authorisation (no access policies), purge protection, and soft-delete days equal to
// KEY_VAULT_SOFT_DELETE_DAYS (part of the recoverability bound).

param location string
param prefix string
param workspaceId string
param tags object = {}

@description('Soft-delete retention; must equal the app setting KEY_VAULT_SOFT_DELETE_DAYS. 7 is Azure\'s minimum.')
@minValue(7)
@maxValue(90)
param softDeleteDays int = 7

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  // checkov:skip=CKV_AZURE_109: Flex Consumption reaches Key Vault over the public endpoint unless a VNet is added; every call needs an Entra ID token with an RBAC role, see docs/security.md "Network".
  // checkov:skip=CKV_AZURE_189: Same reason as CKV_AZURE_109.
  name: '${prefix}-kv'
  location: location
  tags: tags
  properties: {
    tenantId: subscription().tenantId
    sku: {
      family: 'A'
      name: 'standard'
    }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: softDeleteDays
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
      bypass: 'AzureServices'
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'AllMetrics'
        enabled: true
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
