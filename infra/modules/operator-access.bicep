// What people may hold, and only just in time: each privileged role of docs/security.md ("What
// the seller sets in Entra ID for humans") is granted to one role-assignable security group, and
// nobody is a standing member of those groups. infra/identity/setup_access.py makes the operators
// *eligible* members through Privileged Identity Management for Groups (activation for at most
// 4 hours, with MFA and a justification), and prints the groups' object ids for the
// privilegedAccessGroups parameter. A key left out (or empty) grants nothing.
//
//   resourceGroupOwner        Owner on the resource group (deployments: they create role assignments)
//   resourceGroupContributor  Contributor on the resource group (day-to-day operations)
//   keyVaultSecretsOfficer    Key Vault Secrets Officer on the vault (credential rotation)
//   cosmosDataContributor     Cosmos DB Built-in Data Contributor on the fulfilment database (ops CLI)

@description('Role key (see above) -> object id of its privileged access group.')
param privilegedAccessGroups object = {}

param keyVaultName string
param cosmosAccountName string
param cosmosDatabaseName string

// Built-in role definition ids (identical in every tenant).
var roles = {
  owner: '8e3af657-a8ff-443c-a75c-2fe8c4bcb635'
  contributor: 'b24988ac-6180-42a0-ab88-20f7382dd24c'
  keyVaultSecretsOfficer: 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7'
}
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

var ownerGroup = privilegedAccessGroups.?resourceGroupOwner ?? ''
var contributorGroup = privilegedAccessGroups.?resourceGroupContributor ?? ''
var secretsGroup = privilegedAccessGroups.?keyVaultSecretsOfficer ?? ''
var cosmosGroup = privilegedAccessGroups.?cosmosDataContributor ?? ''

resource vault 'Microsoft.KeyVault/vaults@2023-07-01' existing = {
  name: keyVaultName
}

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-11-15' existing = {
  name: cosmosAccountName
}

resource ownerAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(ownerGroup)) {
  name: guid(resourceGroup().id, ownerGroup, roles.owner)
  properties: {
    principalId: ownerGroup
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.owner)
  }
}

resource contributorAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(contributorGroup)) {
  name: guid(resourceGroup().id, contributorGroup, roles.contributor)
  properties: {
    principalId: contributorGroup
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.contributor)
  }
}

resource secretsAssignment 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(secretsGroup)) {
  name: guid(vault.id, secretsGroup, roles.keyVaultSecretsOfficer)
  scope: vault
  properties: {
    principalId: secretsGroup
    principalType: 'Group'
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', roles.keyVaultSecretsOfficer)
  }
}

resource cosmosAssignment 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-11-15' = if (!empty(cosmosGroup)) {
  parent: cosmos
  name: guid(cosmos.id, cosmosGroup, cosmosDataContributor)
  properties: {
    principalId: cosmosGroup
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    scope: '${cosmos.id}/dbs/${cosmosDatabaseName}'
  }
}
