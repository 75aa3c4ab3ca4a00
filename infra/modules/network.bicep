// The private network the app's data stays on: one VNet with a subnet the Flex Consumption app
// joins (delegated to Microsoft.App/environments, as Flex Consumption requires) and a subnet for
// the private endpoints of Storage (blob, queue, table), Cosmos DB and Key Vault, each subnet
// behind its own network security group (Azure's default rules: no inbound from the internet),
// and the private DNS zones that make the services' usual host names resolve to those private
// endpoints from inside the VNet. docs/security.md "Network" says what stays public and why.

param location string
param prefix string
param tags object = {}

@description('Address space of the VNet.')
param addressPrefix string = '10.42.0.0/16'

@description('Subnet the Function App joins (VNet integration); Flex Consumption needs at least a /27.')
param appSubnetPrefix string = '10.42.1.0/24'

@description('Subnet holding the private endpoints.')
param privateEndpointSubnetPrefix string = '10.42.2.0/24'

// Public-cloud zone names (learn.microsoft.com/azure/private-link/private-endpoint-dns).
// The order here is the order of the dnsZoneIds output below.
var zones = [
  'privatelink.blob.core.windows.net'
  'privatelink.queue.core.windows.net'
  'privatelink.table.core.windows.net'
  'privatelink.documents.azure.com'
  'privatelink.vaultcore.azure.net'
]

resource appNsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: '${prefix}-app-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource endpointNsg 'Microsoft.Network/networkSecurityGroups@2023-11-01' = {
  name: '${prefix}-pe-nsg'
  location: location
  tags: tags
  properties: {
    securityRules: []
  }
}

resource vnet 'Microsoft.Network/virtualNetworks@2023-11-01' = {
  name: '${prefix}-vnet'
  location: location
  tags: tags
  properties: {
    addressSpace: {
      addressPrefixes: [
        addressPrefix
      ]
    }
    subnets: [
      {
        name: 'app'
        properties: {
          addressPrefix: appSubnetPrefix
          networkSecurityGroup: {
            id: appNsg.id
          }
          delegations: [
            {
              name: 'flex-consumption'
              properties: {
                serviceName: 'Microsoft.App/environments'
              }
            }
          ]
        }
      }
      {
        name: 'private-endpoints'
        properties: {
          addressPrefix: privateEndpointSubnetPrefix
          networkSecurityGroup: {
            id: endpointNsg.id
          }
          privateEndpointNetworkPolicies: 'Enabled'
        }
      }
    ]
  }
}

resource dnsZones 'Microsoft.Network/privateDnsZones@2020-06-01' = [
  for zone in zones: {
    name: zone
    location: 'global'
    tags: tags
  }
]

resource dnsLinks 'Microsoft.Network/privateDnsZones/virtualNetworkLinks@2020-06-01' = [
  for (zone, i) in zones: {
    parent: dnsZones[i]
    name: '${prefix}-vnet'
    location: 'global'
    tags: tags
    properties: {
      registrationEnabled: false
      virtualNetwork: {
        id: vnet.id
      }
    }
  }
]

output vnetId string = vnet.id
output appSubnetId string = '${vnet.id}/subnets/app'
output privateEndpointSubnetId string = '${vnet.id}/subnets/private-endpoints'
// Private endpoint group id (blob, queue, table, Sql, vault) -> its zone.
output dnsZoneIds object = {
  blob: dnsZones[0].id
  queue: dnsZones[1].id
  table: dnsZones[2].id
  Sql: dnsZones[3].id
  vault: dnsZones[4].id
}
