// Everything the fulfilment app needs in one resource group, deployed with one command
// (docs/deploy.md). Modules are split by concern; every resource is written out (no registry
// modules) so checkov sees it.

targetScope = 'resourceGroup'

@description('Azure region of every resource.')
param location string = resourceGroup().location

@description('Short name prefix (letters, digits, hyphens) of every resource.')
@minLength(3)
@maxLength(12)
param prefix string

@description('SELLERS app setting: JSON list of {sellerId, marketplaceIds, region, refreshTokenSecret}.')
param sellers string

@description('Entra ID object ids of the operators who may read Key Vault and Cosmos DB data; anyone else raises a Sentinel incident.')
param operatorPrincipalIds array = []

@description('Days after delivery that buyer data is kept (RETENTION_DAYS).')
@minValue(0)
@maxValue(30)
param retentionDays int = 7

@description('Length of a key-encryption-key epoch (KEY_EPOCH_DAYS).')
@minValue(1)
@maxValue(30)
param keyEpochDays int = 7

@description('Key Vault soft-delete retention (KEY_VAULT_SOFT_DELETE_DAYS); 7 is Azure\'s minimum.')
@minValue(7)
@maxValue(90)
param keyVaultSoftDeleteDays int = 7

@description('An unconfirmed delivery counts as delivered at the latest delivery date plus this (DELIVERY_GRACE_DAYS).')
@minValue(0)
@maxValue(30)
param deliveryGraceDays int = 3

@description('Lifecycle backstop: labels and invoices blobs older than this are deleted even if the app missed them.')
@minValue(1)
@maxValue(30)
param blobBackstopDays int = 30

@description('Log Analytics retention; Amazon requires 12 months.')
@minValue(365)
param logRetentionDays int = 365

param pollOrdersSchedule string = '0 */5 * * * *'
param trackDeliveriesSchedule string = '0 0 * * * *'
param purgeExpiredSchedule string = '0 */15 * * * *'

// --- Amazon's notifications (infra/aws/notifications.yaml; docs/deploy.md "Amazon's notifications") ---

@description('DRAIN_NOTIFICATIONS_SCHEDULE: the timer that moves Amazon\'s notifications from SQS to order-notifications.')
param drainNotificationsSchedule string = '0 * * * * *'

@description('NOTIFICATION_QUEUES: JSON object, seller id -> {queueArn, deadLetterQueueArn, roleArn}, from the outputs of each seller\'s CloudFormation stack. {} until the AWS side exists.')
param notificationQueues string = '{}'

@description('AWS_WEB_IDENTITY_AUDIENCE: the Application ID URI the managed identity gets an Entra ID token for, which the IAM OIDC provider and the role trust.')
param awsWebIdentityAudience string = ''

@description('Key Vault secret names of the LWA app credentials (the values are set after deployment).')
param lwaClientIdSecretName string = 'lwa-client-id'
param lwaClientSecretSecretName string = 'lwa-client-secret'

@description('true once the LWA client secret is in the vault: the app may then write new versions of that one secret and rotates it itself (LWA_ROTATION=auto); false, a person rotates it (LWA_ROTATION=manual, docs/security.md). A role assignment scoped to a secret needs the secret to exist.')
param lwaSecretWriter bool = false

@description('SHIPPING_RULES app setting (JSON object, docs/shipping.md).')
param shippingRules string = '{}'

@description('CARRIERS app setting (JSON object: the karrio carrier accounts the rules may name, each with its Key Vault secret and sandbox switch; docs/shipping.md).')
param carriers string = '{}'

@description('SELLER_PROFILE app setting (JSON object, docs/invoices.md).')
param sellerProfile string = '{}'

@description('INVOICE_MARKETPLACES app setting (comma-separated marketplace ids).')
param invoiceMarketplaces string = 'A1PA6795UKMFR9,A13V1IB3VIYZZH,A1RKKUPIHCS9HS,APJ6JRA9NG5V4,A1F83G8C2ARO7P,A1805IZSGTT6HS,A1C3SOZRARQ6R3,A2NODRKZP88ZB9'

@description('INVOICE_ARCHIVE_YEARS app setting (JSON object country -> years).')
param invoiceArchiveYears string = '{}'

@description('Most Flex Consumption instances.')
param maximumInstanceCount int = 10

param tags object = {
  workload: 'mfn-fulfilment'
}

// --- Network (infra/modules/network.bicep; docs/security.md "Network") -----------------------

@description('Disabled (the default): Storage, Cosmos DB and Key Vault answer only on their private endpoints. Enabled: for a first trial only, their public endpoints answer too, to trialAllowedIpRanges only.')
@allowed([
  'Disabled'
  'Enabled'
])
param publicNetworkAccess string = 'Disabled'

@description('Public IP addresses or CIDR ranges (an operator\'s own) admitted to the data services while publicNetworkAccess is Enabled.')
param trialAllowedIpRanges array = []

param vnetAddressPrefix string = '10.42.0.0/16'
param appSubnetPrefix string = '10.42.1.0/24'
param privateEndpointSubnetPrefix string = '10.42.2.0/24'

// --- Response (docs/security.md "From rule to notice") ----------------------------------------

@description('E-mail addresses of the security on-call: PII incidents and the 24-hour clock to notify Amazon.')
@minLength(1)
param securityOnCallEmails array

@description('E-mail addresses of the operations on-call: pipeline-silent, purge-lateness, poison-queue-growth, privacy-request-overdue, notifications-drain-failing, lwa-secret-rotation.')
@minLength(1)
param operationsOnCallEmails array

@description('Entra object id of the user who owns security incidents (Sentinel incident owner).')
param securityOwnerObjectId string = ''

@description('Entra object id of the user who owns operational incidents.')
param operationsOwnerObjectId string = ''

@description('Object id in this tenant of the "Azure Security Insights" service principal: az ad sp show --id 98785600-1bb7-4fb9-b9fa-19afe2c8a360 --query id -o tsv')
param sentinelAutomationPrincipalId string

@description('Entra object ids of the break-glass accounts: any sign-in raises an incident.')
param breakGlassAccountIds array = []

@description('Send the subscription\'s Activity log to the workspace (a subscription-level diagnostic setting; needs Monitoring Contributor on the subscription). False if it already goes there.')
param deploySubscriptionActivityLog bool = true

// --- Audit trail and privileged access --------------------------------------------------------

@description('Days each audit blob (deletion confirmations, purge and erasure records) stays immutable; docs/retention.md keeps audit records at least 12 months.')
@minValue(365)
param auditRetentionDays int = 365

@description('True once the audit container\'s immutability policy is locked (docs/security.md): Bicep then leaves the policy alone.')
param auditPolicyLocked bool = false

@description('Privileged access groups printed by infra/identity/setup_access.py: resourceGroupOwner, resourceGroupContributor, keyVaultSecretsOfficer, cosmosDataContributor -> group object id.')
param privilegedAccessGroups object = {}

// Continuous7Days is the shortest Cosmos continuous-backup tier (modules/cosmos.bicep).
var cosmosBackupRetentionDays = 7
var recoverabilityDays = retentionDays + keyEpochDays + cosmosBackupRetentionDays + keyVaultSoftDeleteDays

var queues = [
  'order-notifications'
  'shipments'
  'invoices'
  'privacy-requests'
]
var dataContainers = [
  'labels'
  'invoices'
  'exports'
  'invoice-archive'
]
// WORM: deletion confirmations, purge and erasure records (docs/security.md "Audit trail").
var auditContainer = 'audit'
var suffix = uniqueString(resourceGroup().id, prefix)

module monitoring 'modules/monitoring.bicep' = {
  name: 'monitoring'
  params: {
    location: location
    prefix: prefix
    logRetentionDays: logRetentionDays
    tags: tags
  }
}

module network 'modules/network.bicep' = {
  name: 'network'
  params: {
    location: location
    prefix: prefix
    addressPrefix: vnetAddressPrefix
    appSubnetPrefix: appSubnetPrefix
    privateEndpointSubnetPrefix: privateEndpointSubnetPrefix
    tags: tags
  }
}

module hostStorage 'modules/storage.bicep' = {
  name: 'host-storage'
  params: {
    location: location
    name: 'st${suffix}host'
    containers: [
      'app-package'
    ]
    workspaceId: monitoring.outputs.workspaceId
    // Leases, timer state and the package: no rule reads them (docs/performance.md).
    ruleLogs: false
    tags: tags
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: trialAllowedIpRanges
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    privateDnsZoneIds: network.outputs.dnsZoneIds
    // The Functions host keeps leases and timer state in blobs and may use queues and tables.
    privateEndpointServices: [
      'blob'
      'queue'
      'table'
    ]
  }
}

module dataStorage 'modules/storage.bicep' = {
  name: 'data-storage'
  params: {
    location: location
    name: 'st${suffix}data'
    queues: queues
    containers: dataContainers
    // The invoice archive is exempt: its legal retention is driven by the app's index.
    expiringPrefixes: [
      'labels/'
      'invoices/'
      'exports/'
    ]
    deleteAfterDays: blobBackstopDays
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: trialAllowedIpRanges
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    privateDnsZoneIds: network.outputs.dnsZoneIds
    auditContainer: auditContainer
    auditRetentionDays: auditRetentionDays
    auditPolicyLocked: auditPolicyLocked
  }
}

module cosmos 'modules/cosmos.bicep' = {
  name: 'cosmos'
  params: {
    location: location
    prefix: prefix
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: trialAllowedIpRanges
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    privateDnsZoneId: network.outputs.dnsZoneIds.Sql
  }
}

module keyVault 'modules/keyvault.bicep' = {
  name: 'key-vault'
  params: {
    location: location
    prefix: prefix
    softDeleteDays: keyVaultSoftDeleteDays
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: trialAllowedIpRanges
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    privateDnsZoneId: network.outputs.dnsZoneIds.vault
  }
}

// The key epochs' KEKs in a vault of their own: the app makes and destroys secrets there, so it
// holds Secrets Officer on that vault, and only reads in the credentials vault (rbac.bicep).
module keyEpochVault 'modules/keyvault.bicep' = {
  name: 'key-epoch-vault'
  params: {
    location: location
    prefix: prefix
    name: '${prefix}-kek'
    softDeleteDays: keyVaultSoftDeleteDays
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
    publicNetworkAccess: publicNetworkAccess
    allowedIpRanges: trialAllowedIpRanges
    privateEndpointSubnetId: network.outputs.privateEndpointSubnetId
    privateDnsZoneId: network.outputs.dnsZoneIds.vault
  }
}

module functionApp 'modules/functionapp.bicep' = {
  name: 'function-app'
  params: {
    location: location
    prefix: prefix
    tags: tags
    hostStorageName: hostStorage.outputs.name
    hostStorageBlobEndpoint: hostStorage.outputs.blobEndpoint
    dataBlobEndpoint: dataStorage.outputs.blobEndpoint
    dataQueueEndpoint: dataStorage.outputs.queueEndpoint
    cosmosEndpoint: cosmos.outputs.endpoint
    cosmosDatabaseName: cosmos.outputs.databaseName
    keyVaultUri: keyVault.outputs.uri
    keyEpochVaultUri: keyEpochVault.outputs.uri
    appInsightsConnectionString: monitoring.outputs.appInsightsConnectionString
    virtualNetworkSubnetId: network.outputs.appSubnetId
    maximumInstanceCount: maximumInstanceCount
    appSettings: {
      SELLERS: sellers
      LWA_CLIENT_ID_SECRET: lwaClientIdSecretName
      LWA_CLIENT_SECRET_SECRET: lwaClientSecretSecretName
      // The app asks Amazon for a new LWA secret only where it may store it (rbac.bicep's writer role).
      LWA_ROTATION: lwaSecretWriter ? 'auto' : 'manual'
      POLL_ORDERS_SCHEDULE: pollOrdersSchedule
      TRACK_DELIVERIES_SCHEDULE: trackDeliveriesSchedule
      PURGE_EXPIRED_SCHEDULE: purgeExpiredSchedule
      RETENTION_DAYS: string(retentionDays)
      KEY_EPOCH_DAYS: string(keyEpochDays)
      COSMOS_BACKUP_RETENTION_DAYS: string(cosmosBackupRetentionDays)
      KEY_VAULT_SOFT_DELETE_DAYS: string(keyVaultSoftDeleteDays)
      DELIVERY_GRACE_DAYS: string(deliveryGraceDays)
      TELEMETRY_EXPORTER: 'opentelemetry'
      SHIPPING_RULES: shippingRules
      CARRIERS: carriers
      SELLER_PROFILE: sellerProfile
      INVOICE_MARKETPLACES: invoiceMarketplaces
      INVOICE_ARCHIVE_YEARS: invoiceArchiveYears
      DRAIN_NOTIFICATIONS_SCHEDULE: drainNotificationsSchedule
      DRAIN_NOTIFICATIONS_WAIT_SECONDS: '2'
      NOTIFICATION_QUEUES: notificationQueues
      AWS_WEB_IDENTITY_AUDIENCE: awsWebIdentityAudience
    }
  }
}

module rbac 'modules/rbac.bicep' = {
  name: 'rbac'
  params: {
    principalId: functionApp.outputs.principalId
    hostStorageName: hostStorage.outputs.name
    dataStorageName: dataStorage.outputs.name
    dataContainers: dataContainers
    auditContainer: auditContainer
    cosmosAccountName: cosmos.outputs.name
    cosmosDatabaseName: cosmos.outputs.databaseName
    keyVaultName: keyVault.outputs.name
    keyEpochVaultName: keyEpochVault.outputs.name
    lwaClientSecretSecretName: lwaClientSecretSecretName
    lwaSecretWriter: lwaSecretWriter
    appInsightsName: monitoring.outputs.appInsightsName
  }
}

module operatorAccess 'modules/operator-access.bicep' = {
  name: 'operator-access'
  params: {
    privilegedAccessGroups: privilegedAccessGroups
    keyVaultName: keyVault.outputs.name
    cosmosAccountName: cosmos.outputs.name
    cosmosDatabaseName: cosmos.outputs.databaseName
  }
}

// The subscription's Activity log to the workspace: a subscription-level setting, so this module
// deploys at subscription scope.
module activityLog 'modules/activitylog.bicep' = if (deploySubscriptionActivityLog) {
  name: 'activity-log-${suffix}'
  scope: subscription()
  params: {
    workspaceId: monitoring.outputs.workspaceId
    settingName: 'activity-log-to-${prefix}-log'
  }
}

module playbook 'modules/playbook.bicep' = {
  name: 'pii-playbook'
  params: {
    location: location
    prefix: prefix
    tags: tags
    workspaceName: monitoring.outputs.workspaceName
    sentinelAutomationPrincipalId: sentinelAutomationPrincipalId
  }
}

module sentinel 'modules/sentinel.bicep' = {
  name: 'sentinel'
  params: {
    workspaceName: monitoring.outputs.workspaceName
    expectedPrincipals: concat([
      functionApp.outputs.principalId
    ], operatorPrincipalIds)
    securityOwnerObjectId: securityOwnerObjectId
    operationsOwnerObjectId: operationsOwnerObjectId
    playbookId: playbook.outputs.id
    breakGlassAccountIds: breakGlassAccountIds
  }
}

module notifications 'modules/notifications.bicep' = {
  name: 'notifications'
  // The alerts read Sentinel's SecurityIncident table.
  dependsOn: [
    sentinel
  ]
  params: {
    location: location
    prefix: prefix
    tags: tags
    workspaceId: monitoring.outputs.workspaceId
    securityEmails: securityOnCallEmails
    operationsEmails: operationsOnCallEmails
  }
}

module workbook 'modules/workbook.bicep' = {
  name: 'workbook'
  params: {
    location: location
    workspaceId: monitoring.outputs.workspaceId
    tags: tags
  }
}

output functionAppName string = functionApp.outputs.name
output keyVaultName string = keyVault.outputs.name
output keyEpochVaultName string = keyEpochVault.outputs.name
output dataStorageName string = dataStorage.outputs.name
output notificationsQueueUrl string = '${dataStorage.outputs.queueEndpoint}order-notifications'
output recoverabilityDays int = recoverabilityDays
output auditContainerUrl string = '${dataStorage.outputs.blobEndpoint}${auditContainer}'
output playbookName string = playbook.outputs.name
output playbookPrincipalId string = playbook.outputs.principalId
// The AWS side's trust (infra/aws/notifications.yaml): the issuer is Entra ID's v1 token issuer
// of this tenant, the subject the function identity's object id.
output entraTenantId string = tenant().tenantId
output functionPrincipalId string = functionApp.outputs.principalId
