// Cosmos DB for the order store: Entra ID only (local keys off), TLS 1.2, continuous backup with
// the shortest window (7 days, part of the recoverability bound), and the three containers the
// app uses with item-level TTL enabled (defaultTtl -1). Data-plane RBAC cannot create
// containers, so they are declared here. Reached through a private endpoint (group Sql, zone
// privatelink.documents.azure.com); the public endpoint is off unless a first trial turns it on,
// and even then only `allowedIpRanges` get through.

param location string
param prefix string
param workspaceId string
param tags object = {}

@description('Disabled: only the private endpoint reaches the account. Enabled (first trial only): the public endpoint answers too, to allowedIpRanges only.')
@allowed([
  'Disabled'
  'Enabled'
])
param publicNetworkAccess string = 'Disabled'

@description('Public IP addresses or CIDR ranges admitted when publicNetworkAccess is Enabled.')
param allowedIpRanges array = []

@description('Subnet of the private endpoints (infra/modules/network.bicep).')
param privateEndpointSubnetId string

@description('Private DNS zone privatelink.documents.azure.com.')
param privateDnsZoneId string

@description('Database name (COSMOS_DATABASE).')
param databaseName string = 'fulfilment'

@description('Container name -> partition key path; must match shared/storage/document_store.py CONTAINERS.')
param containers object = {
  orders: '/id'
  state: '/pk'
  audit: '/ref'
}

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  name: '${prefix}-cosmos'
  location: location
  tags: tags
  kind: 'GlobalDocumentDB'
  properties: {
    databaseAccountOfferType: 'Standard'
    locations: [
      {
        locationName: location
        failoverPriority: 0
        isZoneRedundant: false
      }
    ]
    consistencyPolicy: {
      defaultConsistencyLevel: 'Session'
    }
    capabilities: [
      {
        name: 'EnableServerless'
      }
    ]
    disableLocalAuth: true
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    publicNetworkAccess: publicNetworkAccess
    // One write region. (checkov's CKV_AZURE_99 passes on this property alone; what restricts
    // access is publicNetworkAccess, the private endpoint and ipRules: the trial's addresses only.)
    enableMultipleWriteLocations: false
    ipRules: [
      for ip in allowedIpRanges: {
        ipAddressOrRange: ip
      }
    ]
    backupPolicy: {
      type: 'Continuous'
      continuousModeProperties: {
        // 7 days = COSMOS_BACKUP_RETENTION_DAYS: the shortest tier, counted in the recoverability bound.
        tier: 'Continuous7Days'
      }
    }
  }
}

resource database 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-11-15' = {
  parent: account
  name: databaseName
  properties: {
    resource: {
      id: databaseName
    }
  }
}

resource containerResources 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-11-15' = [
  for c in items(containers): {
    parent: database
    name: c.key
    properties: {
      resource: {
        id: c.key
        partitionKey: {
          paths: [
            c.value
          ]
          kind: 'Hash'
        }
        // -1: TTL on, items live until their own `ttl` says otherwise (the purge sets it).
        defaultTtl: -1
        // Ciphertext is never queried: only the envelope's epoch (crypto-shredding) is indexed.
        // An invoice-number claim (state container) is read by id; only its `claimCheckedAt`
        // is queried (shared/invoices/numbering.py), so its `claim` body is not indexed.
        // Composite indexes serve the queries (stage IN ..., dueAt or shipBy <= now).
        indexingPolicy: {
          indexingMode: 'consistent'
          includedPaths: [
            { path: '/*' }
            { path: '/pii/epoch/?' }
          ]
          excludedPaths: [
            { path: '/pii/*' }
            { path: '/claim/*' }
          ]
          compositeIndexes: [
            [
              { path: '/stage', order: 'ascending' }
              { path: '/dueAt', order: 'ascending' }
            ]
            [
              { path: '/stage', order: 'ascending' }
              { path: '/shipBy', order: 'ascending' }
            ]
          ]
        }
      }
    }
  }
]

resource diagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'to-log-analytics'
  scope: account
  properties: {
    workspaceId: workspaceId
    // The resource-specific CDBDataPlaneRequests that unusual-data-read and unexpected-principal
    // read. Control-plane changes are in AzureActivity; metrics stay in Azure Monitor Metrics.
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'DataPlaneRequests'
        enabled: true
      }
    ]
  }
}

resource privateEndpoint 'Microsoft.Network/privateEndpoints@2023-11-01' = {
  name: '${account.name}-sql-pe'
  location: location
  tags: tags
  properties: {
    subnet: {
      id: privateEndpointSubnetId
    }
    privateLinkServiceConnections: [
      {
        name: '${account.name}-sql'
        properties: {
          privateLinkServiceId: account.id
          groupIds: [
            'Sql'
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
        name: 'Sql'
        properties: {
          privateDnsZoneId: privateDnsZoneId
        }
      }
    ]
  }
}

output id string = account.id
output name string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
