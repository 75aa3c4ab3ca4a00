// One storage account: Entra ID access only (no shared keys), TLS 1.2, HTTPS, no anonymous
// blobs, the given queues (each with its -poison twin) and blob containers, a lifecycle rule that
// deletes blobs under `expiringPrefixes` past the retention bound, and diagnostics. Reached through
// private endpoints (one per service in `privateEndpointServices`, registered in the private DNS
// zones of infra/modules/network.bicep); the public endpoint is off unless a first trial turns
// it on, and even then the firewall admits only `allowedIpRanges`. Optionally an audit container
// under a time-based immutability policy (WORM): blobs in it can be added and read, not changed
// or deleted, until `auditRetentionDays` after each was written.

param location string

@description('Globally unique account name (3-24 lower-case letters and digits).')
@minLength(3)
@maxLength(24)
param name string

@description('Queues to create; each gets its "<name>-poison" queue too.')
param queues array = []

@description('Blob containers to create.')
param containers array = []

@description('Blob name prefixes ("<container>/") the lifecycle rule deletes.')
param expiringPrefixes array = []

@description('Days after its last write that a blob under expiringPrefixes is deleted.')
@minValue(1)
@maxValue(30)
param deleteAfterDays int = 30

param workspaceId string
param tags object = {}

@description('Send the blob reads and queue writes the Sentinel rules read to the workspace. Off for the host account: it holds the host\'s leases, timer state and the package, no order data, and no rule reads it.')
param ruleLogs bool = true

@description('Disabled: only the private endpoints reach the account. Enabled (first trial only): the public endpoint answers too, to allowedIpRanges only.')
@allowed([
  'Disabled'
  'Enabled'
])
param publicNetworkAccess string = 'Disabled'

@description('Public IP addresses or CIDR ranges admitted when publicNetworkAccess is Enabled.')
param allowedIpRanges array = []

@description('Subnet of the private endpoints (infra/modules/network.bicep).')
param privateEndpointSubnetId string

@description('Private endpoint group id (blob, queue, table) -> private DNS zone id.')
param privateDnsZoneIds object

@description('Storage services reached through a private endpoint.')
param privateEndpointServices array = [
  'blob'
  'queue'
]

@description('Name of the audit container under a time-based immutability policy; empty for none.')
param auditContainer string = ''

@description('Days each audit blob stays immutable after it is written (docs/retention.md: audit records are kept at least 12 months).')
@minValue(365)
param auditRetentionDays int = 365

@description('True once the audit container\'s immutability policy has been locked (docs/security.md): a locked policy can only be extended, so Bicep stops declaring it.')
param auditPolicyLocked bool = false

var poisonQueues = [for q in queues: '${q}-poison']

resource account 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  // checkov:skip=CKV_AZURE_206: Zone-redundant, not geo-redundant: a second-region copy of labels is one more copy of buyer data to purge; queued work survives a zone loss.
  name: name
  location: location
  tags: tags
  kind: 'StorageV2'
  sku: {
    // Zone-redundant: a zone outage must not lose queued orders.
    name: 'Standard_ZRS'
  }
  properties: {
    accessTier: 'Hot'
    allowSharedKeyAccess: false
    allowBlobPublicAccess: false
    allowCrossTenantReplication: false
    defaultToOAuthAuthentication: true
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    publicNetworkAccess: publicNetworkAccess
    networkAcls: {
      defaultAction: 'Deny'
      bypass: 'AzureServices'
      ipRules: [
        for ip in allowedIpRanges: {
          value: ip
          action: 'Allow'
        }
      ]
    }
    encryption: {
      keySource: 'Microsoft.Storage'
      requireInfrastructureEncryption: true
      services: {
        blob: {
          enabled: true
        }
        queue: {
          enabled: true
          keyType: 'Account'
        }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: account
  name: 'default'
  properties: {
    deleteRetentionPolicy: {
      // Deleted blobs must not linger: the retention bound is the promise.
      enabled: false
    }
    containerDeleteRetentionPolicy: {
      enabled: false
    }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: account
  name: 'default'
}

resource queueResources 'Microsoft.Storage/storageAccounts/queueServices/queues@2023-05-01' = [
  for q in concat(queues, poisonQueues): {
    parent: queueService
    name: q
  }
]

resource containerResources 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = [
  for c in containers: {
    parent: blobService
    name: c
    properties: {
      publicAccess: 'None'
    }
  }
]

// WORM for the audit trail: deletion confirmations, purge and erasure records. While a blob is
// inside its retention period nobody, whatever their role, can overwrite or delete it; new blobs
// can still be added. Unlocked, an account owner can still shorten or remove the policy (Azure
// audits that in the Activity log); lock it once the first trial is over (docs/security.md).
resource auditContainerResource 'Microsoft.Storage/storageAccounts/blobServices/containers@2023-05-01' = if (!empty(auditContainer)) {
  parent: blobService
  name: empty(auditContainer) ? 'unused' : auditContainer
  properties: {
    publicAccess: 'None'
  }
}

resource auditImmutability 'Microsoft.Storage/storageAccounts/blobServices/containers/immutabilityPolicies@2023-05-01' = if ((!empty(auditContainer)) && (!auditPolicyLocked)) {
  parent: auditContainerResource
  name: 'default'
  properties: {
    immutabilityPeriodSinceCreationInDays: auditRetentionDays
    // One blob per record: nothing is appended to a protected blob.
    allowProtectedAppendWrites: false
    allowProtectedAppendWritesAll: false
  }
}

resource lifecycle 'Microsoft.Storage/storageAccounts/managementPolicies@2023-05-01' = if (!empty(expiringPrefixes)) {
  parent: account
  name: 'default'
  properties: {
    policy: {
      rules: [
        {
          name: 'delete-past-retention-bound'
          enabled: true
          type: 'Lifecycle'
          definition: {
            filters: {
              blobTypes: [
                'blockBlob'
              ]
              prefixMatch: expiringPrefixes
            }
            actions: {
              baseBlob: {
                delete: {
                  daysAfterModificationGreaterThan: deleteAfterDays
                }
              }
            }
          }
        }
      ]
    }
  }
}

// Only what a Sentinel rule reads goes to the workspace (docs/performance.md, "What reaches the
// Sentinel workspace"); the Transaction metrics stay in Azure Monitor Metrics, free.
// Blob: StorageRead (GetBlob), which unusual-data-read sums per identity. Writes and deletes are
// not read by any rule.
resource blobDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (ruleLogs) {
  name: 'to-log-analytics'
  scope: blobService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageRead'
        enabled: true
      }
    ]
  }
}

// Queue: StorageWrite (PutMessage into a -poison queue), which poison-queue-growth reads. The
// host's polling (GetMessages, StorageRead) and message deletes are not sent: at one poll per
// queue per maxPollingInterval they were most of the workspace's bill.
resource queueDiagnostics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = if (ruleLogs) {
  name: 'to-log-analytics'
  scope: queueService
  properties: {
    workspaceId: workspaceId
    logs: [
      {
        category: 'StorageWrite'
        enabled: true
      }
    ]
  }
}

resource privateEndpoints 'Microsoft.Network/privateEndpoints@2023-11-01' = [
  for service in privateEndpointServices: {
    name: '${name}-${service}-pe'
    location: location
    tags: tags
    properties: {
      subnet: {
        id: privateEndpointSubnetId
      }
      privateLinkServiceConnections: [
        {
          name: '${name}-${service}'
          properties: {
            privateLinkServiceId: account.id
            groupIds: [
              service
            ]
          }
        }
      ]
    }
  }
]

resource privateDnsGroups 'Microsoft.Network/privateEndpoints/privateDnsZoneGroups@2023-11-01' = [
  for (service, i) in privateEndpointServices: {
    parent: privateEndpoints[i]
    name: 'default'
    properties: {
      privateDnsZoneConfigs: [
        {
          name: service
          properties: {
            privateDnsZoneId: privateDnsZoneIds[service]
          }
        }
      ]
    }
  }
]

output id string = account.id
output name string = account.name
output blobEndpoint string = account.properties.primaryEndpoints.blob
output queueEndpoint string = account.properties.primaryEndpoints.queue
