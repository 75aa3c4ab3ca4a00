// A Key Vault, deployed twice by main.bicep: `<prefix>-kv` for the credentials and the two keys
// `ops init-keys` makes (the app reads them), `<prefix>-kek` for the weekly key-epoch KEKs (the
// app makes, reads and destroys them). RBAC authorisation (no access policies), purge protection, and soft-delete days equal to
// KEY_VAULT_SOFT_DELETE_DAYS (part of the recoverability bound). Reached through a private
// endpoint (zone privatelink.vaultcore.azure.net); the public endpoint is off unless a first trial
// turns it on, and even then only `allowedIpRanges` get through. Audit events go to the
// resource-specific table AZKVAuditLogs.

param location string
param prefix string

@description('The vault\'s name: `<prefix>-kv` (credentials and keys) or `<prefix>-kek` (key epochs).')
@maxLength(24)
param name string = '${prefix}-kv'
param workspaceId string
param tags object = {}

@description('Soft-delete retention; must equal the app setting KEY_VAULT_SOFT_DELETE_DAYS. 7 is Azure\'s minimum.')
@minValue(7)
@maxValue(90)
param softDeleteDays int = 7

@description('Disabled: only the private endpoint reaches the vault. Enabled (first trial only): the public endpoint answers too, to allowedIpRanges only.')
@allowed([
  'Disabled'
  'Enabled'
])
param publicNetworkAccess string = 'Disabled'

@description('Public IP addresses or CIDR ranges admitted when publicNetworkAccess is Enabled.')
param allowedIpRanges array = []

@description('Subnet of the private endpoints (infra/modules/network.bicep).')
param privateEndpointSubnetId string

@description('Private DNS zone privatelink.vaultcore.azure.net.')
param privateDnsZoneId string

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: name
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
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
      ipRules: [
        for ip in allowedIpRanges: {
          value: ip
        }
      ]
    }
  }
}

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: vault
  properties: {
    workspaceId: workspaceId
    // Resource-specific table AZKVAuditLogs (the unexpected-principal rule reads it).
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        categoryGroup: 'audit'
        enabled: true
      }
    ]
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = {
  name: '${vault.name}-pe'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: '${vault.name}-vault'
        properties: {
          privateLinkServiceId: vault.id
          groupIds: [
            'vault'
          ]
        }
      }
    ]
  }
}

resource privateDnsGroup 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = {
  parent: privateEndpoint
  name: 'default'
  properties: {
    privateDnsZoneConfigs: [
      {
        name: 'vault'
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

output id string = vault.id
output name string = vault.name
output uri string = vault.properties.vaultUri
