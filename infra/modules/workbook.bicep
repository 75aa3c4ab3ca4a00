// The operators' Azure Monitor workbook (infra/workbooks/operations.json), bound to the workspace.

param location string
param workspaceId string
param tags object = {}

resource workbook 'Microsoft.Insights/workbooks@2023-06-01' = {
  name: guid(resourceGroup().id, 'fulfilment-operations-workbook')
  location: location
  tags: tags
  kind: 'shared'
  properties: {
    displayName: 'Fulfilment operations'
    category: 'workbook'
    sourceId: workspaceId
    serializedData: loadTextContent('../workbooks/operations.json')
  }
}

output id string = workbook.id
