// Cosmos DB for the order store: Entra ID only (local keys off), TLS 1.2, continuous backup with
// the shortest window (7 days, part of the recoverability bound), and the three containers the
// app uses with item-level TTL enabled (defaultTtl -1). Data-plane RBAC cannot create
// containers, so they are declared here.

param location string
param prefix string
param workspaceId string
param tags object = {}

@description('Database name (COSMOS_DATABASE).')
param databaseName string = 'fulfilment'

@description('Container name -> partition key path; must match shared/document_store.py CONTAINERS.')
param containers object = {
  orders: '/id'
  state: '/pk'
  audit: '/ref'
}

resource account 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' = {
  // checkov:skip=CKV_AZURE_99: Flex Consumption reaches Cosmos over the public endpoint unless a VNet is added; every request needs an Entra ID token (disableLocalAuth), see docs/security.md "Network".
  // checkov:skip=CKV_AZURE_101: Same reason as CKV_AZURE_99.
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
    publicNetworkAccess: 'Enabled'
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
        // The composite index serves the due-work query (stage IN ..., dueAt <= now).
        indexingPolicy: {
          indexingMode: 'consistent'
          includedPaths: [
            { path: '/*' }
            { path: '/pii/epoch/?' }
          ]
          excludedPaths: [
            { path: '/pii/*' }
          ]
          compositeIndexes: [
            [
              { path: '/stage', order: 'ascending' }
              { path: '/dueAt', order: 'ascending' }
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
    // Resource-specific tables (CDBDataPlaneRequests, CDBControlPlaneRequests) that the rules query.
    logAnalyticsDestinationType: 'Dedicated'
    logs: [
      {
        category: 'DataPlaneRequests'
        enabled: true
      }
      {
        category: 'ControlPlaneRequests'
        enabled: true
      }
    ]
    metrics: [
      {
        category: 'Requests'
        enabled: true
      }
    ]
  }
}

output id string = account.id
output name string = account.name
output endpoint string = account.properties.documentEndpoint
output databaseName string = database.name
